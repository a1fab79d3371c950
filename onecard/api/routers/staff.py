"""Staff roles: granted and withdrawn by administrators only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from onecard.api import idempotency
from onecard.api.deps import Admin, RuntimeDep
from onecard.api.schemas import PageOut, StaffRoleGrant, StaffRoleOut
from onecard.core.pagination import DEFAULT_LIMIT
from onecard.identity import persons, staff

router = APIRouter(prefix="/v1/staff-roles", tags=["staff"])


@router.get("", response_model=PageOut[StaffRoleOut], summary="Current staff roles")
def list_roles(
    principal: Admin,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    person_id: uuid.UUID | None = None,
) -> PageOut[StaffRoleOut]:
    with runtime.database.session() as session:
        page = staff.list_grants(session, limit=limit, cursor=cursor, person_id=person_id)
        return PageOut(items=[StaffRoleOut.of(g) for g in page.items], next_cursor=page.next_cursor)


@router.post("", status_code=201, response_model=StaffRoleOut, summary="Grant a staff role")
def grant(
    body: StaffRoleGrant,
    request: Request,
    principal: Admin,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    role = staff.parse_role(body.role)

    def create() -> StaffRoleOut:
        person = persons.get_person(session, body.person_id)
        return StaffRoleOut.of(
            staff.grant_role(
                session, person, role, actor=principal.actor, granted_by=principal.person_id
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


@router.delete("/{grant_id}", response_model=StaffRoleOut, summary="Withdraw a staff role")
def withdraw(grant_id: uuid.UUID, principal: Admin, runtime: RuntimeDep) -> StaffRoleOut:
    with runtime.database.session() as session:
        grant_row = staff.withdraw_role(
            session, grant_id, actor=principal.actor, withdrawn_by=principal.person_id
        )
        return StaffRoleOut.of(grant_row)
