"""The trust list: what a terminal needs to verify card QR codes offline (DESIGN.md §6).

A trust list is a JWS compact serialisation (RFC 7515 §7.1), ES256, signed with the keyring's
active ``trust_list`` key, whose public keys are in the service's JWKS. Its header carries
``typ: onecard-trust-list+jwt`` (explicit typing, RFC 8725 §3.11), so that nothing else signed
with a published key passes for a trust list. Its payload::

    {"iss": issuer URL, "iat": seconds, "next_update": seconds (at most 24 h after iat),
     "keys": [card signing keys as public JWKs: "kid" (RFC 7638 thumbprint), "alg": "ES256",
              "use": "sig"],
     "inactive": [base64url references of suspended, lost and closed cards]}

The card keys listed are the published ones (``next``, ``active``, ``retired``): a ``next`` key
is known to terminals before it signs, and a retired key's codes verify until they expire; a
removed key is gone, so its codes fail with ``unknown_kid``.

This module builds the list (:func:`build_trust_list`, from the keyring and the references the
caller passes: the card tables are not this module's) and loads it on a terminal
(:meth:`TrustList.from_jws`, which needs no database: only the text and the JWKS).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE, CARD_REFERENCE_LENGTH, cose_kid
from onecard.core.jose import b64url, b64url_decode, sign_compact, thumbprint

if TYPE_CHECKING:
    from sqlmodel import Session

    from onecard.core.keyring import Keyring

TRUST_LIST_KEY_PURPOSE = "trust_list"  # registered with the keyring by onecard.card.keys
TRUST_LIST_TYP = "onecard-trust-list+jwt"
DEFAULT_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(hours=24)
# A terminal refuses a list whose next_update passed longer ago than this.
MAX_STALENESS = timedelta(hours=24)


class TrustListProblem(StrEnum):
    MALFORMED = "malformed"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"


class InvalidTrustList(Exception):
    """The trust list must not be used; ``reason`` says why."""

    def __init__(self, reason: TrustListProblem, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CardKey:
    """A card signing key as a terminal holds it: parsed once, when the list loads."""

    kid: str  # the keyring's: the RFC 7638 thumbprint, base64url
    cose_kid: bytes  # its first 8 bytes, as the tokens carry it
    jwk: Mapping[str, Any]
    public_key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TrustList:
    """A verified trust list. ``keys`` are by COSE kid; ``inactive`` holds card references."""

    issuer: str
    issued_at: datetime
    next_update: datetime
    keys: Mapping[bytes, CardKey]
    inactive: frozenset[bytes]
    jws: str

    @property
    def etag(self) -> str:
        return trust_list_etag(self.jws)

    @classmethod
    def from_jws(cls, text: str, jwks: Mapping[str, Any], *, now: datetime) -> TrustList:
        """Verify ``text`` against the service's JWKS (signature by ``kid``, ``typ``, not stale)
        and parse it; raises :class:`InvalidTrustList`."""
        header = _header(text)
        key = _signing_key(header["kid"], jwks)
        try:
            verified = jwt.PyJWS().decode_complete(text, key=key, algorithms=[CARD_ALG])
        except jwt.InvalidSignatureError:
            raise InvalidTrustList(TrustListProblem.BAD_SIGNATURE, "bad signature") from None
        except jwt.PyJWTError:
            raise _malformed("not a JWS compact serialisation") from None
        try:
            payload = json.loads(verified["payload"])
        except ValueError:
            raise _malformed("the payload is not JSON") from None
        trust_list = _parse_payload(payload, text)
        if now > trust_list.next_update + MAX_STALENESS:
            raise InvalidTrustList(
                TrustListProblem.STALE,
                f"the list was due for renewal at {trust_list.next_update.isoformat()}",
            )
        return trust_list


def trust_list_etag(jws: str) -> str:
    """A strong ETag (RFC 9110 §8.8.3) over the JWS bytes."""
    return f'"{b64url(hashlib.sha256(jws.encode("ascii")).digest())}"'


def card_reference_text(card_reference: bytes) -> str:
    """How a card reference appears in the trust list: base64url, unpadded."""
    if not isinstance(card_reference, bytes) or len(card_reference) != CARD_REFERENCE_LENGTH:
        raise ValueError(f"a card reference is {CARD_REFERENCE_LENGTH} bytes")
    return b64url(card_reference)


def build_trust_list(
    session: Session,
    keyring: Keyring,
    *,
    issuer: str,
    inactive: Iterable[bytes],
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> str:
    """A signed trust list: the published card keys, and the ``inactive`` card references
    (suspended, lost and closed cards) the caller gathered. Due for renewal after
    ``lifetime`` (at most 24 h)."""
    if not timedelta(seconds=1) <= lifetime <= MAX_LIFETIME:
        raise ValueError("a trust list lives 1 second to 24 hours")
    if not issuer:
        raise ValueError("the issuer must be a non-empty string")
    issued_at = int(now.timestamp())
    keys = [
        jwk for jwk in keyring.jwks(session, (CARD_KEY_PURPOSE,))["keys"] if jwk["alg"] == CARD_ALG
    ]
    payload = {
        "iss": issuer,
        "iat": issued_at,
        "next_update": issued_at + int(lifetime.total_seconds()),
        "keys": keys,
        "inactive": sorted({card_reference_text(reference) for reference in inactive}),
    }
    signer = keyring.signer(session, TRUST_LIST_KEY_PURPOSE, CARD_ALG)
    return sign_compact(signer, payload, typ=TRUST_LIST_TYP)


# -- loading ------------------------------------------------------------------------------


def _malformed(detail: str) -> InvalidTrustList:
    return InvalidTrustList(TrustListProblem.MALFORMED, detail)


def _header(text: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise _malformed("a trust list is text")
    try:
        header = jwt.get_unverified_header(text)
    except jwt.PyJWTError:
        raise _malformed("not a JWS compact serialisation") from None
    if header.get("typ") != TRUST_LIST_TYP:
        raise InvalidTrustList(TrustListProblem.WRONG_TYPE, f"the type must be {TRUST_LIST_TYP}")
    if header.get("alg") != CARD_ALG:
        raise _malformed(f"a trust list is signed with {CARD_ALG}")
    if not isinstance(header.get("kid"), str):
        raise _malformed("the header has no kid")
    return header


def _signing_key(kid: str, jwks: Mapping[str, Any]) -> jwt.PyJWK:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for jwk in keys if isinstance(keys, list) else ():
        if isinstance(jwk, dict) and jwk.get("kid") == kid and jwk.get("alg") == CARD_ALG:
            try:
                return jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                raise _malformed("the signing key in the JWKS is not a valid JWK") from None
    raise InvalidTrustList(TrustListProblem.UNKNOWN_KID, "no published key has this kid")


def _epoch(value: object, name: str) -> datetime:
    if type(value) is not int or not 0 <= value < 2**35:  # up to the year 3058
        raise _malformed(f"{name} must be seconds since the epoch")
    return datetime.fromtimestamp(value, UTC)


def _parse_payload(payload: object, text: str) -> TrustList:
    if not isinstance(payload, dict):
        raise _malformed("the payload is not an object")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _malformed("iss must be a string")
    issued_at = _epoch(payload.get("iat"), "iat")
    next_update = _epoch(payload.get("next_update"), "next_update")
    if not issued_at < next_update <= issued_at + MAX_LIFETIME:
        raise _malformed("next_update must be within 24 hours after iat")
    keys, inactive = payload.get("keys"), payload.get("inactive")
    if not isinstance(keys, list) or not isinstance(inactive, list):
        raise _malformed("keys and inactive must be arrays")
    card_keys: dict[bytes, CardKey] = {}
    for jwk in keys:
        parsed = card_key(jwk)
        if parsed.cose_kid in card_keys:
            raise _malformed("two card keys share a COSE kid")
        card_keys[parsed.cose_kid] = parsed
    return TrustList(
        issuer=issuer,
        issued_at=issued_at,
        next_update=next_update,
        keys=MappingProxyType(card_keys),
        inactive=frozenset(_card_reference(item) for item in inactive),
        jws=text,
    )


def card_key(jwk: object) -> CardKey:
    """A published card key from its JWK (P-256, ES256, kid its RFC 7638 thumbprint)."""
    if not isinstance(jwk, dict):
        raise _malformed("a card key is a JWK object")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or jwk.get("alg") != CARD_ALG:
        raise _malformed("card keys are P-256 keys for ES256")
    try:
        x, y = b64url_decode(jwk["x"]), b64url_decode(jwk["y"])
        if len(x) != 32 or len(y) != 32:
            raise ValueError("coordinates are 32 bytes")
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        kid = jwk["kid"]
        if kid != thumbprint(jwk):
            raise ValueError("kid is not the key's thumbprint")
        return CardKey(kid, cose_kid(kid), MappingProxyType(dict(jwk)), public_key)
    except (KeyError, TypeError, ValueError):
        raise _malformed("a card key is not a valid P-256 JWK") from None


def _card_reference(item: object) -> bytes:
    try:
        if not isinstance(item, str):
            raise TypeError
        reference = b64url_decode(item)
    except (TypeError, ValueError):
        raise _malformed("an inactive card reference is not base64url") from None
    if len(reference) != CARD_REFERENCE_LENGTH:
        raise _malformed(f"a card reference is {CARD_REFERENCE_LENGTH} bytes")
    return reference
