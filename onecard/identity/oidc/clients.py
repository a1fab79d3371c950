"""Clients (relying parties): registration by administrators, secrets, and a cached look-up.

OpenID Connect Dynamic Client Registration §2 names the metadata; only administrators
register clients here. Rules enforced at registration (RFC 9700 §2.1, §4.1): redirect URIs are
absolute, https (http only for localhost), without fragments and compared exactly; public
clients have no secret and must use PKCE; pairwise clients with redirect URIs on several hosts
name their sector. Secrets are 256-bit random strings shown once and stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import InvalidInput, InvalidState, NotFound
from onecard.core.pagination import Page, paginate
from onecard.identity.actions import IdentityAction
from onecard.identity.oidc.claims import ALL_SCOPES
from onecard.identity.oidc.models import (
    Client,
    ClientAuthMethod,
    ClientStatus,
    ClientType,
    GrantType,
    SubjectType,
)

ID_TOKEN_ALGS = ("RS256", "ES256")
CLIENT_ASSERTION_ALGS = ("RS256", "PS256", "ES256", "ES384")
_CACHE_SECONDS = 5.0


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(client: Client, secret: str) -> bool:
    if client.secret_hash is None:
        return False
    return hmac.compare_digest(client.secret_hash, secret_hash(secret))


def _is_local(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


def check_uri(uri: str, what: str, *, allow_query: bool = True) -> str:
    """An absolute https URI (http for localhost only), no fragment, no credentials."""
    parts = urlsplit(uri)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_local(parts.hostname))
    if not secure or not parts.hostname:
        raise InvalidInput(f"{what} must be an absolute https URI", code="invalid_uri")
    if parts.fragment or "#" in uri:
        raise InvalidInput(f"{what} must not have a fragment", code="invalid_uri")
    if parts.username or parts.password:
        raise InvalidInput(f"{what} must not carry credentials", code="invalid_uri")
    if parts.query and not allow_query:
        raise InvalidInput(f"{what} must not have a query", code="invalid_uri")
    if len(uri) > 2000:
        raise InvalidInput(f"{what} is too long", code="invalid_uri")
    return uri


@dataclass(frozen=True)
class ClientSpec:
    """Validated registration metadata; raises :class:`InvalidInput` when made wrong."""

    name: str
    client_type: ClientType = ClientType.CONFIDENTIAL
    auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    grant_types: tuple[GrantType, ...] = (GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN)
    scopes: tuple[str, ...] = ("openid",)
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    subject_type: SubjectType = SubjectType.PUBLIC
    sector_identifier: str | None = None
    id_token_alg: str = "RS256"
    min_level: int = 1
    full_identity_number: bool = False

    def __post_init__(self) -> None:
        coerce = {
            "client_type": ClientType,
            "auth_method": ClientAuthMethod,
            "subject_type": SubjectType,
        }
        try:
            for attr, kind in coerce.items():
                object.__setattr__(self, attr, kind(getattr(self, attr)))
            grants = tuple(GrantType(g) for g in self.grant_types)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_client_metadata") from None
        object.__setattr__(self, "grant_types", grants)
        for attr in ("redirect_uris", "post_logout_redirect_uris", "scopes"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        name = self.name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a client needs a name of 1 to 200 characters", code="invalid_name")
        object.__setattr__(self, "name", name)
        for uri in self.redirect_uris:
            check_uri(uri, "a redirect URI")
        for uri in self.post_logout_redirect_uris:
            check_uri(uri, "a post-logout redirect URI")
        if self.backchannel_logout_uri:
            check_uri(self.backchannel_logout_uri, "the back-channel logout URI")
        if self.jwks_uri:
            check_uri(self.jwks_uri, "the JWKS URI")
        self._check_grants()
        self._check_auth()
        unknown = set(self.scopes) - set(ALL_SCOPES)
        if unknown:
            raise InvalidInput(f"unknown scopes: {' '.join(sorted(unknown))}", code="invalid_scope")
        if self.id_token_alg not in ID_TOKEN_ALGS:
            raise InvalidInput("id_token_alg must be RS256 or ES256", code="invalid_alg")
        if self.min_level not in (1, 2, 3):
            raise InvalidInput("min_level must be 1, 2 or 3", code="invalid_level")
        hosts = {urlsplit(uri).hostname for uri in self.redirect_uris}
        pairwise = self.subject_type == SubjectType.PAIRWISE
        if pairwise and len(hosts) > 1 and not self.sector_identifier:
            raise InvalidInput(
                "a pairwise client with redirect URIs on several hosts needs a sector",
                code="sector_identifier_required",
            )

    def _check_grants(self) -> None:
        grants = set(self.grant_types)
        if not grants:
            raise InvalidInput("a client needs at least one grant type", code="invalid_grant_type")
        if GrantType.AUTHORIZATION_CODE in grants:
            if not self.redirect_uris:
                raise InvalidInput(
                    "the authorization_code grant needs redirect URIs", code="redirect_uri_required"
                )
            if "openid" not in self.scopes:
                raise InvalidInput(
                    "a portal must be allowed the openid scope", code="invalid_scope"
                )
        if GrantType.REFRESH_TOKEN in grants and GrantType.AUTHORIZATION_CODE not in grants:
            raise InvalidInput(
                "refresh_token comes with authorization_code", code="invalid_grant_type"
            )

    def _check_auth(self) -> None:
        public = self.client_type == ClientType.PUBLIC
        if public != (self.auth_method == ClientAuthMethod.NONE):
            raise InvalidInput(
                "public clients, and only they, use the auth method none", code="invalid_auth"
            )
        if public and GrantType.CLIENT_CREDENTIALS in self.grant_types:
            raise InvalidInput(
                "a public client cannot use client_credentials", code="invalid_grant_type"
            )
        if self.auth_method == ClientAuthMethod.PRIVATE_KEY_JWT:
            if bool(self.jwks) == bool(self.jwks_uri):
                raise InvalidInput(
                    "private_key_jwt needs a JWKS by value or by URI (one of them)",
                    code="jwks_required",
                )
            if self.jwks is not None:
                keys = self.jwks.get("keys") if isinstance(self.jwks, dict) else None
                if not isinstance(keys, list) or not keys:
                    raise InvalidInput("jwks must be a JWK Set with keys", code="invalid_jwks")
                if any("d" in key or "p" in key for key in keys if isinstance(key, dict)):
                    raise InvalidInput("jwks must hold public keys only", code="invalid_jwks")

    def uses_secret(self) -> bool:
        return self.auth_method in (
            ClientAuthMethod.CLIENT_SECRET_BASIC,
            ClientAuthMethod.CLIENT_SECRET_POST,
        )


def _new_client_id() -> str:
    return "oc_" + secrets.token_urlsafe(18)


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _apply(client: Client, spec: ClientSpec) -> None:
    client.name = spec.name
    client.client_type = spec.client_type
    client.auth_method = spec.auth_method
    client.redirect_uris = list(spec.redirect_uris)
    client.post_logout_redirect_uris = list(spec.post_logout_redirect_uris)
    client.backchannel_logout_uri = spec.backchannel_logout_uri
    client.grant_types = [str(g) for g in spec.grant_types]
    client.scopes = list(dict.fromkeys(spec.scopes))
    client.jwks = spec.jwks
    client.jwks_uri = spec.jwks_uri
    client.subject_type = spec.subject_type
    client.sector_identifier = spec.sector_identifier
    client.id_token_alg = spec.id_token_alg
    client.min_level = spec.min_level
    client.full_identity_number = spec.full_identity_number


def spec_of(client: Client, **changes: Any) -> ClientSpec:
    """The spec of a registered client with ``changes`` applied (validated again)."""
    current = {
        "name": client.name,
        "client_type": ClientType(client.client_type),
        "auth_method": ClientAuthMethod(client.auth_method),
        "redirect_uris": tuple(client.redirect_uris),
        "post_logout_redirect_uris": tuple(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "grant_types": tuple(GrantType(g) for g in client.grant_types),
        "scopes": tuple(client.scopes),
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "subject_type": SubjectType(client.subject_type),
        "sector_identifier": client.sector_identifier,
        "id_token_alg": client.id_token_alg,
        "min_level": client.min_level,
        "full_identity_number": client.full_identity_number,
    }
    current.update(changes)
    return ClientSpec(**current)


def create_client(session: Session, spec: ClientSpec, *, actor: Actor) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (shown once; None for key-based auth)."""
    client = Client(client_id=_new_client_id(), name=spec.name, client_type="", auth_method="")
    _apply(client, spec)
    secret = _new_secret() if spec.uses_secret() else None
    client.secret_hash = secret_hash(secret) if secret else None
    session.add(client)
    record(
        session,
        IdentityAction.CLIENT_CREATE,
        actor=actor,
        subject=("client", client.client_id),
        data=_audit_view(client),
    )
    return client, secret


