"""Enterprises: registration and status (registrar), members' roles (legal representative,
enterprise admins, or a registrar at the counter)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sqlmodel import Session

from onecard.api import idempotency
from onecard.api.deps import CurrentPrincipal, PersonReader, Principal, Registrar, RuntimeDep
from onecard.api.schemas import (
    EnterpriseOut,
    EnterpriseRegistration,
    LegalRepresentativeChange,
    PageOut,
    RoleGrantIn,
    RoleGrantOut,
    StatusReason,
)
from onecard.core.errors import Forbidden
from onecard.core.pagination import DEFAULT_LIMIT, check_limit
from onecard.identity import enterprises
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import Enterprise, StaffRoleName, SubjectStatus

router = APIRouter(prefix="/v1/enterprises", tags=["enterprises"])
_STAFF_READERS = {StaffRoleName.REGISTRAR, StaffRoleName.ADMIN, StaffRoleName.AUDITOR}


def _is_counter(principal: Principal) -> bool:
    return StaffRoleName.REGISTRAR in principal.roles and principal.level >= 2


def _member_or_staff(session: Session, enterprise: Enterprise, principal: Principal) -> None:
    if principal.roles & _STAFF_READERS and principal.level >= 2:
        return
    if principal.person_id and enterprises.roles_of(session, enterprise, principal.person_id):
        return
    raise Forbidden("you do not act for this enterprise", code="not_enterprise_member")


def _manager(session: Session, enterprise: Enterprise, principal: Principal) -> None:
    if _is_counter(principal):
        return
    enterprises.require_manager(session, enterprise, principal.require_person())


@router.post("", status_code=201, response_model=EnterpriseOut, summary="Register an enterprise")
def register(
    body: EnterpriseRegistration,
    request: Request,
    principal: Registrar,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    new = enterprises.NewEnterprise(body.name, body.credit_code, body.legal_representative_id)

    def create() -> EnterpriseOut:
        return EnterpriseOut.of(
            enterprises.register_enterprise(session, new, actor=principal.actor)
        )

    with runtime.database.session() as session:
        return idempotency.run(
            session,
            request,
            caller=str(principal.person_id),
            key=idempotency_key,
            body=body,
            create=create,
        )


@router.get("", response_model=PageOut[EnterpriseOut], summary="List enterprises (staff)")
def list_all(
    principal: PersonReader,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: SubjectStatus | None = None,
) -> PageOut[EnterpriseOut]:
    check_limit(limit)
    with runtime.database.session() as session:
        page = enterprises.list_enterprises(session, limit=limit, cursor=cursor, status=status)
        return PageOut(
            items=[EnterpriseOut.of(e) for e in page.items], next_cursor=page.next_cursor
        )


@router.get("/{enterprise_id}", response_model=EnterpriseOut, summary="One enterprise")
def get_one(
    enterprise_id: uuid.UUID, principal: CurrentPrincipal, runtime: RuntimeDep
) -> EnterpriseOut:
    with runtime.database.session() as session:
        enterprise = enterprises.get_enterprise(session, enterprise_id)
        _member_or_staff(session, enterprise, principal)
        return EnterpriseOut.of(enterprise)


@router.put(
    "/{enterprise_id}/legal-representative",
    response_model=EnterpriseOut,
    summary="Record a new legal representative (registrar); existing roles are kept",
)
def change_representative(
    enterprise_id: uuid.UUID,
    body: LegalRepresentativeChange,
    principal: Registrar,
    runtime: RuntimeDep,
) -> EnterpriseOut:
    with runtime.database.session() as session:
        enterprise = enterprises.change_legal_representative(
            session,
            enterprises.get_enterprise(session, enterprise_id),
            body.legal_representative_id,
            actor=principal.actor,
        )
        return EnterpriseOut.of(enterprise)


def _status_route(change: StatusChange, summary: str) -> None:
    verb = change.value

    @router.post(
        f"/{{enterprise_id}}/{verb}",
        response_model=EnterpriseOut,
        summary=summary,
        name=f"{verb}_enterprise",
    )
    def endpoint(
        enterprise_id: uuid.UUID, body: StatusReason, principal: Registrar, runtime: RuntimeDep
    ) -> EnterpriseOut:
        with runtime.database.session() as session:
            enterprise = enterprises.change_status(
                session,
                enterprises.get_enterprise(session, enterprise_id),
                change,
                actor=principal.actor,
                reason=body.reason,
            )
            return EnterpriseOut.of(enterprise)


_status_route(StatusChange.SUSPEND, "Suspend an enterprise")
_status_route(StatusChange.REINSTATE, "Reinstate a suspended enterprise")
_status_route(StatusChange.CLOSE, "Close an enterprise (final)")


@router.get(
    "/{enterprise_id}/roles",
    response_model=PageOut[RoleGrantOut],
    summary="Current role grants (including those starting later)",
)
def list_roles(
    enterprise_id: uuid.UUID,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[RoleGrantOut]:
    with runtime.database.session() as session:
        enterprise = enterprises.get_enterprise(session, enterprise_id)
        _member_or_staff(session, enterprise, principal)
        page = enterprises.current_grants_page(session, enterprise.id, limit=limit, cursor=cursor)
        return PageOut(items=[RoleGrantOut.of(g) for g in page.items], next_cursor=page.next_cursor)


@router.post(
    "/{enterprise_id}/roles",
    status_code=201,
    response_model=RoleGrantOut,
    summary="Grant a person a role in the enterprise",
)
def grant_role(
    enterprise_id: uuid.UUID,
    body: RoleGrantIn,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    def create() -> RoleGrantOut:
        enterprise = enterprises.get_enterprise(session, enterprise_id)
        _manager(session, enterprise, principal)
        return RoleGrantOut.of(
            enterprises.grant_role(
                session,
                enterprise,
                body.person_id,
                body.role,
                actor=principal.actor,
                granted_by=principal.person_id,
                valid_from=body.valid_from,
                valid_until=body.valid_until,
            )
        )

    with runtime.database.session() as session:
        return idempotency.run(
            session,
            request,
            caller=str(principal.person_id),
            key=idempotency_key,
            body=body,
            create=create,
        )


@router.delete(
    "/{enterprise_id}/roles/{grant_id}",
    response_model=RoleGrantOut,
    summary="Withdraw a role grant",
)
def withdraw_role(
    enterprise_id: uuid.UUID,
    grant_id: uuid.UUID,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> RoleGrantOut:
    with runtime.database.session() as session:
        enterprise = enterprises.get_enterprise(session, enterprise_id)
        _manager(session, enterprise, principal)
        return RoleGrantOut.of(
            enterprises.withdraw_role(
                session,
                enterprise,
                grant_id,
                actor=principal.actor,
                withdrawn_by=principal.person_id,
            )
        )
