"""Helpers of the QR token tests: real keyring keys, tokens and trust lists, and hand-built
COSE messages for the malformed cases (made with cbor2 directly, not with onecard's encoder)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from onecard.card.base45 import b45encode
from onecard.card.purpose import Purpose
from onecard.card.token import cose_kid, issue_token
from onecard.card.trustlist import TrustList, build_trust_list
from onecard.core.jose import LocalSigner, Signer, public_jwk, thumbprint

NOW = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())


def card_signer(runtime: Any) -> Signer:
    with runtime.database.session() as session:
        return runtime.keyring.signer(session, "card", "ES256")


def stranger_signer() -> LocalSigner:
    """An ES256 key onecard never made: its codes name a kid no trust list has."""
    key = ec.generate_private_key(ec.SECP256R1())
    return LocalSigner(thumbprint(public_jwk(key)), "ES256", key)


def token(
    runtime: Any,
    *,
    purpose: Purpose = Purpose.TRANSIT,
    reference: bytes | None = None,
    now: datetime = NOW,
    lifetime: timedelta = timedelta(seconds=60),
    signer: Signer | None = None,
    issuer: str | None = None,
) -> str:
    return issue_token(
        signer or card_signer(runtime),
        issuer=issuer or runtime.settings.issuer,
        card_reference=reference or secrets.token_bytes(16),
        purpose=purpose,
        now=now,
        lifetime=lifetime,
    )


def trust_list(runtime: Any, *, inactive: tuple[bytes, ...] = (), now: datetime = NOW) -> TrustList:
    with runtime.database.session() as session:
        jws = build_trust_list(
            session,
            runtime.keyring,
            issuer=runtime.settings.issuer,
            inactive=inactive,
            now=now,
        )
        jwks = runtime.keyring.jwks(session)
    return TrustList.from_jws(jws, jwks, now=now)


def claims(issuer: str, changes: dict[int, Any] | None = None) -> dict[int, Any]:
    """A valid claims map at ``T0``; ``changes`` by claim label, None to leave one out."""
    base: dict[int, Any] = {
        1: issuer,
        4: T0 + 60,
        6: T0,
        7: secrets.token_bytes(16),
        -70001: secrets.token_bytes(16),
        -70002: "transit",
    }
    base.update(changes or {})
    return {label: value for label, value in base.items() if value is not None}


def cose_sign1(
    signer: Signer,
    payload: bytes,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    tag: int | None = 18,
    signature: bytes | None = None,
) -> bytes:
    """A COSE_Sign1 message built by hand (RFC 9052 §4.2, §4.4)."""
    header = cbor2.dumps(protected or {1: -7, 4: cose_kid(signer.kid)})
    to_sign = cbor2.dumps(["Signature1", header, b"", payload])
    parts = [header, unprotected or {}, payload, signature or signer.sign(to_sign)]
    return cbor2.dumps(cbor2.CBORTag(tag, parts) if tag is not None else parts)


def qr_text(message: bytes) -> str:
    return "OC1:" + b45encode(message)
