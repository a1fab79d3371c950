"""Staff roles (admin, registrar, ca_officer, card_officer, auditor) held by persons.

Only an admin grants or withdraws them, every change is audited, and the last admin cannot be
withdrawn (that would leave nobody able to administer the service).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import unique_or_conflict
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from onecard.core.pagination import Page, paginate
from onecard.identity.actions import IdentityAction
from onecard.identity.models import Person, StaffRole, StaffRoleName, SubjectStatus


def parse_role(text: str) -> StaffRoleName:
    try:
        return StaffRoleName(text)
    except ValueError:
        allowed = ", ".join(r.value for r in StaffRoleName)
        raise InvalidInput(
            f"unknown staff role; use one of {allowed}", code="role_unknown"
        ) from None


def current_roles(session: Session, person_id: uuid.UUID) -> frozenset[StaffRoleName]:
    rows = session.exec(
        select(StaffRole.role).where(
            StaffRole.person_id == person_id, StaffRole.withdrawn_at.is_(None)
        )
    )
    return frozenset(StaffRoleName(role) for role in rows)


@dataclass(frozen=True)
class Standing:
    """What a request needs to know about the person calling."""

    status: str
    level: int
    roles: frozenset[StaffRoleName]


_STANDING = (
    select(Person.status, Person.assurance_level, StaffRole.role)
    .outerjoin(StaffRole, and_(StaffRole.person_id == Person.id, StaffRole.withdrawn_at.is_(None)))
    .where(Person.id == bindparam("person_id"))
)


def person_standing(session: Session, person_id: uuid.UUID) -> Standing | None:
    """The person's status, assurance level and current staff roles, in one query (every API
    request asks)."""
    rows = session.exec(_STANDING, params={"person_id": person_id}).all()
    if not rows:
        return None
    roles = frozenset(StaffRoleName(role) for _, _, role in rows if role is not None)
    return Standing(rows[0][0], rows[0][1], roles)


def list_grants(
    session: Session, *, limit: int, cursor: str | None, person_id: uuid.UUID | None = None
) -> Page[StaffRole]:
    """Current staff role grants, oldest first, optionally of one person."""
    stmt = select(StaffRole).where(StaffRole.withdrawn_at.is_(None))
    if person_id is not None:
        stmt = stmt.where(StaffRole.person_id == person_id)
    return paginate(
        session, stmt, StaffRole, limit=limit, cursor=cursor, time_column=StaffRole.granted_at
    )


def grant_role(
    session: Session,
    person: Person,
    role: StaffRoleName,
    *,
    actor: Actor,
    granted_by: uuid.UUID | None,
) -> StaffRole:
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidState("staff roles go to active persons only", code="person_not_active")
    grant = StaffRole(person_id=person.id, role=role, granted_by=granted_by, granted_at=clock.now())
    held = Conflict("the person already holds this role", code="role_already_held")
    with unique_or_conflict(session, lambda _: held):
        session.add(grant)
    record(
        session,
        IdentityAction.STAFF_ROLE_GRANT,
        actor=actor,
        subject=("staff_role", str(grant.id)),
        person_id=person.id,
        data={"role": str(role)},
    )
    return grant


def withdraw_role(
    session: Session, grant_id: uuid.UUID, *, actor: Actor, withdrawn_by: uuid.UUID | None
) -> StaffRole:
    grant = session.get(StaffRole, grant_id, with_for_update=True)
    if grant is None or grant.withdrawn_at is not None:
        raise NotFound("no such current staff role", code="staff_role_not_found")
    if grant.role == StaffRoleName.ADMIN:
        ensure_not_last_admin(session, grant.person_id)
    grant.withdrawn_at, grant.withdrawn_by = clock.now(), withdrawn_by
    session.add(grant)
    record(
        session,
        IdentityAction.STAFF_ROLE_WITHDRAW,
        actor=actor,
        subject=("staff_role", str(grant.id)),
        person_id=grant.person_id,
        data={"role": grant.role},
    )
    return grant


def _lock_admins(session: Session) -> list[StaffRole]:
    """Lock every current admin grant held by an active person, so two concurrent changes
    cannot both pass the last-admin check."""
    return list(
        session.exec(
            select(StaffRole)
            .join(Person, Person.id == StaffRole.person_id)
            .where(
                StaffRole.role == StaffRoleName.ADMIN,
                StaffRole.withdrawn_at.is_(None),
                Person.status == SubjectStatus.ACTIVE,
            )
            .with_for_update()
        )
    )


def admin_exists(session: Session) -> bool:
    """Whether some active person holds the admin role."""
    return (
        session.exec(
            select(func.count())
            .select_from(StaffRole)
            .join(Person, Person.id == StaffRole.person_id)
            .where(
                StaffRole.role == StaffRoleName.ADMIN,
                StaffRole.withdrawn_at.is_(None),
                Person.status == SubjectStatus.ACTIVE,
            )
        ).one()
        > 0
    )


def ensure_not_last_admin(session: Session, person_id: uuid.UUID) -> None:
    """Refuse a change that would leave no active administrator."""
    admins = _lock_admins(session)
    if any(g.person_id == person_id for g in admins) and len(admins) <= 1:
        raise InvalidState("the last administrator cannot be removed", code="last_admin")


def withdraw_all_roles(session: Session, person_id: uuid.UUID, *, actor: Actor) -> None:
    """Withdraw every staff role of a person whose record is closed."""
    grants = session.exec(
        select(StaffRole).where(StaffRole.person_id == person_id, StaffRole.withdrawn_at.is_(None))
    )
    for grant in grants:
        grant.withdrawn_at = clock.now()
        session.add(grant)
        record(
            session,
            IdentityAction.STAFF_ROLE_WITHDRAW,
            actor=actor,
            subject=("staff_role", str(grant.id)),
            person_id=person_id,
            data={"role": grant.role, "reason": "person closed"},
        )
