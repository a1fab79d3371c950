"""The keyring: every signing key onecard uses, sealed in the database, and their rotation.

Each key serves one *purpose* (``token`` for ID and access tokens, ``audit`` for audit
checkpoints; other packages register theirs, such as :mod:`onecard.card.keys`) with one
algorithm, and moves through
``next -> active -> retired -> removed``:

- ``next`` is published before it signs anything, so relying parties that cache the JWKS
  already know it when it becomes active;
- ``active`` signs; exactly one per (purpose, alg), enforced by a partial unique index;
- ``retired`` no longer signs but stays published for ``key_retirement_seconds`` so every token
  it signed verifies until it expires;
- ``removed`` is unpublished and its private key erased; the public JWK stays so old audit
  checkpoints remain verifiable.

``kid`` is the RFC 7638 thumbprint. Private keys are sealed (AES-256-GCM, see
:mod:`onecard.core.sealing`) and never logged or returned. Several workers share the keyring:
each caches the active key for a few seconds only, which is safe because the key it replaced
stays published.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, Session, SQLModel, select

from onecard.core import clock
from onecard.core.audit import Actor, AuditAction, record
from onecard.core.db import UTCDateTime
from onecard.core.errors import NotFound
from onecard.core.jose import LocalSigner, Signer, generate_private_key, public_jwk, thumbprint
from onecard.core.sealing import Sealer

# Which keys exist: (purpose, alg), and whose public keys the JWKS publishes. Other packages
# add theirs with register_key_use(), so core never needs to know them.
KEY_USES: set[tuple[str, str]] = {("token", "RS256"), ("token", "ES256"), ("audit", "ES256")}
PUBLISHED_PURPOSES: set[str] = {"token"}
_CACHE_SECONDS = 5.0


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    REMOVED = "removed"


class SigningKey(SQLModel, table=True):
    __tablename__ = "signing_key"
    __table_args__ = (
        Index(
            "uq_signing_key_one_active",
            "purpose",
            "alg",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        Index(
            "uq_signing_key_one_next",
            "purpose",
            "alg",
            unique=True,
            sqlite_where=text("state = 'next'"),
            postgresql_where=text("state = 'next'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kid: str = Field(max_length=64, unique=True)
    purpose: str = Field(max_length=32)
    alg: str = Field(max_length=16)
    state: str = Field(max_length=16, index=True)
    public_jwk: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    private_key: bytes | None = Field(default=None, repr=False)
    created_at: datetime = Field(sa_type=UTCDateTime)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def published_jwk(self) -> dict[str, Any]:
        return {**self.public_jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass(frozen=True)
class KeyChange:
    kid: str
    purpose: str
    alg: str
    state: KeyState


def register_key_use(purpose: str, alg: str, *, published: bool = False) -> None:
    """Declare a key use; ``published`` puts its public keys in the JWKS (:meth:`Keyring.jwks`)."""
    KEY_USES.add((purpose, alg))
    if published:
        PUBLISHED_PURPOSES.add(purpose)


class Keyring:
    """Creates, rotates and serves signing keys; the only code that touches private keys."""

    def __init__(self, sealer: Sealer, *, retirement: timedelta) -> None:
        self._sealer = sealer
        self._retirement = retirement
        self._signers: dict[str, Signer] = {}
        self._active: dict[tuple[str, str], tuple[float, str]] = {}
        self._published: tuple[float, dict[str, jwt.PyJWK]] = (-_CACHE_SECONDS, {})

    # -- lifecycle ------------------------------------------------------------------------

    def ensure_keys(self, session: Session, actor: Actor) -> list[KeyChange]:
        """Create the missing active and next key for every key use (first start, new uses)."""
        changes: list[KeyChange] = []
        for purpose, alg in sorted(KEY_USES):
            states = {k.state for k in self._keys(session, purpose, alg)}
            for state in (KeyState.ACTIVE, KeyState.NEXT):
                if state not in states:
                    changes.append(self._create(session, purpose, alg, state, actor))
        return changes

    def rotate(self, session: Session, actor: Actor, purpose: str | None = None) -> list[KeyChange]:
        """next -> active, active -> retired, and a new next, for each (purpose, alg)."""
        changes: list[KeyChange] = []
        now = clock.now()
        for use_purpose, alg in sorted(KEY_USES):
            if purpose is not None and use_purpose != purpose:
                continue
            keys = {k.state: k for k in self._keys(session, use_purpose, alg)}
            if active := keys.get(KeyState.ACTIVE):
                active.state, active.retired_at = KeyState.RETIRED, now
                session.add(active)
                session.flush()  # free the "one active" slot before promoting next
                changes.append(self._changed(session, active, actor))
            promoted = keys.get(KeyState.NEXT) or self._new_key(session, use_purpose, alg)
            promoted.state, promoted.activated_at = KeyState.ACTIVE, now
            session.add(promoted)
            session.flush()
            changes.append(self._changed(session, promoted, actor))
            changes.append(self._create(session, use_purpose, alg, KeyState.NEXT, actor))
        self._active.clear()
        self._published = (-_CACHE_SECONDS, {})
        return changes

    def prune(self, session: Session, actor: Actor) -> list[KeyChange]:
        """Remove retired keys whose retirement period is over: unpublish, erase private key."""
        cutoff = clock.now() - self._retirement
        stale = session.exec(
            select(SigningKey).where(
                SigningKey.state == KeyState.RETIRED, SigningKey.retired_at <= cutoff
            )
        )
        changes = []
        for key in stale:
            key.state, key.removed_at, key.private_key = KeyState.REMOVED, clock.now(), None
            session.add(key)
            self._signers.pop(key.kid, None)
            changes.append(self._changed(session, key, actor))
        self._published = (-_CACHE_SECONDS, {})
        return changes

    # -- use ------------------------------------------------------------------------------

    def signer(self, session: Session, purpose: str, alg: str) -> Signer:
        """The active signer for (purpose, alg); the choice is re-read at most every 5 s."""
        cached = self._active.get((purpose, alg))
        if cached is None or time.monotonic() - cached[0] > _CACHE_SECONDS:
            key = session.exec(
                select(SigningKey).where(
                    SigningKey.purpose == purpose,
                    SigningKey.alg == alg,
                    SigningKey.state == KeyState.ACTIVE,
                )
            ).one_or_none()
            if key is None:
                raise NotFound(f"no active {alg} key for {purpose}", code="signing_key_missing")
            self._load_signer(key)
            cached = (time.monotonic(), key.kid)
            self._active[(purpose, alg)] = cached
        return self._signers[cached[1]]

    def jwks(self, session: Session, purposes: Iterable[str] | None = None) -> dict:
        """The JSON Web Key Set of the published (next, active, retired) keys of ``purposes``
        (by default those registered as published)."""
        chosen = sorted(PUBLISHED_PURPOSES if purposes is None else purposes)
        keys = session.exec(
            select(SigningKey)
            .where(
                SigningKey.purpose.in_(chosen),
                SigningKey.state.in_([KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRED]),
            )
            .order_by(SigningKey.created_at)
        )
        return {"keys": [key.published_jwk() for key in keys]}

    def verification_key(self, session: Session, kid: str) -> jwt.PyJWK | None:
        """The public key of a published ``token`` key, for verifying what we signed.

        Only published keys count: a token signed by a removed key no longer verifies. The set
        is re-read at most every few seconds, and at once for a kid not seen yet (a key
        activated by another worker).
        """
        loaded_at, keys = self._published
        stale = time.monotonic() - loaded_at > _CACHE_SECONDS
        if stale or (kid not in keys and time.monotonic() - loaded_at > 0.5):
            published = self.jwks(session, ("token",))["keys"]  # never another purpose's key
            keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in published}
            self._published = (time.monotonic(), keys)
        return keys.get(kid)

    def public_jwk(self, session: Session, kid: str) -> dict[str, Any]:
        """The public JWK of any key ever made, removed ones included (for old signatures)."""
        key = session.exec(select(SigningKey).where(SigningKey.kid == kid)).one_or_none()
        if key is None:
            raise NotFound("unknown key", code="signing_key_unknown")
        return key.published_jwk()

    def list_keys(self, session: Session) -> list[SigningKey]:
        return list(
            session.exec(
                select(SigningKey).order_by(
                    SigningKey.purpose, SigningKey.alg, SigningKey.created_at
                )
            )
        )

    # -- internals ------------------------------------------------------------------------

    def _keys(self, session: Session, purpose: str, alg: str) -> list[SigningKey]:
        return list(
            session.exec(
                select(SigningKey).where(
                    SigningKey.purpose == purpose,
                    SigningKey.alg == alg,
                    SigningKey.state.in_([KeyState.NEXT, KeyState.ACTIVE]),
                )
            )
        )

    def _new_key(self, session: Session, purpose: str, alg: str) -> SigningKey:
        private_key = generate_private_key(alg)
        jwk = public_jwk(private_key)
        key = SigningKey(
            kid=thumbprint(jwk),
            purpose=purpose,
            alg=alg,
            state=KeyState.NEXT,
            public_jwk=jwk,
            created_at=clock.now(),
        )
        der = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key.private_key = self._sealer.seal(
            der, table="signing_key", column="private_key", row_id=key.kid
        )
        return key

    def _create(
        self, session: Session, purpose: str, alg: str, state: KeyState, actor: Actor
    ) -> KeyChange:
        key = self._new_key(session, purpose, alg)
        key.state = state
        if state is KeyState.ACTIVE:
            key.activated_at = key.created_at
        session.add(key)
        session.flush()
        return self._changed(session, key, actor)

    def _changed(self, session: Session, key: SigningKey, actor: Actor) -> KeyChange:
        record(
            session,
            AuditAction.KEY_STATE_CHANGE,
            actor=actor,
            subject=("signing_key", key.kid),
            data={"purpose": key.purpose, "alg": key.alg, "state": key.state.value},
        )
        return KeyChange(key.kid, key.purpose, key.alg, key.state)

    def _load_signer(self, key: SigningKey) -> None:
        if key.kid in self._signers:
            return
        if key.private_key is None:
            raise NotFound("the key's private part was removed", code="signing_key_removed")
        der = self._sealer.open(
            key.private_key, table="signing_key", column="private_key", row_id=key.kid
        )
        private_key = serialization.load_der_private_key(der, password=None)
        self._signers[key.kid] = LocalSigner(key.kid, key.alg, private_key)  # type: ignore[arg-type]
