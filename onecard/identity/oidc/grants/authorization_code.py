"""The ``authorization_code`` grant (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3).

A code is single-use, short-lived and bound to its client, redirect URI, PKCE challenge and
nonce. Presenting a used code again revokes the grant it produced (and so every token issued
from it) and is answered ``invalid_grant`` (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.identity.actions import IdentityAction
from onecard.identity.models import Person, SubjectStatus
from onecard.identity.oidc.errors import InvalidGrant, InvalidRequest, ReuseDetected
from onecard.identity.oidc.grants import revoke_grant
from onecard.identity.oidc.grants.issue import issue_for_grant
from onecard.identity.oidc.grants.response import TokenResponse
from onecard.identity.oidc.models import AuthorizationCode, Client, Grant, SsoSession
from onecard.identity.oidc.pkce import check_verifier
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import token_hash


@dataclass(frozen=True)
class CodeExchange:
    code: str
    redirect_uri: str | None
    code_verifier: str | None


def exchange_code(
    session: Session, provider: Provider, client: Client, request: CodeExchange
) -> TokenResponse:
    if not request.code or len(request.code) > 200:
        raise InvalidRequest("code is required")
    code = session.exec(
        select(AuthorizationCode)
        .where(AuthorizationCode.code_hash == token_hash(request.code))
        .with_for_update()
    ).one_or_none()
    if code is None or code.client_id != client.id:
        raise InvalidGrant("the code is not valid for this client")
    if code.used_at is not None:
        if code.grant_id is not None:
            revoke_grant(session, code.grant_id, reason="code_reuse", actor=Actor.system())
        raise ReuseDetected("the code was already used; the tokens issued from it are revoked")
    now = clock.now()
    if code.expires_at <= now:
        raise InvalidGrant("the code has expired")
    if request.redirect_uri != code.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    check_verifier(code.code_challenge, request.code_verifier)
    sso = session.get(SsoSession, code.session_id)
    person = session.get(Person, code.person_id)
    if sso is None or sso.ended_at is not None or person is None:
        raise InvalidGrant("the sign-in session has ended")
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidGrant("the account is not active")
    grant = Grant(
        client_id=client.id,
        person_id=person.id,
        session_id=sso.id,
        scope=code.scope,
        claims=code.claims,
        enterprise_id=code.enterprise_id,
        auth_time=code.auth_time,
        level=code.level,
        amr=list(code.amr),
        created_at=now,
        expires_at=now + provider.refresh_token_ttl,
    )
    session.add(grant)
    session.flush()
    code.used_at, code.grant_id = now, grant.id
    session.add(code)
    issued = issue_for_grant(
        session, provider, client, grant, person, sso, scope=code.scope, nonce=code.nonce
    )
    # Audited last: appending locks the chain head until commit, so signing happens before.
    record(
        session,
        IdentityAction.GRANT_CREATE,
        actor=Actor.person(person.id),
        subject=("grant", str(grant.id)),
        person_id=person.id,
        data={"client": client.client_id, "scope": code.scope},
    )
    return issued