def update_client(session: Session, client: Client, spec: ClientSpec, *, actor: Actor) -> Client:
    had_secret = client.secret_hash is not None
    _apply(client, spec)
    if not spec.uses_secret():
        client.secret_hash = None
    elif not had_secret:
        raise InvalidInput(
            "switching to a secret-based method needs rotate-secret", code="secret_required"
        )
    client.updated_at = clock.now()
    session.add(client)
    record(
        session,
        IdentityAction.CLIENT_UPDATE,
        actor=actor,
        subject=("client", client.client_id),
        data=_audit_view(client),
    )
    return client


def rotate_secret(session: Session, client: Client, *, actor: Actor) -> str:
    if client.auth_method not in (
        ClientAuthMethod.CLIENT_SECRET_BASIC,
        ClientAuthMethod.CLIENT_SECRET_POST,
    ):
        raise InvalidState("this client authenticates without a secret", code="no_secret")
    secret = _new_secret()
    client.secret_hash = secret_hash(secret)
    client.updated_at = clock.now()
    session.add(client)
    record(
        session,
        IdentityAction.CLIENT_ROTATE_SECRET,
        actor=actor,
        subject=("client", client.client_id),
    )
    return secret


def set_status(session: Session, client: Client, status: ClientStatus, *, actor: Actor) -> Client:
    if client.status == status:
        return client
    client.status = status
    client.updated_at = clock.now()
    session.add(client)
    action = (
        IdentityAction.CLIENT_DISABLE
        if status == ClientStatus.DISABLED
        else IdentityAction.CLIENT_ENABLE
    )
    record(session, action, actor=actor, subject=("client", client.client_id))
    return client


