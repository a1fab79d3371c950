"""onecard's own first-party client and tokens minted by operators.

``onecard admin token`` (an operator with the database and the master key) mints a person's
access token for onecard's own APIs without a browser; it is a grant of the built-in
``onecard-cli`` client like any other, so it is listed, revocable and audited.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.identity.actions import IdentityAction
from onecard.identity.models import Person
from onecard.identity.oidc.grants.issue import person_auth
from onecard.identity.oidc.models import Client, ClientAuthMethod, ClientType, Grant
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import mint_access_token

CLI_CLIENT_ID = "onecard-cli"


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
