"""Domain errors shared by every package.

Domain code raises these; it never knows about HTTP. ``onecard.api`` maps each kind to a
status code and renders RFC 9457 problem documents whose ``code`` is the stable,
machine-readable ``code`` given here. ``detail`` is for people and must never contain a
secret or a personal number.
"""

from __future__ import annotations

from typing import Any


class OnecardError(Exception):
    """Base of all domain errors."""

    code: str = "error"
    title: str = "Error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(OnecardError):
    """Well-formed request whose content breaks a rule (maps to 422)."""

    code = "invalid_input"
    title = "Invalid input"


class NotFound(OnecardError):
    code = "not_found"
    title = "Not found"


class Conflict(OnecardError):
    """The change would duplicate something unique (maps to 409)."""

    code = "conflict"
    title = "Conflict"


class InvalidState(OnecardError):
    """The subject is not in a state that allows the change (maps to 409)."""

    code = "invalid_state"
    title = "Invalid state"


class Unauthenticated(OnecardError):
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(OnecardError):
    code = "forbidden"
    title = "Forbidden"


class TooManyAttempts(OnecardError):
    code = "too_many_attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class ConfigurationError(OnecardError):
    """Settings that are unsafe or inconsistent; raised at start-up, never per request."""

    code = "configuration_error"
    title = "Configuration error"
