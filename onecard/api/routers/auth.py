"""Interim authentication: sign-in for a bearer token, sign-out, and the first-admin bootstrap.

The OpenID Connect provider (issue #3) replaces sign-in with the authorization code flow.
"""

from __future__ import annotations

from fastapi import APIRouter

from onecard.api.deps import BootstrapPrincipal, CurrentPrincipal, RuntimeDep
from onecard.api.schemas import Bootstrap, PersonOut, SignIn, TokenOut
from onecard.core.errors import TooManyAttempts, Unauthenticated
from onecard.identity import bootstrap as bootstrapping
from onecard.identity.models import ApiToken
from onecard.identity.persons import NewPerson
from onecard.identity.signin import SignInRequest, sign_in
from onecard.identity.tokens import revoke_token

router = APIRouter(prefix="/v1", tags=["authentication"])

_FAILURES = {
    "invalid_credentials": "the sign-in details are not correct",
    "totp_required": "enter the code from your authenticator app",
    "totp_invalid": "the authenticator code is not correct or was already used",
    "recovery_code_invalid": "the recovery code is not correct or was already used",
    "account_not_active": "the account is not active",
}


@router.post("/auth/sign-in", response_model=TokenOut, summary="Sign in for a bearer token")
def sign_in_route(body: SignIn, runtime: RuntimeDep) -> TokenOut:
    request = SignInRequest(body.login, body.password, body.totp_code, body.recovery_code)
    result = sign_in(runtime.database, runtime.sealer, runtime.hasher, runtime.settings, request)
    if result.failure == "account_locked":
        raise TooManyAttempts(
            "too many failed sign-ins; try again later",
            retry_after=result.retry_after or 60,
            code="account_locked",
        )
    if result.token is None:
        failure = result.failure or "invalid_credentials"
        raise Unauthenticated(_FAILURES[failure], code=failure)
    return TokenOut(access_token=result.token, expires_in=runtime.settings.api_token_ttl_seconds)


@router.post("/auth/sign-out", status_code=204, summary="Revoke the token used for this call")
def sign_out(principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        row = session.get(ApiToken, principal.token_id)
        if row is not None:
            revoke_token(session, row, actor=principal.actor)


@router.post(
    "/bootstrap",
    status_code=201,
    response_model=PersonOut,
    summary="Create the first administrator with the one-time bootstrap token",
)
def bootstrap(body: Bootstrap, principal: BootstrapPrincipal, runtime: RuntimeDep) -> PersonOut:
    new = NewPerson(body.name, body.identity_number, body.phone, body.email)
    with runtime.database.session() as session:
        token = session.get(ApiToken, principal.token_id)
        assert token is not None
        bootstrapping.consume_bootstrap_token(session, token)
        person = bootstrapping.create_first_admin(
            session, runtime.sealer, runtime.hasher, new, body.password, actor=principal.actor
        )
        return PersonOut.of(person)
