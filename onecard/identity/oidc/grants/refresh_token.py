"""The ``refresh_token`` grant (RFC 6749 §6, OIDC Core §12, RFC 9700 §4.14.2).

Every use rotates the token. A refresh token is bound to its client; a narrower scope may be
asked for, never a wider one. Presenting a rotated token again is taken as theft: the whole
family (the grant) is revoked, and the answer is ``invalid_grant``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.identity.actions import IdentityAction
from onecard.identity.models import Person, SubjectStatus
from onecard.identity.oidc.errors import InvalidGrant, InvalidRequest, InvalidScope, ReuseDetected
from onecard.identity.oidc.grants import revoke_grant
from onecard.identity.oidc.grants.issue import issue_for_grant
from onecard.identity.oidc.grants.response import TokenResponse
from onecard.identity.oidc.models import Client, Grant, RefreshToken, SsoSession
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import token_hash


@dataclass(frozen=True)
class RefreshRequest:
    refresh_token: str
    scope: str | None

    def __repr__(self) -> str:
        return f"RefreshRequest(scope={self.scope!r})"


def refresh(
    session: Session, provider: Provider, client: Client, request: RefreshRequest
) -> TokenResponse:
    if not request.refresh_token or len(request.refresh_token) > 200:
        raise InvalidRequest("refresh_token is required")
    row = session.exec(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash(request.refresh_token))
        .with_for_update()
    ).one_or_none()
    grant = session.get(Grant, row.grant_id) if row else None
    if row is None or grant is None or grant.client_id != client.id:
        raise InvalidGrant("the refresh token is not valid for this client")
    now = clock.now()
    if grant.revoked_at is not None:
        raise InvalidGrant("the refresh token was revoked")
    if row.used_at is not None:
        revoke_grant(session, grant.id, reason="refresh_token_reuse", actor=Actor.system())
        raise ReuseDetected("the refresh token was already used; its family is revoked")
    if row.expires_at <= now:
        raise InvalidGrant("the refresh token has expired")
    person = session.get(Person, grant.person_id)
    if person is None or person.status != SubjectStatus.ACTIVE:
        raise InvalidGrant("the account is not active")
    scope = _narrowed(grant.scope, request.scope, allowed=client.scopes)
    row.used_at = now
    session.add(row)
    sso = session.get(SsoSession, grant.session_id) if grant.session_id else None
    issued = issue_for_grant(session, provider, client, grant, person, sso, scope=scope, nonce=None)
    # Audited last: appending locks the chain head until commit, so signing happens before.
    record(
        session,
        IdentityAction.REFRESH_TOKEN_ROTATE,
        actor=Actor("client", client.client_id),
        subject=("grant", str(grant.id)),
        person_id=person.id,
    )
    return issued


def _narrowed(granted: str, asked: str | None, *, allowed: list[str]) -> str:
    """The scope of the refreshed tokens: what was asked (never wider than the grant), less
    any scope an administrator has since taken away from the client."""
    wanted = asked.split() if asked else granted.split()
    if not set(wanted) <= set(granted.split()):
        raise InvalidScope("a refresh cannot widen the scope")
    kept = [scope for scope in dict.fromkeys(wanted) if scope in allowed]
    if not kept:
        raise InvalidScope("none of the granted scopes is still allowed to this client")
    return " ".join(kept)
