"""Credentials: password (argon2id), TOTP (RFC 6238, pyotp) and single-use recovery codes.

- A TOTP code is accepted for the current 30-second step or one step either side (clock drift),
  and only for a step later than the last one accepted, so a code seen over someone's shoulder
  cannot be replayed within its window. The step is advanced with a conditional UPDATE, so two
  concurrent uses of one code cannot both succeed.
- TOTP secrets are sealed; recovery codes are stored as HMAC-SHA256 under a derived key and
  marked used with a conditional UPDATE (single use under concurrency).
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

import pyotp
from sqlalchemy import update
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from onecard.core.sealing import Sealer
from onecard.identity.actions import IdentityAction
from onecard.identity.models import (
    PasswordCredential,
    Person,
    RecoveryCode,
    TotpCredential,
)
from onecard.identity.passwords import PasswordHasher, check_password_policy

_SIX_DIGITS = re.compile(r"[0-9]{6}")  # ASCII only: str.isdigit() also accepts other scripts
TOTP_ISSUER = "onecard"
TOTP_STEP = 30
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
_RECOVERY_PURPOSE = "recovery_code"


# -- password -----------------------------------------------------------------------------


def hash_new_password(
    hasher: PasswordHasher, password: str, *, personal_values: tuple[str | None, ...] = ()
) -> str:
    """Check the policy and hash, outside any transaction: argon2id takes tens of
    milliseconds, and a transaction that waits on it holds its locks (on SQLite, the one write
    lock) for that long."""
    check_password_policy(password, personal_values=personal_values)
    return hasher.hash(password)


def store_password(session: Session, person: Person, password_hash: str, *, actor: Actor) -> None:
    """Save a hash from :func:`hash_new_password`."""
    credential = session.get(PasswordCredential, person.id)
    if credential is None:
        credential = PasswordCredential(person_id=person.id, hash=password_hash)
    credential.hash = password_hash
    credential.changed_at = clock.now()
    session.add(credential)
    record(
        session,
        IdentityAction.PASSWORD_SET,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
    )


def personal_values(sealer: Sealer, person: Person) -> tuple[str | None, ...]:
    """What a password must not contain: the identity number, phone and email."""
    number = sealer.open_text(
        person.identity_number_sealed, table="person", column="identity_number", row_id=person.id
    )
    return (number, person.phone, person.email)


def set_password(
    session: Session,
    sealer: Sealer,
    hasher: PasswordHasher,
    person: Person,
    password: str,
    *,
    actor: Actor,
) -> None:
    """Policy, hash and store in one call (CLI and bootstrap, where latency does not matter)."""
    hashed = hash_new_password(hasher, password, personal_values=personal_values(sealer, person))
    store_password(session, person, hashed, actor=actor)


def password_hash_of(session: Session, person_id: uuid.UUID) -> str | None:
    credential = session.get(PasswordCredential, person_id)
    return credential.hash if credential else None


# -- TOTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    provisioning_uri: str

    def __repr__(self) -> str:
        return "TotpEnrolment(<secret hidden>)"


def _seal_secret(sealer: Sealer, person_id: uuid.UUID, secret: str) -> bytes:
    return sealer.seal(secret, table="totp_credential", column="secret", row_id=person_id)


def _open_secret(sealer: Sealer, credential: TotpCredential) -> str:
    return sealer.open_text(
        credential.secret_sealed,
        table="totp_credential",
        column="secret",
        row_id=credential.person_id,
    )


def has_totp(session: Session, person_id: uuid.UUID) -> bool:
    credential = session.get(TotpCredential, person_id)
    return credential is not None and credential.confirmed_at is not None


def begin_totp_enrolment(
    session: Session, sealer: Sealer, person: Person, *, actor: Actor, label: str
) -> TotpEnrolment:
    """A new secret awaiting its first code; replaces an unconfirmed enrolment."""
    credential = session.get(TotpCredential, person.id)
    if credential is not None and credential.confirmed_at is not None:
        raise Conflict("a TOTP authenticator is already enrolled", code="totp_already_enrolled")
    secret = pyotp.random_base32()
    if credential is None:
        credential = TotpCredential(person_id=person.id, secret_sealed=b"")
    credential.secret_sealed = _seal_secret(sealer, person.id, secret)
    credential.last_used_step, credential.created_at = 0, clock.now()
    session.add(credential)
    record(
        session,
        IdentityAction.TOTP_ENROL,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=TOTP_ISSUER)
    return TotpEnrolment(secret, uri)


def confirm_totp(
    session: Session, sealer: Sealer, person: Person, code: str, *, actor: Actor
) -> None:
    credential = session.get(TotpCredential, person.id)
    if credential is None:
        raise NotFound("no TOTP enrolment in progress", code="totp_not_enrolled")
    if credential.confirmed_at is not None:
        raise Conflict("the authenticator is already confirmed", code="totp_already_enrolled")
    if not _consume_totp(session, sealer, credential, code):
        raise InvalidInput("the code is not valid", code="totp_invalid")
    credential.confirmed_at = clock.now()
    session.add(credential)
    record(
        session,
        IdentityAction.TOTP_CONFIRM,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
    )


def verify_totp(session: Session, sealer: Sealer, person_id: uuid.UUID, code: str) -> bool:
    """True once per code: a confirmed authenticator's code for a step not used before."""
    credential = session.get(TotpCredential, person_id)
    if credential is None or credential.confirmed_at is None:
        return False
    return _consume_totp(session, sealer, credential, code)


