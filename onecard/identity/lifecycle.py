"""The status life cycle shared by persons and enterprises: active ⇄ suspended, either → closed
(final), each change with a reason.

Packages that hold things belonging to a subject (the CA's certificates, the card) react to a
change through :func:`register_status_listener`: the listener runs inside the change's own
transaction, so the subject's status and its consequences commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlmodel import Session

from onecard.core import clock
from onecard.core.audit import Actor
from onecard.core.errors import InvalidInput, InvalidState
from onecard.identity.models import SubjectStatus


class StatusChange(StrEnum):
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    CLOSE = "close"


_TRANSITIONS = {
    StatusChange.SUSPEND: ({SubjectStatus.ACTIVE}, SubjectStatus.SUSPENDED),
    StatusChange.REINSTATE: ({SubjectStatus.SUSPENDED}, SubjectStatus.ACTIVE),
    StatusChange.CLOSE: ({SubjectStatus.ACTIVE, SubjectStatus.SUSPENDED}, SubjectStatus.CLOSED),
}


class HasStatus(Protocol):
    status: str
    status_reason: str | None


@dataclass(frozen=True)
class Transition:
    previous: str
    target: SubjectStatus
    reason: str

    def audit_data(self) -> dict[str, str]:
        return {"from": self.previous, "to": str(self.target), "reason": self.reason}


def plan(subject: HasStatus, change: StatusChange, reason: str, *, kind: str) -> Transition:
    """Check that ``change`` is allowed from the subject's status; nothing is modified yet."""
    allowed_from, target = _TRANSITIONS[change]
    if not reason.strip():
        raise InvalidInput("a reason is required", code="reason_required")
    if subject.status not in allowed_from:
        raise InvalidState(
            f"cannot {change} a {kind} that is {subject.status}", code=f"{kind}_status_conflict"
        )
    return Transition(subject.status, target, reason.strip()[:500])


def apply(subject: HasStatus, transition: Transition) -> None:
    subject.status, subject.status_reason = transition.target, transition.reason
    subject.updated_at = clock.now()  # type: ignore[attr-defined]


# (session, subject kind "person" | "enterprise", subject id, the transition, who caused it)
StatusListener = Callable[[Session, str, uuid.UUID, Transition, Actor], None]
_listeners: list[StatusListener] = []


def register_status_listener(listener: StatusListener) -> None:
    """Call ``listener`` after every status change of a person or an enterprise."""
    if listener not in _listeners:
        _listeners.append(listener)


def notify(
    session: Session, kind: str, subject_id: uuid.UUID, transition: Transition, actor: Actor
) -> None:
    for listener in _listeners:
        listener(session, kind, subject_id, transition, actor)
