"""The ``client_credentials`` grant (RFC 6749 §4.4): portals and terminals calling onecard.

Only onecard's API scopes can be asked for (identity scopes describe a person, and here there
is none); without ``scope`` the client gets every API scope it is allowed. Issuing is one
signature and no database write, so terminals can fetch tokens at any rate.
"""

from __future__ import annotations

from sqlmodel import Session

from onecard.identity.oidc.claims import API_SCOPES
from onecard.identity.oidc.errors import InvalidScope
from onecard.identity.oidc.grants.response import TokenResponse
from onecard.identity.oidc.models import Client
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import mint_access_token


def client_token(
    session: Session, provider: Provider, client: Client, scope: str | None
) -> TokenResponse:
    allowed = [s for s in client.scopes if s in API_SCOPES]
    wanted = list(dict.fromkeys(scope.split())) if scope else allowed
    refused = [s for s in wanted if s not in allowed]
    if refused:
        raise InvalidScope(f"this client may not ask for: {' '.join(refused)}")
    granted = " ".join(wanted)
    token, ttl = mint_access_token(
        session, provider, client, scope=granted, auth=None, grant_id=None
    )
    return TokenResponse(token, ttl, granted)