def _audit_view(client: Client) -> dict[str, Any]:
    return {
        "name": client.name,
        "client_type": client.client_type,
        "auth_method": client.auth_method,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "redirect_uris": client.redirect_uris,
        "min_level": client.min_level,
        "full_identity_number": client.full_identity_number,
    }


def get_client(session: Session, client_id: str) -> Client:
    client = session.exec(select(Client).where(Client.client_id == client_id)).one_or_none()
    if client is None:
        raise NotFound("no such client", code="client_not_found")
    return client


def list_clients(session: Session, *, limit: int, cursor: str | None) -> Page[Client]:
    return paginate(session, select(Client), Client, limit=limit, cursor=cursor)


class ClientCache:
    """Clients by ``client_id``, re-read at most every few seconds (DESIGN.md §2).

    The token endpoint looks a client up on every request; caching the row keeps that off
    the database, and the short life means a disabled client or a rotated secret takes effect
    on every worker within seconds.
    """

    def __init__(self, seconds: float = _CACHE_SECONDS) -> None:
        self._seconds = seconds
        self._entries: dict[str, tuple[float, Client | None]] = {}

    def get(self, session: Session, client_id: str) -> Client | None:
        if len(client_id) > 64:
            return None
        entry = self._entries.get(client_id)
        if entry is None or time.monotonic() - entry[0] > self._seconds:
            client = session.exec(select(Client).where(Client.client_id == client_id)).one_or_none()
            if client is not None:
                session.expunge(client)
            if len(self._entries) > 10_000:
                self._entries.clear()
            entry = (time.monotonic(), client)
            self._entries[client_id] = entry
        return entry[1]

    def clear(self) -> None:
        self._entries.clear()
