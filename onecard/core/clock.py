"""The one injectable clock: every "now" in onecard comes from here, timezone-aware UTC.

Tests move time with :func:`use_clock` and a :class:`FrozenClock` instead of patching
``datetime``; production uses the system clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime | None = None) -> None:
        self._at = (at or datetime.now(UTC)).astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta | float) -> None:
        self._at += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


_clock: Clock = SystemClock()


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _clock.now()


def set_clock(clock: Clock) -> Clock:
    """Install ``clock``; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)
