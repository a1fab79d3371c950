"""Tables of the OpenID Connect provider: clients, SSO sessions, consents, codes and grants.

Every secret a caller presents (client secret, session cookie, authorization code, refresh
token) is a 256-bit random string stored only as its SHA-256: a high-entropy value needs no
slow hash, and a database dump yields nothing that can be replayed. A *grant* is one
authorization of one client for one person (an authorization code exchange); its refresh
tokens form the rotation family and its access tokens are listed so that revoking the grant
(code reuse, refresh reuse, consent withdrawal, logout) reaches every token it produced.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from onecard.core import clock
from onecard.core.db import UTCDateTime


class ClientType(StrEnum):
    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


class ClientAuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"
    CLIENT_CREDENTIALS = "client_credentials"


class SubjectType(StrEnum):
    PUBLIC = "public"
    PAIRWISE = "pairwise"


class ClientStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def _now() -> datetime:
    return Field(default_factory=clock.now, sa_type=UTCDateTime)  # type: ignore[return-value]


def _json_list() -> list[str]:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # type: ignore[return-value]


class Client(SQLModel, table=True):
    """A relying party: a government portal (code flow) or a terminal (client credentials)."""

    __tablename__ = "oidc_client"
    __table_args__ = (
        CheckConstraint("client_type IN ('confidential', 'public')", name="client_type"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint("subject_type IN ('public', 'pairwise')", name="subject_type"),
        CheckConstraint("min_level BETWEEN 1 AND 3", name="min_level"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    client_type: str = Field(max_length=16)
    auth_method: str = Field(max_length=32)
    secret_hash: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary(32), nullable=True), repr=False
    )
    redirect_uris: list[str] = _json_list()
    post_logout_redirect_uris: list[str] = _json_list()
    backchannel_logout_uri: str | None = Field(default=None, max_length=2000)
    grant_types: list[str] = _json_list()
    scopes: list[str] = _json_list()
    jwks: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    jwks_uri: str | None = Field(default=None, max_length=2000)
    subject_type: str = Field(default=SubjectType.PUBLIC, max_length=16)
    sector_identifier: str | None = Field(default=None, max_length=255)
    id_token_alg: str = Field(default="RS256", max_length=16)
    min_level: int = 1
    # Only a client an administrator explicitly allowed may receive the full identity number.
    full_identity_number: bool = False
    # False only for onecard's own pages (``onecard-portal``): the citizen is at onecard itself,
    # so there is nobody else to consent to. Not settable through the client API.
    consent_required: bool = True
    status: str = Field(default=ClientStatus.ACTIVE, max_length=16)
    created_at: datetime = _now()
    updated_at: datetime = _now()


class SsoSession(SQLModel, table=True):
    """A citizen's single sign-on session at onecard (the ``sid`` of OIDC)."""

    __tablename__ = "sso_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The cookie carries a secret; ``sid`` is what portals see. They are different values so
    # that a portal knowing ``sid`` cannot ride the citizen's session.
    cookie_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    sid: str = Field(max_length=64, unique=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    auth_time: datetime = Field(sa_type=UTCDateTime)
    level: int = 1
    amr: list[str] = _json_list()
    user_agent: str | None = Field(default=None, max_length=200)
    created_at: datetime = _now()
    last_seen_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_reason: str | None = Field(default=None, max_length=32)


class SessionClient(SQLModel, table=True):
    """A portal that received an ID token in a session: told of the logout by back-channel."""

    __tablename__ = "sso_session_client"

    session_id: uuid.UUID = Field(foreign_key="sso_session.id", primary_key=True)
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id", primary_key=True)
    first_at: datetime = _now()


class Consent(SQLModel, table=True):
    """What a citizen agreed to share with one portal."""

    __tablename__ = "oidc_consent"

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id", primary_key=True)
    scopes: list[str] = _json_list()
    claims: list[str] = _json_list()
    granted_at: datetime = _now()
    updated_at: datetime = _now()


class Grant(SQLModel, table=True):
    """One authorization of a client by a person; the refresh-token family hangs off it."""

    __tablename__ = "oidc_grant"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id", index=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    session_id: uuid.UUID | None = Field(default=None, foreign_key="sso_session.id", index=True)
    scope: str = Field(max_length=1000)
    claims: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    enterprise_id: uuid.UUID | None = Field(default=None, foreign_key="enterprise.id")
    auth_time: datetime = Field(sa_type=UTCDateTime)
    level: int = 1
    amr: list[str] = _json_list()
    created_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=32)


class AuthorizationCode(SQLModel, table=True):
    """A single-use authorization code, bound to client, redirect URI, PKCE and nonce."""

    __tablename__ = "oidc_authorization_code"

    code_hash: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id")
    person_id: uuid.UUID = Field(foreign_key="person.id")
    session_id: uuid.UUID = Field(foreign_key="sso_session.id")
    redirect_uri: str = Field(max_length=2000)
    scope: str = Field(max_length=1000)
    nonce: str | None = Field(default=None, max_length=512)
    code_challenge: str | None = Field(default=None, max_length=128)
    claims: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    enterprise_id: uuid.UUID | None = Field(default=None, foreign_key="enterprise.id")
    auth_time: datetime = Field(sa_type=UTCDateTime)
    level: int = 1
    amr: list[str] = _json_list()
    created_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when the code is exchanged: a second exchange revokes this grant (RFC 6749 §4.1.2).
    grant_id: uuid.UUID | None = Field(default=None, foreign_key="oidc_grant.id")


class RefreshToken(SQLModel, table=True):
    __tablename__ = "oidc_refresh_token"

    token_hash: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    grant_id: uuid.UUID = Field(foreign_key="oidc_grant.id", index=True)
    created_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Rotated: the token was exchanged once; presenting it again revokes the whole family.
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AccessToken(SQLModel, table=True):
    """Issued JWT access tokens that can be revoked: those of a grant (listed at issue), and
    client-credentials tokens once revoked (listed at revocation, so issuing them stays a
    signature and no write)."""

    __tablename__ = "oidc_access_token"
    __table_args__ = (Index("ix_oidc_access_token_expires_at", "expires_at"),)

    jti: str = Field(max_length=64, primary_key=True)
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id")
    grant_id: uuid.UUID | None = Field(default=None, foreign_key="oidc_grant.id", index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
