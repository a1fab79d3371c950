"""Tokens: ID tokens (OIDC Core §2, §3.1.3.6), RFC 9068 JWT access tokens, refresh tokens.

Access tokens are ES256 JWTs with ``typ: at+jwt`` and ``aud`` = the issuer (onecard's own
APIs and userinfo are the one resource server), so resource servers verify them offline. A
token tied to a grant is listed in ``oidc_access_token`` so revoking the grant reaches it; a
client-credentials token is only listed once revoked, so issuing one costs a signature and no
database write. Refresh tokens are opaque 256-bit strings stored as SHA-256.

Verification accepts exactly one algorithm per token kind, only keys we publish, and checks
``typ``, ``iss``, ``aud``, ``exp`` and ``iat``: ``alg: none``, HS256 keyed with a public key,
foreign issuers and audiences are refused before any claim is read.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import and_, bindparam
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.jose import b64url, sign_compact
from onecard.identity.models import AssuranceLevel
from onecard.identity.oidc.models import AccessToken, Client, ClientStatus, Grant
from onecard.identity.oidc.provider import Provider

ACCESS_TOKEN_ALG = "ES256"
ACCESS_TOKEN_TYP = "at+jwt"
_LEEWAY = 5


class TokenRejected(Exception):
    """A presented token is not valid here; ``reason`` is safe to show a developer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def opaque_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def half_hash(value: str) -> str:
    """``at_hash`` (OIDC Core §3.1.3.6): left half of SHA-256, for RS256 and ES256 alike."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def acr_of(level: int) -> str:
    return AssuranceLevel(level).acr


@dataclass(frozen=True)
class PersonAuth:
    """How and when the person authenticated: what ID and access tokens assert."""

    person_id: uuid.UUID
    subject: str
    auth_time: datetime
    level: int
    amr: tuple[str, ...]
    sid: str | None


def mint_access_token(
    session: Session,
    provider: Provider,
    client: Client,
    *,
    scope: str,
    auth: PersonAuth | None,
    grant_id: uuid.UUID | None,
    ttl: timedelta | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = clock.now()
    ttl_seconds = int((ttl or provider.access_token_ttl).total_seconds())
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": auth.subject if auth else client.client_id,
        "aud": provider.issuer,
        "client_id": client.client_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "scope": scope,
    }
    if auth:
        claims.update(
            auth_time=int(auth.auth_time.timestamp()),
            acr=acr_of(auth.level),
            amr=list(auth.amr),
        )
        if auth.sid:
            claims["sid"] = auth.sid
    if grant_id is not None:
        session.add(
            AccessToken(
                jti=claims["jti"],
                client_id=client.id,
                grant_id=grant_id,
                expires_at=datetime.fromtimestamp(claims["exp"], tz=now.tzinfo),
            )
        )
    signer = provider.keyring.signer(session, "token", ACCESS_TOKEN_ALG)
    return sign_compact(signer, claims, typ=ACCESS_TOKEN_TYP), ttl_seconds


def mint_id_token(
    session: Session,
    provider: Provider,
    client: Client,
    auth: PersonAuth,
    *,
    nonce: str | None,
    access_token: str | None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": auth.subject,
        "aud": client.client_id,
        "exp": now + int(provider.id_token_ttl.total_seconds()),
        "iat": now,
        "auth_time": int(auth.auth_time.timestamp()),
        "acr": acr_of(auth.level),
        "amr": list(auth.amr),
    }
    if auth.sid:
        claims["sid"] = auth.sid
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = half_hash(access_token)
    for name, value in (extra_claims or {}).items():
        claims.setdefault(name, value)
    signer = provider.keyring.signer(session, "token", client.id_token_alg)
    return sign_compact(signer, claims, typ="JWT")


# -- verification -------------------------------------------------------------------------


def _decode(
    session: Session,
    provider: Provider,
    token: str,
    *,
    algorithms: tuple[str, ...],
    typ: str | None,
    audience: str | None,
    verify_exp: bool = True,
) -> dict[str, Any]:
    if not isinstance(token, str) or len(token) > 8192 or token.count(".") != 2:
        raise TokenRejected("not a JWS compact serialisation")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed token header") from None
    if header.get("alg") not in algorithms:
        raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted here")
    if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
        raise TokenRejected(f"the token type must be {typ}")
    kid = header.get("kid")
    key = provider.keyring.verification_key(session, kid) if isinstance(kid, str) else None
    if key is None or key.algorithm_name != header["alg"]:
        raise TokenRejected("unknown signing key")
    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[header["alg"]],
            issuer=provider.issuer,
            audience=audience,
            options={
                "require": ["iss", "exp", "iat", "sub"],
                "verify_aud": audience is not None,
                # Times are checked below against the service's clock (tests move it).
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise TokenRejected("the token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("the token is from another issuer") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the token is not valid: {type(exc).__name__}") from None
    now = clock.now().timestamp()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise TokenRejected("exp and iat must be integers")
    if verify_exp and exp + _LEEWAY <= now:
        raise TokenRejected("the token has expired")
    if iat - _LEEWAY > now:
        raise TokenRejected("the token was issued in the future")
    return claims


@dataclass(frozen=True)
class AccessTokenInfo:
    """A verified, live access token."""

    claims: dict[str, Any]
    client_id: str
    scopes: frozenset[str]
    person_id: uuid.UUID | None
    grant_id: uuid.UUID | None


# Columns only, no ORM objects, built once: this runs on every API request.
_TOKEN_STATE = (
    select(AccessToken.revoked_at, Grant.revoked_at, Grant.id, Grant.person_id)
    .join(Grant, and_(Grant.id == AccessToken.grant_id), isouter=True)
    .where(AccessToken.jti == bindparam("jti"))
)


def verify_access_token(session: Session, provider: Provider, token: str) -> AccessTokenInfo:
    """Verify signature, type, issuer, audience and time, then revocation (in the database)."""
    claims = _decode(
        session,
        provider,
        token,
        algorithms=(ACCESS_TOKEN_ALG,),
        typ=ACCESS_TOKEN_TYP,
        audience=provider.issuer,
    )
    jti, client_id = claims.get("jti"), claims.get("client_id")
    if not isinstance(jti, str) or not isinstance(client_id, str):
        raise TokenRejected("the token lacks jti or client_id")
    client = provider.clients.get(session, client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        raise TokenRejected("the client is disabled")
    row = session.exec(_TOKEN_STATE, params={"jti": jti}).one_or_none()
    person_token = claims["sub"] != client_id
    grant_id = person_id = None
    if row is None:
        if person_token:
            raise TokenRejected("unknown token")
    else:
        token_revoked_at, grant_revoked_at, grant_id, person_id = row
        if token_revoked_at is not None or grant_revoked_at is not None:
            raise TokenRejected("the token was revoked")
    scope = claims.get("scope", "")
    return AccessTokenInfo(
        claims=claims,
        client_id=client_id,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        person_id=person_id,
        grant_id=grant_id,
    )


def verify_id_token_hint(
    session: Session, provider: Provider, token: str, *, client: Client | None = None
) -> dict[str, Any]:
    """An ID token we issued (an expired one is accepted as a hint, as Core §3.1.2.1 allows)."""
    claims = _decode(
        session,
        provider,
        token,
        algorithms=("RS256", "ES256"),
        typ=None,
        audience=None,
        verify_exp=False,
    )
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client is not None and client.client_id not in audiences:
        raise TokenRejected("the ID token was issued to another client")
    return claims
