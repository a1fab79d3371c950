"""Token introspection (RFC 7662) and revocation (RFC 7009), for authenticated clients.

A client learns only about its own tokens: anything else, and anything revoked, expired or
malformed, is ``{"active": false}`` with nothing more. Revoking a refresh token revokes its
grant (the family and its access tokens); revoking an access token lists its ``jti`` as
revoked. Revocation answers 200 whatever the token was (RFC 7009 §2.2).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.identity.actions import IdentityAction
from onecard.identity.oidc.grants import revoke_grant
from onecard.identity.oidc.models import AccessToken, Client, Grant, RefreshToken
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import TokenRejected, token_hash, verify_access_token

INACTIVE: dict[str, Any] = {"active": False}


def introspect(
    session: Session, provider: Provider, client: Client, token: str, hint: str | None
) -> dict[str, Any]:
    if not token or len(token) > 8192:
        return INACTIVE
    if token.count(".") == 2:
        return _introspect_access_token(session, provider, client, token)
    return _introspect_refresh_token(session, client, token)


def _introspect_access_token(
    session: Session, provider: Provider, client: Client, token: str
) -> dict[str, Any]:
    try:
        info = verify_access_token(session, provider, token)
    except TokenRejected:
        return INACTIVE
    if info.client_id != client.client_id:
        return INACTIVE
    claims = info.claims
    body = {
        "active": True,
        "token_type": "Bearer",
        **{
            k: claims[k]
            for k in (
                "scope",
                "client_id",
                "sub",
                "exp",
                "iat",
                "iss",
                "aud",
                "jti",
                "acr",
                "auth_time",
            )
            if k in claims
        },
    }
    return body


def _introspect_refresh_token(session: Session, client: Client, token: str) -> dict[str, Any]:
    row = session.get(RefreshToken, token_hash(token))
    grant = session.get(Grant, row.grant_id) if row else None
    if row is None or grant is None or grant.client_id != client.id:
        return INACTIVE
    if row.used_at or grant.revoked_at or row.expires_at <= clock.now():
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": client.client_id,
        "scope": grant.scope,
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.created_at.timestamp()),
    }


def revoke(session: Session, provider: Provider, client: Client, token: str) -> None:
    if not token or len(token) > 8192:
        return
    if token.count(".") == 2:
        _revoke_access_token(session, provider, client, token)
        return
    row = session.get(RefreshToken, token_hash(token))
    grant = session.get(Grant, row.grant_id) if row else None
    if grant is not None and grant.client_id == client.id:
        revoke_grant(session, grant.id, reason="revoked_by_client", actor=_actor(client))


def _revoke_access_token(session: Session, provider: Provider, client: Client, token: str) -> None:
    try:
        info = verify_access_token(session, provider, token)
    except TokenRejected:
        return
    if info.client_id != client.client_id:
        return
    jti = info.claims["jti"]
    row = session.exec(select(AccessToken).where(AccessToken.jti == jti)).one_or_none()
    if row is None:
        row = AccessToken(
            jti=jti,
            client_id=client.id,
            expires_at=datetime.fromtimestamp(int(info.claims["exp"]), tz=UTC),
        )
    row.revoked_at = clock.now()
    session.add(row)
    record(
        session,
        IdentityAction.ACCESS_TOKEN_REVOKE,
        actor=_actor(client),
        subject=("access_token", jti),
        person_id=info.person_id,
    )


def _actor(client: Client) -> Actor:
    return Actor("client", client.client_id)
