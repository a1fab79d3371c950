"""onecard's own first-party clients: the command line's, and the pages' (the portal).

``onecard admin token`` (an operator with the database and the master key) mints a person's
access token for onecard's own APIs without a browser; it is a grant of the built-in
``onecard-cli`` client like any other, so it is listed, revocable and audited.

onecard's own pages (the citizen's card, the counter) sign citizens and staff in as the
built-in public client ``onecard-portal``: the authorization code flow with PKCE through the
same authorization endpoint as every portal (password, second factor, step-up, throttling),
but without a consent screen (``consent_required`` false), since the citizen is at onecard
itself. The page keeps the resulting grant; :func:`live_portal_grant` re-checks it on every
request, so ending the sign-in session (logout, or staff ending it) closes the pages at once,
on every worker.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.identity.actions import IdentityAction
from onecard.identity.models import Person
from onecard.identity.oidc.errors import InvalidGrant
from onecard.identity.oidc.grants.authorization_code import CodeExchange, exchange_code
from onecard.identity.oidc.grants.issue import person_auth
from onecard.identity.oidc.models import (
    AuthorizationCode,
    Client,
    ClientAuthMethod,
    ClientStatus,
    ClientType,
    Grant,
    GrantType,
    SsoSession,
)
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import mint_access_token, token_hash

CLI_CLIENT_ID = "onecard-cli"
PORTAL_CLIENT_ID = "onecard-portal"
# What onecard's pages may ask for: the person's own APIs and staff work, never a portal's
# claims (a page needs no ID token claims beyond ``sub``).
PORTAL_SCOPES = ("openid", "account", "staff")


def cli_client(session: Session) -> Client:
    """The built-in client of operator-minted tokens (no secret, no redirect: unusable
    at the token endpoint, it only labels the grants the CLI makes)."""
    client = session.exec(select(Client).where(Client.client_id == CLI_CLIENT_ID)).one_or_none()
    if client is None:
        client = Client(
            client_id=CLI_CLIENT_ID,
            name="onecard command line",
            client_type=ClientType.CONFIDENTIAL,
            auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
            grant_types=[],
            scopes=["openid", "account", "staff"],
        )
        session.add(client)
        session.flush()
    return client


def portal_client(session: Session) -> Client | None:
    return session.exec(select(Client).where(Client.client_id == PORTAL_CLIENT_ID)).one_or_none()


def ensure_portal_client(
    session: Session, redirect_uris: list[str], post_logout_redirect_uris: list[str]
) -> Client:
    """The pages' client, created on first use and kept pointing at this deployment's pages
    (its redirect URIs follow the issuer URL); audited when made or changed. The caller
    commits; a concurrent first use may lose the insert to a unique violation and retry."""
    client = portal_client(session)
    action = IdentityAction.CLIENT_UPDATE
    if client is None:
        action = IdentityAction.CLIENT_CREATE
        client = Client(
            client_id=PORTAL_CLIENT_ID,
            name="onecard",
            client_type=ClientType.PUBLIC,
            auth_method=ClientAuthMethod.NONE,
            grant_types=[GrantType.AUTHORIZATION_CODE],
            scopes=list(PORTAL_SCOPES),
            consent_required=False,
        )
    elif (
        client.redirect_uris == redirect_uris
        and client.post_logout_redirect_uris == post_logout_redirect_uris
    ):
        return client
    client.redirect_uris = list(redirect_uris)
    client.post_logout_redirect_uris = list(post_logout_redirect_uris)
    client.updated_at = clock.now()
    session.add(client)
    session.flush()
    record(
        session,
        action,
        actor=Actor.system(),
        subject=("client", PORTAL_CLIENT_ID),
        data={"redirect_uris": client.redirect_uris, "scopes": client.scopes},
    )
    return client


def redeem_portal_code(
    session: Session, provider: Provider, code: str, redirect_uri: str, verifier: str
) -> Grant:
    """Exchange a code the pages received, as their client, for the grant it makes.

    The tokens issued with it are not kept: the pages hold the grant (in a sealed cookie) and
    re-check it each time, where tokens would outlive a logout by their lifetime. Raises the
    :class:`~onecard.identity.oidc.errors.OAuthError` the token endpoint would answer."""
    client = portal_client(session)
    if client is None:
        raise InvalidGrant("the code is not valid for this client")
    exchange_code(session, provider, client, CodeExchange(code, redirect_uri, verifier))
    grant_id = session.exec(
        select(AuthorizationCode.grant_id).where(AuthorizationCode.code_hash == token_hash(code))
    ).one()
    return session.get_one(Grant, grant_id)


def live_portal_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    """The pages' grant ``grant_id`` while it stands: not revoked or expired, and its sign-in
    session not ended or expired (ending a session revokes its grants too; both are read)."""
    now = clock.now()
    row = session.exec(
        select(Grant)
        .join(Client, Client.id == Grant.client_id)  # type: ignore[arg-type]
        .join(SsoSession, SsoSession.id == Grant.session_id)  # type: ignore[arg-type]
        .where(
            Grant.id == grant_id,
            Client.client_id == PORTAL_CLIENT_ID,
            Client.status == ClientStatus.ACTIVE,
            Grant.revoked_at.is_(None),  # type: ignore[union-attr]
            Grant.expires_at > now,
            SsoSession.ended_at.is_(None),  # type: ignore[union-attr]
            SsoSession.expires_at > now,
        )
    ).one_or_none()
    return row


def mint_person_token(
    session: Session,
    provider: Provider,
    person: Person,
    *,
    scope: str,
    ttl: timedelta,
    actor: Actor,
) -> str:
    """An access token for ``person`` at the person's own assurance level."""
    client = cli_client(session)
    now = clock.now()
    grant = Grant(
        client_id=client.id,
        person_id=person.id,
        scope=scope,
        auth_time=now,
        level=person.assurance_level,
        amr=["cli"],
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(grant)
    session.flush()
    record(
        session,
        IdentityAction.GRANT_CREATE,
        actor=actor,
        subject=("grant", str(grant.id)),
        person_id=person.id,
        data={"client": CLI_CLIENT_ID, "scope": scope, "expires_at": grant.expires_at.isoformat()},
    )
    token, _ = mint_access_token(
        session,
        provider,
        client,
        scope=scope,
        auth=person_auth(provider, client, grant, None),
        grant_id=grant.id,
        ttl=ttl,
    )
    return token
