"""Dependencies routes declare in their signatures: the runtime, the caller, staff roles.

The caller is resolved from an interim bearer token (``Authorization: Bearer oct_…``) on every
request, and roles are re-read from the database each time, so a withdrawn role or a revoked
token takes effect at once on every worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from onecard.api.runtime import Runtime
from onecard.core.audit import Actor
from onecard.core.errors import Forbidden, Unauthenticated
from onecard.identity.models import AssuranceLevel, Person, StaffRoleName, SubjectStatus
from onecard.identity.staff import current_roles
from onecard.identity.tokens import authenticate


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (citizen or staff) or the one-time bootstrap token."""

    token_id: uuid.UUID
    kind: str
    person_id: uuid.UUID | None
    level: int
    roles: frozenset[StaffRoleName]

    @property
    def actor(self) -> Actor:
        if self.person_id is None:
            return Actor("system", f"token:{self.token_id}")
        return Actor.person(self.person_id)

    def require_person(self) -> uuid.UUID:
        if self.person_id is None:
            raise Forbidden("this token does not belong to a person", code="person_token_required")
        return self.person_id


_bearer = HTTPBearer(auto_error=False, description="`oct_…` token from sign-in or the CLI")


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated("a bearer token is required", code="token_missing")
    return credentials.credentials.strip()


BearerToken = Annotated[str, Depends(bearer_token)]


def _resolve(runtime: Runtime, token: str) -> Principal:
    with runtime.database.session() as session:
        row = authenticate(session, token)
        if row.person_id is None:
            return Principal(row.id, row.kind, None, 0, frozenset())
        person = session.get(Person, row.person_id)
        if person is None or person.status != SubjectStatus.ACTIVE:
            raise Unauthenticated("the account is not active", code="invalid_token")
        roles = current_roles(session, person.id)
        return Principal(row.id, row.kind, person.id, person.assurance_level, roles)


def current_principal(token: BearerToken, runtime: RuntimeDep) -> Principal:
    principal = _resolve(runtime, token)
    if principal.kind == "bootstrap":
        raise Forbidden(
            "the bootstrap token only creates the first administrator", code="forbidden"
        )
    return principal


def bootstrap_principal(token: BearerToken, runtime: RuntimeDep) -> Principal:
    principal = _resolve(runtime, token)
    if principal.kind != "bootstrap":
        raise Forbidden("a bootstrap token is required", code="bootstrap_token_required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
BootstrapPrincipal = Annotated[Principal, Depends(bootstrap_principal)]


def require_staff(*roles: StaffRoleName) -> Callable[[Principal], Principal]:
    """A dependency admitting a person who holds one of ``roles`` at assurance level ≥ 2."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.roles.intersection(roles):
            needed = " or ".join(roles)
            raise Forbidden(f"this needs the {needed} role", code="role_required")
        if principal.level < AssuranceLevel.SUBSTANTIAL:
            raise Forbidden("staff work needs assurance level 2", code="assurance_level_too_low")
        return principal

    return dependency


Admin = Annotated[Principal, Depends(require_staff(StaffRoleName.ADMIN))]
# Least privilege: an admin manages roles, not registrations; an auditor reads, never writes.
Registrar = Annotated[Principal, Depends(require_staff(StaffRoleName.REGISTRAR))]
PersonReader = Annotated[
    Principal,
    Depends(require_staff(StaffRoleName.REGISTRAR, StaffRoleName.ADMIN, StaffRoleName.AUDITOR)),
]
Auditor = Annotated[Principal, Depends(require_staff(StaffRoleName.AUDITOR))]
