"""Password hashing with argon2id (OWASP parameters by default) and the password policy."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from onecard.core.errors import InvalidInput
from onecard.core.settings import Settings

MIN_LENGTH = 10
MAX_LENGTH = 128


class PasswordHasher:
    """argon2id hashing; unknown accounts still cost one verification (:meth:`burn`)."""

    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19456) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=argon2.Type.ID
        )
        self._dummy = self._hasher.hash("onecard-timing-equaliser")

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def burn(self, password: str) -> None:
        """Spend the time of one verification, so an unknown account answers as slowly."""
        self.verify(self._dummy, password)


def check_password_policy(password: str, *, personal_values: tuple[str | None, ...] = ()) -> None:
    """NIST SP 800-63B style: length matters, composition rules do not; no personal data."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"the password must have at least {MIN_LENGTH} characters", code="password_too_short"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"the password must have at most {MAX_LENGTH} characters", code="password_too_long"
        )
    if len(set(password)) < 4:
        raise InvalidInput("the password repeats too few characters", code="password_too_simple")
    lowered = password.lower()
    for value in personal_values:
        if value and len(value) >= 4 and value.lower() in lowered:
            raise InvalidInput(
                "the password must not contain your identity number, phone or email",
                code="password_contains_personal_data",
            )
