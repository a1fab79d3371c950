"""Checking a citizen's password and second factor, with throttling that always expires.

Failures count in fixed windows per login (whether or not an account has it, so an unknown
account and a wrong password look the same, lockout included) and per client address; a
bucket at its limit refuses attempts until its window ends, so nobody can lock a citizen out
for good. argon2id runs outside any transaction so slow hashing never holds a database lock;
an unknown account costs the same hash as a known one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from onecard.core import ratelimit
from onecard.core.audit import Actor, record
from onecard.core.db import Database
from onecard.core.sealing import Sealer
from onecard.core.settings import Settings
from onecard.identity.actions import IdentityAction
from onecard.identity.credentials import (
    password_hash_of,
    use_recovery_code,
    verify_totp,
)
from onecard.identity.models import PasswordCredential, Person, SubjectStatus
from onecard.identity.passwords import PasswordHasher
from onecard.identity.persons import find_by_login


@dataclass(frozen=True)
class SignInResult:
    """The outcome; failures are returned (not raised) so their counters commit."""

    person_id: uuid.UUID | None = None
    failure: str | None = None  # invalid_credentials, throttled, account_not_active
    retry_after: int | None = None


@dataclass(frozen=True)
class Throttle:
    sealer: Sealer
    settings: Settings

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.settings.login_lockout_seconds)

    def keys(self, login: str, address: str | None) -> list[tuple[bytes, int]]:
        keys = [
            (
                ratelimit.bucket_key(self.sealer, "login", login.strip().lower()),
                self.settings.login_max_failures,
            )
        ]
        if address:
            keys.append(
                (
                    ratelimit.bucket_key(self.sealer, "address", address),
                    self.settings.login_address_max_failures,
                )
            )
        return keys

    def blocked(self, session: Session, keys: list[tuple[bytes, int]]) -> int | None:
        waits = [ratelimit.retry_after(session, key, limit=limit) for key, limit in keys]
        return max((w for w in waits if w), default=None)

    def fail(self, session: Session, keys: list[tuple[bytes, int]]) -> None:
        for key, _ in keys:
            ratelimit.count_failure(session, key, window=self.window)


def check_password(
    database: Database,
    sealer: Sealer,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    login: str,
    password: str,
    address: str | None,
) -> SignInResult:
    throttle = Throttle(sealer, settings)
    keys = throttle.keys(login[:254], address)
    with database.session() as session:
        wait = throttle.blocked(session, keys)
        if wait:
            return SignInResult(failure="throttled", retry_after=wait)
        person = find_by_login(session, sealer, login)
        stored_hash = password_hash_of(session, person.id) if person else None
    if stored_hash is None:
        hasher.burn(password)
        password_ok = False
    else:
        password_ok = hasher.verify(stored_hash, password)
    rehashed = hasher.hash(password) if password_ok and hasher.needs_rehash(stored_hash) else None
    with database.session() as session:
        # Re-check under the write: attempts racing the limit cannot slip past it.
        wait = throttle.blocked(session, keys)
        if wait:
            return SignInResult(failure="throttled", retry_after=wait)
        if not password_ok or person is None:
            throttle.fail(session, keys)
            _record_failure(session, person.id if person else None, "invalid_credentials")
            return SignInResult(failure="invalid_credentials")
        current = session.get(Person, person.id)
        if current is None or current.status != SubjectStatus.ACTIVE:
            return SignInResult(failure="account_not_active")
        if rehashed:
            credential = session.get(PasswordCredential, person.id)
            if credential is not None:
                credential.hash = rehashed
                session.add(credential)
        ratelimit.clear(session, keys[0][0])
        return SignInResult(person_id=person.id)


def check_second_factor(
    session: Session,
    sealer: Sealer,
    settings: Settings,
    person_id: uuid.UUID,
    *,
    totp_code: str | None,
    recovery_code: str | None,
) -> SignInResult:
    """A TOTP code (each accepted once) or a single-use recovery code; throttled per person."""
    throttle = Throttle(sealer, settings)
    keys = [
        (ratelimit.bucket_key(sealer, "second-factor", str(person_id)), settings.login_max_failures)
    ]
    wait = throttle.blocked(session, keys)
    if wait:
        return SignInResult(failure="throttled", retry_after=wait)
    if totp_code:
        ok = verify_totp(session, sealer, person_id, totp_code.strip())
        failure = "totp_invalid"
    else:
        ok = bool(recovery_code) and use_recovery_code(
            session, sealer, person_id, (recovery_code or "").strip(), actor=Actor.person(person_id)
        )
        failure = "recovery_code_invalid"
    if not ok:
        throttle.fail(session, keys)
        _record_failure(session, person_id, failure)
        return SignInResult(failure=failure)
    ratelimit.clear(session, keys[0][0])
    return SignInResult(person_id=person_id)


def _record_failure(session: Session, person_id: uuid.UUID | None, reason: str) -> None:
    if person_id is None:
        return  # nothing to tie it to: an unknown login
    record(
        session,
        IdentityAction.SIGN_IN_FAILURE,
        actor=Actor("person", None),
        subject=("person", str(person_id)),
        person_id=person_id,
        data={"reason": reason},
    )
