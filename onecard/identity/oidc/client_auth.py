"""Client authentication at the token, introspection and revocation endpoints.

RFC 6749 §2.3.1 (``client_secret_basic``, ``client_secret_post``), RFC 7523 §2.2 and OIDC Core
§9 (``private_key_jwt``), and ``none`` for public clients. A client must use the one method it
registered, and exactly one method per request. ``private_key_jwt`` assertions are checked for
signature (asymmetric algorithms only), ``iss`` = ``sub`` = client_id, an ``aud`` naming this
issuer or the endpoint, a short ``exp``, and a ``jti`` never seen before (shared replay store).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from sqlmodel import Session

from onecard.core import clock, once
from onecard.identity.oidc.clients import CLIENT_ASSERTION_ALGS, secret_hash, secret_matches
from onecard.identity.oidc.errors import InvalidClient, InvalidRequest
from onecard.identity.oidc.jwks import JwksUnavailable
from onecard.identity.oidc.models import Client, ClientAuthMethod, ClientStatus
from onecard.identity.oidc.provider import Provider

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MAX_ASSERTION_LIFETIME = 3600  # the jti is remembered until exp, so a replay is refused
_DUMMY_HASH = secret_hash("no such client")


@dataclass(frozen=True)
class ClientCredentials:
    """What the request carried to authenticate the client (parsed by the HTTP layer)."""

    basic: tuple[str, str] | None = None
    client_id: str | None = None
    client_secret: str | None = None
    assertion_type: str | None = None
    assertion: str | None = None

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.claimed_id()!r}, <secrets hidden>)"

    def claimed_id(self) -> str | None:
        return self.basic[0] if self.basic else self.client_id


def authenticate_client(
    session: Session, provider: Provider, credentials: ClientCredentials, *, endpoint: str
) -> Client:
    """The authenticated, active client, or :class:`InvalidClient`."""
    used = [
        credentials.basic is not None,
        credentials.client_secret is not None,
        credentials.assertion is not None,
    ]
    if sum(used) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    if credentials.basic is not None:
        return _by_secret(session, provider, credentials, ClientAuthMethod.CLIENT_SECRET_BASIC)
    if credentials.client_secret is not None:
        return _by_secret(session, provider, credentials, ClientAuthMethod.CLIENT_SECRET_POST)
    if credentials.assertion is not None:
        return _by_assertion(session, provider, credentials, endpoint)
    return _public(session, provider, credentials)


def _known(session: Session, provider: Provider, client_id: str | None) -> Client | None:
    if not client_id:
        return None
    client = provider.clients.get(session, client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        return None
    return client


def _by_secret(
    session: Session, provider: Provider, credentials: ClientCredentials, method: str
) -> Client:
    if credentials.basic is not None:
        client_id, secret = credentials.basic
        if credentials.client_id not in (None, client_id):
            raise InvalidRequest("client_id in the body differs from the Authorization header")
    else:
        client_id, secret = credentials.client_id or "", credentials.client_secret or ""
    client = _known(session, provider, client_id)
    if client is None:
        hmac.compare_digest(_DUMMY_HASH, secret_hash(secret))  # same work as a known client
        raise InvalidClient("client authentication failed")
    if not secret_matches(client, secret) or client.auth_method != method:
        raise InvalidClient("client authentication failed")
    return client


def _public(session: Session, provider: Provider, credentials: ClientCredentials) -> Client:
    client = _known(session, provider, credentials.client_id)
    if client is None or client.auth_method != ClientAuthMethod.NONE:
        raise InvalidClient("client authentication failed")
    return client


def _by_assertion(
    session: Session, provider: Provider, credentials: ClientCredentials, endpoint: str
) -> Client:
    if credentials.assertion_type != JWT_BEARER:
        raise InvalidClient("client_assertion_type must be jwt-bearer")
    assertion = credentials.assertion or ""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidClient("client_assertion is not a JWT") from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or (
        credentials.client_id and credentials.client_id != client_id
    ):
        raise InvalidClient("client_assertion iss does not name the client")
    client = _known(session, provider, client_id)
    if client is None or client.auth_method != ClientAuthMethod.PRIVATE_KEY_JWT:
        raise InvalidClient("client authentication failed")
    alg = header.get("alg")
    if alg not in CLIENT_ASSERTION_ALGS:
        raise InvalidClient("client_assertion must be signed with an asymmetric algorithm")
    key = _assertion_key(provider, client, header)
    try:
        claims = jwt.decode(
            assertion,
            key=key,
            algorithms=[alg],
            audience=[provider.issuer, endpoint],
            issuer=client.client_id,
            leeway=5,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidClient(f"client_assertion rejected: {type(exc).__name__}") from None
    if claims["sub"] != client.client_id:
        raise InvalidClient("client_assertion sub must be the client_id")
    expires = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    if (expires - clock.now()).total_seconds() > _MAX_ASSERTION_LIFETIME:
        raise InvalidClient("client_assertion lives too long (at most one hour)")
    jti = str(claims["jti"])
    if not once.consume(session, "client_assertion", f"{client.client_id}\x00{jti}", until=expires):
        raise InvalidClient("client_assertion was already used (jti replay)")
    return client


def _assertion_key(provider: Provider, client: Client, header: dict) -> object:
    kid = header.get("kid")
    try:
        jwks = client.jwks or provider.remote_jwks.get(client.jwks_uri or "", want_kid=kid)
    except JwksUnavailable as exc:
        raise InvalidClient(str(exc)) from None
    candidates = [
        key
        for key in jwks.get("keys", [])
        if isinstance(key, dict) and (kid is None or key.get("kid") == kid)
    ]
    for candidate in candidates:
        try:
            jwk = jwt.PyJWK(json.loads(json.dumps(candidate)), algorithm=header.get("alg"))
        except jwt.PyJWTError:
            continue
        return jwk.key
    raise InvalidClient("no registered client key matches the assertion")
