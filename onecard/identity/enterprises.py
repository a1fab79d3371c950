"""Enterprises (GB 32100 unified social credit code), their legal representative, and the
roles persons hold in them.

Who may manage an enterprise's roles: its legal representative, a member currently holding the
enterprise ``admin`` role, or a registrar at the counter (checked by :func:`can_manage`). A change
of legal representative is audited and leaves existing grants in place; the new representative
withdraws what they do not want.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import unique_or_conflict
from onecard.core.errors import Conflict, Forbidden, InvalidInput, InvalidState, NotFound
from onecard.core.pagination import Page, paginate
from onecard.core.validators import InvalidNumber, parse_credit_code
from onecard.identity import lifecycle
from onecard.identity.actions import IdentityAction
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import Enterprise, EnterpriseRoleGrant, Person, SubjectStatus

ENTERPRISE_ADMIN = "admin"
ENTERPRISE_AGENT = "agent"
# Named service roles: lowercase words joined by . _ : or -, e.g. "tax.filing", "hr:payroll".
_SERVICE_ROLE = re.compile(r"^[a-z][a-z0-9]*(?:[._:-][a-z0-9]+){0,7}$")


@dataclass(frozen=True)
class NewEnterprise:
    name: str
    credit_code: str
    legal_representative_id: uuid.UUID


def parse_code(text: str) -> str:
    try:
        return parse_credit_code(text).value
    except InvalidNumber as exc:
        raise InvalidInput(exc.reason, code=exc.code, field="credit_code") from exc


def parse_role(text: str) -> str:
    role = text.strip()
    if len(role) > 64 or not _SERVICE_ROLE.match(role):
        raise InvalidInput(
            "a role is 'admin', 'agent' or a lowercase service role such as 'tax.filing'",
            code="enterprise_role_invalid",
        )
    return role


def _name(text: str) -> str:
    cleaned = " ".join(text.split())
    if not 1 <= len(cleaned) <= 200:
        raise InvalidInput("the name must have 1 to 200 characters", code="name_invalid")
    return cleaned


def _active_person(session: Session, person_id: uuid.UUID, what: str) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"the {what} is not a registered person", code="person_not_found")
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidState(f"the {what} is not active", code="person_not_active")
    return person


def register_enterprise(session: Session, new: NewEnterprise, *, actor: Actor) -> Enterprise:
    code = parse_code(new.credit_code)
    representative = _active_person(session, new.legal_representative_id, "legal representative")
    now = clock.now()
    enterprise = Enterprise(
        name=_name(new.name),
        credit_code=code,
        legal_representative_id=representative.id,
        created_at=now,
        updated_at=now,
    )
    taken = Conflict("this credit code is already registered", code="credit_code_taken")
    with unique_or_conflict(session, lambda _: taken):
        session.add(enterprise)
    record(
        session,
        IdentityAction.ENTERPRISE_REGISTER,
        actor=actor,
        subject=("enterprise", str(enterprise.id)),
        person_id=representative.id,
        data={"credit_code": code},
    )
    return enterprise


def get_enterprise(session: Session, enterprise_id: uuid.UUID) -> Enterprise:
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None:
        raise NotFound("no such enterprise", code="enterprise_not_found")
    return enterprise


def find_by_credit_code(session: Session, text: str) -> Enterprise | None:
    return session.exec(
        select(Enterprise).where(Enterprise.credit_code == parse_code(text))
    ).one_or_none()


def list_enterprises(
    session: Session, *, limit: int, cursor: str | None, status: SubjectStatus | None = None
) -> Page[Enterprise]:
    stmt = select(Enterprise)
    if status is not None:
        stmt = stmt.where(Enterprise.status == status)
    return paginate(session, stmt, Enterprise, limit=limit, cursor=cursor)


def enterprises_of(session: Session, person_id: uuid.UUID) -> list[Enterprise]:
    """Enterprises a person represents or holds a current role in."""
    now = clock.now()
    member_of = select(EnterpriseRoleGrant.enterprise_id).where(
        EnterpriseRoleGrant.person_id == person_id,
        EnterpriseRoleGrant.withdrawn_at.is_(None),
        or_(EnterpriseRoleGrant.valid_from.is_(None), EnterpriseRoleGrant.valid_from <= now),
        or_(EnterpriseRoleGrant.valid_until.is_(None), EnterpriseRoleGrant.valid_until > now),
    )
    return list(
        session.exec(
            select(Enterprise)
            .where(
                or_(
                    Enterprise.legal_representative_id == person_id,
                    Enterprise.id.in_(member_of),
                )
            )
            .order_by(Enterprise.name)
        )
    )


def change_legal_representative(
    session: Session, enterprise: Enterprise, new_representative_id: uuid.UUID, *, actor: Actor
) -> Enterprise:
    _require_open(enterprise)
    representative = _active_person(session, new_representative_id, "new legal representative")
    previous = enterprise.legal_representative_id
    if previous == representative.id:
        return enterprise
    enterprise.legal_representative_id = representative.id
    enterprise.updated_at = clock.now()
    session.add(enterprise)
    for person_id in (previous, representative.id):
        record(
            session,
            IdentityAction.ENTERPRISE_LEGAL_REPRESENTATIVE,
            actor=actor,
            subject=("enterprise", str(enterprise.id)),
            person_id=person_id,
            data={"from": str(previous), "to": str(representative.id)},
        )
    return enterprise


_AUDIT_ACTIONS = {
    StatusChange.SUSPEND: IdentityAction.ENTERPRISE_SUSPEND,
    StatusChange.REINSTATE: IdentityAction.ENTERPRISE_REINSTATE,
    StatusChange.CLOSE: IdentityAction.ENTERPRISE_CLOSE,
}


def change_status(
    session: Session,
    enterprise: Enterprise,
    change: StatusChange,
    *,
    actor: Actor,
    reason: str,
) -> Enterprise:
    transition = lifecycle.plan(enterprise, change, reason, kind="enterprise")
    lifecycle.apply(enterprise, transition)
    session.add(enterprise)
    lifecycle.notify(session, "enterprise", enterprise.id, transition, actor)
    record(
        session,
        _AUDIT_ACTIONS[change],
        actor=actor,
        subject=("enterprise", str(enterprise.id)),
        data=transition.audit_data(),
    )
    return enterprise


# -- roles --------------------------------------------------------------------------------


def _current(enterprise_id: uuid.UUID, person_id: uuid.UUID | None) -> SelectOfScalar:
    """Grants not withdrawn and not yet ended (those starting later included)."""
    stmt = select(EnterpriseRoleGrant).where(
        EnterpriseRoleGrant.enterprise_id == enterprise_id,
        EnterpriseRoleGrant.withdrawn_at.is_(None),
        or_(
            EnterpriseRoleGrant.valid_until.is_(None),
            EnterpriseRoleGrant.valid_until > clock.now(),
        ),
    )
    if person_id is not None:
        stmt = stmt.where(EnterpriseRoleGrant.person_id == person_id)
    return stmt


def current_grants(
    session: Session, enterprise_id: uuid.UUID, *, person_id: uuid.UUID | None = None
) -> list[EnterpriseRoleGrant]:
    return list(
        session.exec(_current(enterprise_id, person_id).order_by(EnterpriseRoleGrant.granted_at))
    )


def current_grants_page(
    session: Session, enterprise_id: uuid.UUID, *, limit: int, cursor: str | None
) -> Page[EnterpriseRoleGrant]:
    return paginate(
        session,
        _current(enterprise_id, None),
        EnterpriseRoleGrant,
        limit=limit,
        cursor=cursor,
        time_column=EnterpriseRoleGrant.granted_at,
    )


def roles_of(session: Session, enterprise: Enterprise, person_id: uuid.UUID) -> set[str]:
    """Roles in force now (the legal representative implicitly holds ``admin``)."""
    now = clock.now()
    roles = {
        g.role
        for g in current_grants(session, enterprise.id, person_id=person_id)
        if g.is_current(now)
    }
    if enterprise.legal_representative_id == person_id:
        roles.add(ENTERPRISE_ADMIN)
    return roles


def acting_roles(session: Session, enterprise: Enterprise, person_id: uuid.UUID) -> set[str]:
    """What a person may act as for an enterprise at sign-in: their roles in force, and
    ``legal_representative`` when they are."""
    roles = roles_of(session, enterprise, person_id)
    if enterprise.legal_representative_id == person_id:
        roles.add("legal_representative")
    return roles


def can_manage(session: Session, enterprise: Enterprise, person_id: uuid.UUID) -> bool:
    return ENTERPRISE_ADMIN in roles_of(session, enterprise, person_id)


def require_manager(session: Session, enterprise: Enterprise, person_id: uuid.UUID) -> None:
    if not can_manage(session, enterprise, person_id):
        raise Forbidden(
            "only the legal representative or an enterprise admin manages roles",
            code="not_enterprise_admin",
        )


def grant_role(
    session: Session,
    enterprise: Enterprise,
    person_id: uuid.UUID,
    role: str,
    *,
    actor: Actor,
    granted_by: uuid.UUID | None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> EnterpriseRoleGrant:
    _require_open(enterprise)
    role = parse_role(role)
    _active_person(session, person_id, "person")
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("the role must end after it starts", code="role_period_invalid")
    if valid_until and valid_until <= clock.now():
        raise InvalidInput("the role would already have ended", code="role_period_invalid")
    grant = EnterpriseRoleGrant(
        enterprise_id=enterprise.id,
        person_id=person_id,
        role=role,
        valid_from=valid_from,
        valid_until=valid_until,
        granted_by=granted_by,
        granted_at=clock.now(),
    )
    _close_expired_grants(session, enterprise, person_id, role, actor=actor)
    held = Conflict("the person already holds this role", code="role_already_held")
    with unique_or_conflict(session, lambda _: held):
        session.add(grant)
    record(
        session,
        IdentityAction.ENTERPRISE_ROLE_GRANT,
        actor=actor,
        subject=("enterprise", str(enterprise.id)),
        person_id=person_id,
        data={
            "grant": str(grant.id),
            "role": role,
            "valid_from": valid_from.isoformat() if valid_from else None,
            "valid_until": valid_until.isoformat() if valid_until else None,
        },
    )
    return grant


def _close_expired_grants(
    session: Session, enterprise: Enterprise, person_id: uuid.UUID, role: str, *, actor: Actor
) -> None:
    """Mark grants of ``role`` whose period is over as withdrawn, so the role can be granted
    again (the uniqueness of a current grant is "not withdrawn")."""
    expired = session.exec(
        select(EnterpriseRoleGrant).where(
            EnterpriseRoleGrant.enterprise_id == enterprise.id,
            EnterpriseRoleGrant.person_id == person_id,
            EnterpriseRoleGrant.role == role,
            EnterpriseRoleGrant.withdrawn_at.is_(None),
            EnterpriseRoleGrant.valid_until <= clock.now(),
        )
    )
    for grant in expired:
        _withdraw(session, grant, at=grant.valid_until, by=None, actor=actor, reason="expired")
    session.flush()


def withdraw_role(
    session: Session,
    enterprise: Enterprise,
    grant_id: uuid.UUID,
    *,
    actor: Actor,
    withdrawn_by: uuid.UUID | None,
) -> EnterpriseRoleGrant:
    grant = session.get(EnterpriseRoleGrant, grant_id, with_for_update=True)
    if grant is None or grant.enterprise_id != enterprise.id or grant.withdrawn_at is not None:
        raise NotFound("no such current role in this enterprise", code="role_grant_not_found")
    _withdraw(session, grant, at=clock.now(), by=withdrawn_by, actor=actor)
    return grant


def _withdraw(
    session: Session,
    grant: EnterpriseRoleGrant,
    *,
    at: datetime | None,
    by: uuid.UUID | None,
    actor: Actor,
    reason: str | None = None,
) -> None:
    grant.withdrawn_at, grant.withdrawn_by = at, by
    session.add(grant)
    data = {"grant": str(grant.id), "role": grant.role} | ({"reason": reason} if reason else {})
    record(
        session,
        IdentityAction.ENTERPRISE_ROLE_WITHDRAW,
        actor=actor,
        subject=("enterprise", str(grant.enterprise_id)),
        person_id=grant.person_id,
        data=data,
    )


def _require_open(enterprise: Enterprise) -> None:
    if enterprise.status == SubjectStatus.CLOSED:
        raise InvalidState("the enterprise is closed", code="enterprise_closed")
