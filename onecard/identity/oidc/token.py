"""The token endpoint (RFC 6749 §3.2): authenticate the client, dispatch on ``grant_type``."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import Session

from onecard.identity.oidc.client_auth import ClientCredentials, authenticate_client
from onecard.identity.oidc.discovery import TOKEN_PATH
from onecard.identity.oidc.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from onecard.identity.oidc.grants.authorization_code import CodeExchange, exchange_code
from onecard.identity.oidc.grants.client_credentials import client_token
from onecard.identity.oidc.grants.refresh_token import RefreshRequest, refresh
from onecard.identity.oidc.grants.response import TokenResponse
from onecard.identity.oidc.models import GrantType
from onecard.identity.oidc.provider import Provider

_GRANT_TYPES = frozenset(g.value for g in GrantType)


def token_request(
    session: Session,
    provider: Provider,
    credentials: ClientCredentials,
    form: Mapping[str, str],
) -> TokenResponse:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type not in _GRANT_TYPES:
        raise UnsupportedGrantType(f"grant_type {grant_type[:40]!r} is not supported")
    client = authenticate_client(
        session, provider, credentials, endpoint=provider.issuer + TOKEN_PATH
    )
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    if grant_type == GrantType.AUTHORIZATION_CODE:
        exchange = CodeExchange(
            form.get("code") or "", form.get("redirect_uri"), form.get("code_verifier")
        )
        return exchange_code(session, provider, client, exchange)
    if grant_type == GrantType.REFRESH_TOKEN:
        request = RefreshRequest(form.get("refresh_token") or "", form.get("scope"))
        return refresh(session, provider, client, request)
    return client_token(session, provider, client, form.get("scope"))
