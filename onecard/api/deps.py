"""Dependencies routes declare in their signatures: the runtime, the caller, staff roles.

The caller is resolved from an RFC 9068 access token issued by the OpenID Connect provider
(or, once, the ``oct_`` bootstrap token) on every request. Revocation and roles are re-read from
the database each time, so a withdrawn role or a revoked token takes effect at once on every
worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from onecard.api.runtime import Runtime
from onecard.core.audit import Actor
from onecard.core.errors import Forbidden, Unauthenticated
from onecard.identity.models import AssuranceLevel, StaffRoleName, SubjectStatus
from onecard.identity.oidc.first_party import PORTAL_CLIENT_ID
from onecard.identity.oidc.models import Grant
from onecard.identity.oidc.tokens import TokenRejected, verify_access_token
from onecard.identity.staff import person_standing
from onecard.identity.tokens import TOKEN_PREFIX, authenticate

# Dependencies that do no I/O are ``async def``: FastAPI runs each plain ``def`` dependency in
# the thread pool, so a citizen's request made four thread hops (runtime, bearer token, caller,
# endpoint) where two do blocking work.


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (citizen or staff), a client, or the one-time bootstrap token.

    ``level`` is the assurance of this very sign-in: the lower of the person's level and the
    level the access token's ``acr`` asserts, so staff work needs a second factor each time.
    """

    token_id: str
    kind: str  # person, client, bootstrap
    person_id: uuid.UUID | None
    level: int
    roles: frozenset[StaffRoleName]
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None

    @property
    def actor(self) -> Actor:
        if self.person_id is not None:
            return Actor.person(self.person_id)
        if self.kind == "client":
            return Actor("client", self.client_id)
        return Actor("system", f"token:{self.token_id}")

    def require_person(self) -> uuid.UUID:
        if self.person_id is None:
            raise Forbidden("this token does not belong to a person", code="person_token_required")
        return self.person_id


_bearer = HTTPBearer(auto_error=False, description="An access token from `/oauth2/token`")


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated("a bearer token is required", code="token_missing")
    return credentials.credentials.strip()


BearerToken = Annotated[str, Depends(bearer_token)]
# Scopes that admit a person's token to onecard's own /v1 APIs (first-party clients only).
PERSON_API_SCOPES = frozenset({"account", "staff"})


def _level_of(claims: dict) -> int:
    acr = str(claims.get("acr", ""))
    return int(acr.rsplit(":", 1)[-1]) if acr[-1:] in ("1", "2", "3") else 1


def _resolve(runtime: Runtime, token: str) -> Principal:
    with runtime.database.read_session() as session:
        return _resolve_in(session, runtime, token)


def _resolve_in(session: Session, runtime: Runtime, token: str) -> Principal:
    if token.startswith(TOKEN_PREFIX):
        row = authenticate(session, token)
        return Principal(str(row.id), row.kind, None, 0, frozenset())
    try:
        info = verify_access_token(session, runtime.provider, token)
    except TokenRejected as exc:
        raise Unauthenticated(
            f"the access token is not valid: {exc.reason}", code="invalid_token"
        ) from None
    jti = str(info.claims["jti"])
    if info.person_id is None:
        return Principal(jti, "client", None, 0, frozenset(), info.scopes, info.client_id)
    principal = _person(
        session, jti, info.person_id, _level_of(info.claims), info.scopes, info.client_id
    )
    if principal is None:
        raise Unauthenticated("the account is not active", code="invalid_token")
    return principal


def _person(
    session: Session,
    token_id: str,
    person_id: uuid.UUID,
    level: int,
    scopes: frozenset[str],
    client_id: str | None,
) -> Principal | None:
    """The person as the database has them now (status, level, roles), at no more than the
    ``level`` their sign-in reached; ``None`` when the account is not active."""
    standing = person_standing(session, person_id)
    if standing is None or standing.status != SubjectStatus.ACTIVE:
        return None
    level = min(standing.level, level)
    return Principal(token_id, "person", person_id, level, standing.roles, scopes, client_id)


def grant_principal(session: Session, grant: Grant) -> Principal | None:
    """The person of a live grant of onecard's own pages (:mod:`onecard.api.portal`), as a
    token of that grant would make them; ``None`` when the account is no longer active."""
    scopes = frozenset(grant.scope.split())
    return _person(
        session, f"grant:{grant.id}", grant.person_id, grant.level, scopes, PORTAL_CLIENT_ID
    )


def current_principal(token: BearerToken, runtime: RuntimeDep) -> Principal:
    """A person calling onecard's own APIs with a token of a first-party scope."""
    with runtime.database.read_session() as session:
        return person_principal(session, runtime, token)


def person_principal(session: Session, runtime: Runtime, token: str) -> Principal:
    """What :func:`current_principal` decides, in the caller's read session: for a route that
    reads anyway, one session and one thread hop fewer (it takes :data:`BearerToken`)."""
    principal = _resolve_in(session, runtime, token)
    if principal.kind == "bootstrap":
        raise Forbidden(
            "the bootstrap token only creates the first administrator", code="forbidden"
        )
    if principal.kind == "person" and not principal.scopes & PERSON_API_SCOPES:
        raise Forbidden(
            "this token is for a portal, not for onecard's own APIs", code="insufficient_scope"
        )
    if principal.kind == "client":
        raise Forbidden("this endpoint needs a person's token", code="person_token_required")
    return principal


def bootstrap_principal(token: BearerToken, runtime: RuntimeDep) -> Principal:
    principal = _resolve(runtime, token)
    if principal.kind != "bootstrap":
        raise Forbidden("a bootstrap token is required", code="bootstrap_token_required")
    return principal


def client_principal(token: BearerToken, runtime: RuntimeDep) -> Principal:
    """A client (portal or terminal) calling with a client-credentials token."""
    principal = _resolve(runtime, token)
    if principal.kind != "client":
        raise Forbidden("this endpoint needs a client's token", code="client_token_required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
BootstrapPrincipal = Annotated[Principal, Depends(bootstrap_principal)]
ClientPrincipal = Annotated[Principal, Depends(client_principal)]


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: ClientPrincipal) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(f"this needs the {scope} scope", code="insufficient_scope")
        return principal

    return dependency


def require_staff(*roles: StaffRoleName) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting a person who holds one of ``roles`` at assurance level ≥ 2."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.roles.intersection(roles):
            needed = " or ".join(roles)
            raise Forbidden(f"this needs the {needed} role", code="role_required")
        if principal.level < AssuranceLevel.SUBSTANTIAL:
            raise Forbidden("staff work needs assurance level 2", code="assurance_level_too_low")
        if "staff" not in principal.scopes:
            raise Forbidden(
                "staff work needs a token with the staff scope", code="insufficient_scope"
            )
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
