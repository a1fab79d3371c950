"""A fast lane for the token endpoint's hottest request: client credentials with a secret.

Terminals and portals fetch client-credentials tokens at high rates, and once the client and
the signing key are in the process caches such a request needs no database: parse the form,
check the secret, sign. This pure-ASGI middleware answers exactly that case ahead of the
framework's routing, dependency and form machinery (profiled: most of the cost of a request
that is otherwise a hash and a signature). It sits inside the security-headers, metrics and
error middlewares, so answers carry the same headers and are counted the same way. Anything
else — another grant, another auth method, a cold cache, a malformed request — is handed on
untouched (with its body replayed) to :mod:`onecard.api.routers.oauth`, which answers it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onecard.identity.oidc.client_auth import ClientCredentials
from onecard.identity.oidc.discovery import TOKEN_PATH
from onecard.identity.oidc.errors import InvalidClient, OAuthError
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.token import token_request

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_BODY = 16 * 1024


def credentials_from(authorization: str, form: dict[str, str]) -> ClientCredentials:
    """The client authentication a token-endpoint request carries (header and form)."""
    basic = None
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            client_id, secret = decoded.split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("malformed Basic credentials") from None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
        basic = (unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " ")))
    return ClientCredentials(
        basic=basic,
        client_id=form.get("client_id"),
        client_secret=form.get("client_secret"),
        assertion_type=form.get("client_assertion_type"),
        assertion=form.get("client_assertion"),
    )


def oauth_error_response(error: OAuthError) -> JSONResponse:
    body = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    headers = dict(NO_STORE)
    if error.status_code == 401:
        # invalid_client is the only 401 here; Basic is one of the methods a client may use.
        headers["WWW-Authenticate"] = 'Basic realm="onecard"'
    return JSONResponse(body, status_code=error.status_code, headers=headers)


class _DatabaseNeeded(Exception):
    pass


class _NoDatabase:
    """Stands in for a session where no I/O may happen: any use asks for the slow path."""

    def __getattr__(self, name: str) -> Any:
        raise _DatabaseNeeded(name)


def cached_client_credentials(
    provider: Provider, form: dict[str, str], credentials: ClientCredentials
) -> Response | None:
    """The answer to a client-credentials request that the caches alone can give, or None
    when it needs the database (or is not that kind of request)."""
    if form.get("grant_type") != "client_credentials" or credentials.assertion is not None:
        return None
    try:
        issued = token_request(_NoDatabase(), provider, credentials, form)  # type: ignore[arg-type]
    except _DatabaseNeeded:
        return None
    except OAuthError as exc:
        return oauth_error_response(exc)
    body = json.dumps(issued.to_json(), separators=(",", ":")).encode()
    return Response(body, media_type="application/json", headers=NO_STORE)


class _Route:
    """What the metrics middleware reads from ``scope["route"]``."""

    path = TOKEN_PATH


class TokenFastLane:
    def __init__(self, app: ASGIApp, *, provider: Provider | None) -> None:
        self.app, self.provider = app, provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.provider is None
            or scope["type"] != "http"
            or scope["path"] != TOKEN_PATH
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/x-www-form-urlencoded":
            await self.app(scope, receive, send)
            return
        body, replay = await read_body(receive)
        response = self._answer(body, headers.get(b"authorization", b""))
        if response is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = _Route
        await response(scope, replay, send)

    def _answer(self, body: bytes | None, authorization: bytes) -> Response | None:
        if body is None:
            return None
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
            form = dict(pairs)
            if len(form) != len(pairs):
                return None  # a repeated parameter: the router explains the error
            credentials = credentials_from(authorization.decode("latin-1"), form)
        except (UnicodeDecodeError, ValueError, OAuthError):
            return None
        assert self.provider is not None
        return cached_client_credentials(self.provider, form, credentials)


async def read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole body (None when too large or cut off) and a ``receive`` that replays it."""
    chunks: list[bytes] = []
    size = 0
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > _MAX_BODY or not message.get("more_body", False):
            break
    complete = messages[-1].get("type") == "http.request" and not messages[-1].get(
        "more_body", False
    )

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return (b"".join(chunks) if complete and size <= _MAX_BODY else None), replay
