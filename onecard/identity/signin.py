"""Password sign-in (with TOTP or a recovery code when enrolled) for the interim API tokens.

Failures count per account; after ``login_max_failures`` the account is locked for
``login_lockout_seconds`` and then unlocks by itself, so nobody can lock a citizen out for good.
An unknown account costs the same password-hash time as a known one and gets the same answer
as a wrong password.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import Database
from onecard.core.sealing import Sealer
from onecard.core.settings import Settings
from onecard.identity.actions import IdentityAction
from onecard.identity.credentials import (
    has_totp,
    password_hash_of,
    use_recovery_code,
    verify_totp,
)
from onecard.identity.models import PasswordCredential, Person, SubjectStatus
from onecard.identity.passwords import PasswordHasher
from onecard.identity.persons import find_by_login
from onecard.identity.tokens import issue_token


@dataclass(frozen=True)
class SignInResult:
    """The outcome; failures are returned (not raised) so their counters commit."""

    token: str | None = None
    person_id: uuid.UUID | None = None
    failure: str | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class SignInRequest:
    login: str
    password: str
    totp_code: str | None = None
    recovery_code: str | None = None

    def __repr__(self) -> str:
        return "SignInRequest(<hidden>)"


def sign_in(
    database: Database,
    sealer: Sealer,
    hasher: PasswordHasher,
    settings: Settings,
    request: SignInRequest,
) -> SignInResult:
    """Check the password between two short transactions, then record the outcome.

    argon2id runs outside any transaction so that slow hashing never holds a database lock;
    the second transaction re-reads the lockout, so concurrent attempts cannot slip past it.
    """
    with database.session() as session:
        person = find_by_login(session, sealer, request.login)
        stored_hash = password_hash_of(session, person.id) if person else None
    if person is None or stored_hash is None:
        hasher.burn(request.password)
        if person is None:
            return SignInResult(failure="invalid_credentials")
        password_ok = False
    else:
        password_ok = hasher.verify(stored_hash, request.password)
    rehashed = (
        hasher.hash(request.password)
        if password_ok and hasher.needs_rehash(stored_hash or "")
        else None
    )
    with database.session() as session:
        return _record_attempt(session, sealer, settings, person.id, request, password_ok, rehashed)


def _record_attempt(
    session: Session,
    sealer: Sealer,
    settings: Settings,
    person_id: uuid.UUID,
    request: SignInRequest,
    password_ok: bool,
    rehashed: str | None,
) -> SignInResult:
    person = session.get(Person, person_id)
    credential = session.get(PasswordCredential, person_id, with_for_update=True)
    if person is None or credential is None:
        return SignInResult(failure="invalid_credentials")
    now = clock.now()
    if credential.locked_until and credential.locked_until > now:
        wait = int((credential.locked_until - now).total_seconds()) + 1
        return SignInResult(failure="account_locked", retry_after=wait)
    if not password_ok:
        return _failed(session, settings, person, credential)
    second = _second_factor(session, sealer, person, request)
    if second is not None:
        return _failed(session, settings, person, credential, failure=second)
    if person.status != SubjectStatus.ACTIVE:
        return SignInResult(failure="account_not_active")
    credential.failed_attempts, credential.locked_until = 0, None
    if rehashed:
        credential.hash = rehashed
    session.add(credential)
    amr = ["pwd"] + (["otp"] if request.totp_code or request.recovery_code else [])
    token, _ = issue_token(
        session,
        kind="sign_in",
        person_id=person.id,
        ttl=timedelta(seconds=settings.api_token_ttl_seconds),
        actor=Actor.person(person.id),
    )
    record(
        session,
        IdentityAction.SIGN_IN,
        actor=Actor.person(person.id),
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"amr": amr},
    )
    return SignInResult(token=token, person_id=person.id)


def _second_factor(
    session: Session, sealer: Sealer, person: Person, request: SignInRequest
) -> str | None:
    if not has_totp(session, person.id):
        return None
    if request.totp_code:
        return (
            None if verify_totp(session, sealer, person.id, request.totp_code) else "totp_invalid"
        )
    if request.recovery_code:
        ok = use_recovery_code(
            session, sealer, person.id, request.recovery_code, actor=Actor.person(person.id)
        )
        return None if ok else "recovery_code_invalid"
    return "totp_required"


def _failed(
    session: Session,
    settings: Settings,
    person: Person,
    credential: PasswordCredential,
    *,
    failure: str = "invalid_credentials",
) -> SignInResult:
    if failure == "totp_required":
        return SignInResult(failure=failure)  # a prompt for the second step, not a failure
    action = IdentityAction.SIGN_IN_FAILURE
    credential.failed_attempts += 1
    if credential.failed_attempts >= settings.login_max_failures:
        credential.failed_attempts = 0
        credential.locked_until = clock.now() + timedelta(seconds=settings.login_lockout_seconds)
        action = IdentityAction.SIGN_IN_LOCKOUT
    session.add(credential)
    record(
        session,
        action,
        actor=Actor("person", None),
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"reason": failure},
    )
    return SignInResult(failure=failure)
