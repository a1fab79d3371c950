"""Issuing the tokens of a person's grant: access token, rotated refresh token, ID token."""

from __future__ import annotations

from sqlmodel import Session

from onecard.identity.models import Person
from onecard.identity.oidc.claims import (
    ClaimContext,
    ClaimsRequest,
    claim_values,
    released_claims,
)
from onecard.identity.oidc.grants import issue_refresh_token
from onecard.identity.oidc.grants.response import TokenResponse
from onecard.identity.oidc.models import Client, Grant, GrantType, SsoSession
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.subjects import subject_for
from onecard.identity.oidc.tokens import PersonAuth, mint_access_token, mint_id_token


def person_auth(
    provider: Provider, client: Client, grant: Grant, sso: SsoSession | None
) -> PersonAuth:
    return PersonAuth(
        person_id=grant.person_id,
        subject=subject_for(provider.sealer, client, grant.person_id),
        auth_time=grant.auth_time,
        level=grant.level,
        amr=tuple(grant.amr),
        sid=sso.sid if sso else None,
    )


def issue_for_grant(
    session: Session,
    provider: Provider,
    client: Client,
    grant: Grant,
    person: Person,
    sso: SsoSession | None,
    *,
    scope: str,
    nonce: str | None,
) -> TokenResponse:
    auth = person_auth(provider, client, grant, sso)
    access_token, ttl = mint_access_token(
        session, provider, client, scope=scope, auth=auth, grant_id=grant.id
    )
    refresh_token = (
        issue_refresh_token(session, provider, grant)
        if GrantType.REFRESH_TOKEN in client.grant_types
        else None
    )
    id_token = None
    if "openid" in scope.split():
        request = ClaimsRequest.from_json(grant.claims)
        extra = {}
        if request and request.id_token:
            extra = claim_values(
                session,
                provider.sealer,
                person,
                _allowed(request.id_token, scope, client),
                ClaimContext(client.client_id, grant.enterprise_id),
            )
        id_token = mint_id_token(
            session,
            provider,
            client,
            auth,
            nonce=nonce,
            access_token=access_token,
            extra_claims=extra,
        )
    return TokenResponse(access_token, ttl, scope, refresh_token, id_token)


def _allowed(requested: dict, scope: str, client: Client) -> list[str]:
    """The claims asked for the ID token that the grant's scopes and the client permit."""
    permitted = released_claims(
        scope.split(),
        ClaimsRequest(id_token=requested, userinfo={}),
        allowed_scopes=client.scopes,
        full_identity_number=client.full_identity_number,
    )
    return [claim for claim in permitted if claim in requested]