def remove_totp(session: Session, person: Person, *, actor: Actor) -> None:
    credential = session.get(TotpCredential, person.id)
    if credential is None:
        raise NotFound("no TOTP authenticator enrolled", code="totp_not_enrolled")
    session.delete(credential)
    record(
        session,
        IdentityAction.TOTP_REMOVE,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
    )


def _consume_totp(session: Session, sealer: Sealer, credential: TotpCredential, code: str) -> bool:
    code = code.strip().replace(" ", "")
    if not _SIX_DIGITS.fullmatch(code):
        return False
    totp = pyotp.TOTP(_open_secret(sealer, credential))
    current = int(clock.now().timestamp()) // TOTP_STEP
    matched = None
    for step in (current - 1, current, current + 1):
        # Compare every candidate (no early exit) so timing does not reveal which step matched.
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    if matched is None:
        return False
    claimed = session.exec(  # type: ignore[call-overload]
        update(TotpCredential)
        .where(
            TotpCredential.person_id == credential.person_id,
            TotpCredential.last_used_step < matched,
        )
        .values(last_used_step=matched)
    )
    if claimed.rowcount != 1:
        return False
    session.refresh(credential)
    return True


# -- recovery codes -----------------------------------------------------------------------


def _code_hash(sealer: Sealer, code: str) -> bytes:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return sealer.blind_index(normalised, purpose=_RECOVERY_PURPOSE)


def generate_recovery_codes(
    session: Session, sealer: Sealer, person: Person, *, actor: Actor
) -> list[str]:
    """Ten new codes (shown once); every earlier unused code stops working."""
    if not has_totp(session, person.id):
        raise InvalidState(
            "enrol an authenticator before creating recovery codes", code="totp_not_enrolled"
        )
    session.exec(  # type: ignore[call-overload]
        update(RecoveryCode)
        .where(RecoveryCode.person_id == person.id, RecoveryCode.used_at.is_(None))
        .values(used_at=clock.now())
    )
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(person_id=person.id, code_hash=_code_hash(sealer, raw)))
    record(
        session,
        IdentityAction.RECOVERY_CODES_GENERATE,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"count": RECOVERY_CODE_COUNT},
    )
    return codes


def use_recovery_code(
    session: Session, sealer: Sealer, person_id: uuid.UUID, code: str, *, actor: Actor
) -> bool:
    used = session.exec(  # type: ignore[call-overload]
        update(RecoveryCode)
        .where(
            RecoveryCode.person_id == person_id,
            RecoveryCode.code_hash == _code_hash(sealer, code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=clock.now())
    )
    if used.rowcount != 1:
        return False
    remaining = len(
        session.exec(
            select(RecoveryCode.id).where(
                RecoveryCode.person_id == person_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
    record(
        session,
        IdentityAction.RECOVERY_CODE_USE,
        actor=actor,
        subject=("person", str(person_id)),
        person_id=person_id,
        data={"remaining": remaining},
    )
    return True
