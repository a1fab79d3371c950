"""Persons (citizens): registration, look-up, contact details, assurance level and status.

The identity number is validated (GB 11643), sealed, blind-indexed and masked here and
nowhere else; birth date and sex are derived from it. Uniqueness is enforced by the database
(unique blind index, phone, email), not by a check before the insert, so two concurrent
registrations of the same number cannot both succeed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import unique_or_conflict
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from onecard.core.masking import mask_identity_number
from onecard.core.pagination import Page, paginate
from onecard.core.sealing import Sealer
from onecard.core.validators import IdentityNumber, InvalidNumber, parse_identity_number
from onecard.identity import lifecycle, staff
from onecard.identity.actions import IdentityAction
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import AssuranceLevel, Person, RegisteredBy, SubjectStatus
from onecard.identity.tokens import revoke_person_tokens

IDENTITY_INDEX_PURPOSE = "person.identity_number"
_PHONE = re.compile(r"^(?:1[3-9]\d{9}|\+[1-9]\d{7,14})$")
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$"
)


@dataclass(frozen=True)
class NewPerson:
    """A registration request after parsing; the identity number is still in plain text."""

    name: str
    identity_number: str
    phone: str | None = None
    email: str | None = None
    external_ref: str | None = None

    def __repr__(self) -> str:
        return f"NewPerson(name={self.name!r}, identity_number=<hidden>)"


# -- parsing ------------------------------------------------------------------------------


def parse_number(text: str) -> IdentityNumber:
    try:
        return parse_identity_number(text)
    except InvalidNumber as exc:
        raise InvalidInput(exc.reason, code=exc.code, field="identity_number") from exc


def normalise_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 100:
        raise InvalidInput("the name must have 1 to 100 characters", code="name_invalid")
    if any(ord(ch) < 32 for ch in cleaned):
        raise InvalidInput("the name contains control characters", code="name_invalid")
    return cleaned


def normalise_phone(phone: str | None) -> str | None:
    if phone is None or not phone.strip():
        return None
    cleaned = re.sub(r"[\s-]", "", phone)
    if cleaned.startswith("+86") and len(cleaned) == 14:
        cleaned = cleaned[3:]
    if not _PHONE.match(cleaned):
        raise InvalidInput(
            "the phone number must be a mainland mobile number or in +E.164 form",
            code="phone_invalid",
        )
    return cleaned


def normalise_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        raise InvalidInput("the email address is not valid", code="email_invalid")
    return cleaned


def identity_index(sealer: Sealer, number: str) -> bytes:
    return sealer.blind_index(number, purpose=IDENTITY_INDEX_PURPOSE)


# -- registration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRow:
    """The column values of a new, validated and sealed person.

    Cheap to build in bulk (an import builds one per row; constructing the ORM model costs
    several times more); :meth:`to_model` makes the :class:`Person` for a single registration.
    """

    id: uuid.UUID
    name: str
    identity_number_sealed: bytes
    identity_number_index: bytes
    identity_number_masked: str
    birth_date: date
    sex: str
    phone: str | None
    email: str | None
    assurance_level: int
    status: str
    status_reason: str | None
    registered_by: str
    external_ref: str | None
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:
        return f"PersonRow(id={self.id}, identity_number={self.identity_number_masked})"

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def to_model(self) -> Person:
        return Person(**self.values())


def build_person_row(
    sealer: Sealer, new: NewPerson, *, level: AssuranceLevel, registered_by: RegisteredBy
) -> PersonRow:
    """Validate, seal and blind-index a registration (shared by registration and import)."""
    number = parse_number(new.identity_number)
    person_id = uuid.uuid4()
    now = clock.now()
    return PersonRow(
        id=person_id,
        name=normalise_name(new.name),
        identity_number_sealed=sealer.seal(
            number.value, table="person", column="identity_number", row_id=person_id
        ),
        identity_number_index=identity_index(sealer, number.value),
        identity_number_masked=mask_identity_number(number.value),
        birth_date=number.birth_date,
        sex=number.sex,
        phone=normalise_phone(new.phone),
        email=normalise_email(new.email),
        assurance_level=int(level),
        status=SubjectStatus.ACTIVE.value,
        status_reason=None,
        registered_by=str(registered_by),
        external_ref=new.external_ref,
        created_at=now,
        updated_at=now,
    )


def build_person(
    sealer: Sealer, new: NewPerson, *, level: AssuranceLevel, registered_by: RegisteredBy
) -> Person:
    """A validated, sealed :class:`Person` ready to insert."""
    return build_person_row(sealer, new, level=level, registered_by=registered_by).to_model()


def register_person(
    session: Session,
    sealer: Sealer,
    new: NewPerson,
    *,
    actor: Actor,
    level: AssuranceLevel = AssuranceLevel.LOW,
    registered_by: RegisteredBy = RegisteredBy.SELF,
    evidence: dict[str, Any] | None = None,
) -> Person:
    """Insert a person and its audit event; a duplicate number, phone or email is a 409."""
    person = build_person(sealer, new, level=level, registered_by=registered_by)
    with unique_or_conflict(session, person_conflict):
        session.add(person)
    record(
        session,
        IdentityAction.PERSON_REGISTER,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"level": int(level), "registered_by": str(registered_by), **(evidence or {})},
    )
    return person


def person_conflict(constraint: str) -> Conflict:
    """The 409 for a unique violation on ``person``, named after the column that clashed."""
    if "phone" in constraint:
        return Conflict("this phone number is already registered", code="phone_taken")
    if "email" in constraint:
        return Conflict("this email address is already registered", code="email_taken")
    if "external_ref" in constraint:
        return Conflict("this external reference is already imported", code="external_ref_taken")
    return Conflict("this identity number is already registered", code="identity_number_taken")


# -- look-up ------------------------------------------------------------------------------


def get_person(session: Session, person_id: uuid.UUID) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound("no such person", code="person_not_found")
    return person


def find_by_identity_number(session: Session, sealer: Sealer, text: str) -> Person | None:
    number = parse_number(text)
    return session.exec(
        select(Person).where(Person.identity_number_index == identity_index(sealer, number.value))
    ).one_or_none()


def find_by_login(session: Session, sealer: Sealer, login: str) -> Person | None:
    """A person by identity number, phone or email (whatever the citizen typed)."""
    login = login.strip()
    if "@" in login:
        return session.exec(select(Person).where(Person.email == login.lower())).one_or_none()
    try:
        return find_by_identity_number(session, sealer, login)
    except InvalidInput:
        pass
    try:
        phone = normalise_phone(login)
    except InvalidInput:
        return None
    return session.exec(select(Person).where(Person.phone == phone)).one_or_none()


def list_persons(
    session: Session,
    *,
    limit: int,
    cursor: str | None,
    status: SubjectStatus | None = None,
    level: AssuranceLevel | None = None,
) -> Page[Person]:
    stmt = select(Person)
    if status is not None:
        stmt = stmt.where(Person.status == status)
    if level is not None:
        stmt = stmt.where(Person.assurance_level == int(level))
    return paginate(session, stmt, Person, limit=limit, cursor=cursor)


def record_staff_view(session: Session, persons: list[Person], *, actor: Actor, why: str) -> None:
    """Staff reading personal data is itself audited, so citizens can see who looked."""
    for person in persons:
        record(
            session,
            IdentityAction.PERSON_VIEW,
            actor=actor,
            subject=("person", str(person.id)),
            person_id=person.id,
            data={"via": why},
        )


def reveal_identity_number(
    session: Session, sealer: Sealer, person: Person, *, actor: Actor
) -> str:
    """The plain identity number, for a caller already authorised; always audited."""
    record(
        session,
        IdentityAction.PERSON_REVEAL,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
    )
    return sealer.open_text(
        person.identity_number_sealed, table="person", column="identity_number", row_id=person.id
    )


# -- changes ------------------------------------------------------------------------------


def update_contact(
    session: Session,
    person: Person,
    *,
    actor: Actor,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    clear: frozenset[str] = frozenset(),
) -> Person:
    """Change name, phone or email; fields in ``clear`` are removed."""
    _require_not_closed(person)
    updates = {
        "name": normalise_name(name) if name is not None else None,
        "phone": normalise_phone(phone),
        "email": normalise_email(email),
    }
    changes: dict[str, str | None] = {}
    for field_name, value in updates.items():
        if field_name in clear and field_name != "name":
            value = None
        elif value is None:
            continue
        if getattr(person, field_name) != value:
            changes[field_name] = value
    if not changes:
        return person
    with unique_or_conflict(session, person_conflict):
        for field_name, value in changes.items():
            setattr(person, field_name, value)
        person.updated_at = clock.now()
        session.add(person)
    changed = list(changes)
    record(
        session,
        IdentityAction.PERSON_UPDATE,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"fields": changed},
    )
    return person


def set_assurance_level(
    session: Session,
    person: Person,
    level: AssuranceLevel,
    *,
    actor: Actor,
    evidence: str,
) -> Person:
    """Raise (or lower) the level after an in-person check; ``evidence`` says what was seen."""
    _require_status(person, SubjectStatus.ACTIVE)
    if not evidence.strip():
        raise InvalidInput("say what evidence supports the level", code="evidence_required")
    previous = person.assurance_level
    person.assurance_level = int(level)
    person.updated_at = clock.now()
    session.add(person)
    record(
        session,
        IdentityAction.PERSON_LEVEL,
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
        data={"from": previous, "to": int(level), "evidence": evidence.strip()[:500]},
    )
    return person


_AUDIT_ACTIONS = {
    StatusChange.SUSPEND: IdentityAction.PERSON_SUSPEND,
    StatusChange.REINSTATE: IdentityAction.PERSON_REINSTATE,
    StatusChange.CLOSE: IdentityAction.PERSON_CLOSE,
}


def change_status(
    session: Session, person: Person, change: StatusChange, *, actor: Actor, reason: str
) -> Person:
    """Suspend, reinstate or close a person, with a reason; closing is final. Suspending or
    closing revokes the person's tokens; closing withdraws their staff roles."""
    transition = lifecycle.plan(person, change, reason, kind="person")
    if transition.target != SubjectStatus.ACTIVE:
        staff.ensure_not_last_admin(session, person.id)
    lifecycle.apply(person, transition)
    session.add(person)
    if transition.target != SubjectStatus.ACTIVE:
        revoke_person_tokens(session, person.id)
    if transition.target == SubjectStatus.CLOSED:
        staff.withdraw_all_roles(session, person.id, actor=actor)
    lifecycle.notify(session, "person", person.id, transition, actor)
    record(
        session,
        _AUDIT_ACTIONS[change],
        actor=actor,
        subject=("person", str(person.id)),
        person_id=person.id,
        data=transition.audit_data(),
    )
    return person


def _require_status(person: Person, status: SubjectStatus) -> None:
    if person.status != status:
        raise InvalidState(f"the person is {person.status}", code="person_status_conflict")


def _require_not_closed(person: Person) -> None:
    if person.status == SubjectStatus.CLOSED:
        raise InvalidState("the person's record is closed", code="person_closed")
