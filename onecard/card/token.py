"""The card QR token (DESIGN.md §6): its claims, issuing it, and taking it apart.

A token is a CWT (RFC 8392) signed as a COSE_Sign1 message (RFC 9052 §4.2, CBOR tag 18),
Base45-encoded (RFC 9285) behind the prefix ``OC1:``::

    OC1: base45( 18([ protected:   bstr .cbor {1: -7 (ES256), 4: kid},
                      unprotected: {},
                      payload:     bstr .cbor claims,
                      signature:   r || s ]) )

- Claims (RFC 8392 §3.1, §4): ``iss`` (1), ``exp`` (4), ``iat`` (6), ``cti`` (7, 16 random
  bytes), and two private claims (§3.1: negative integers below -65536): ``-70001`` the card
  reference (16 pseudonymous bytes, never an identity or bank number) and ``-70002`` the
  purpose (a :class:`~onecard.card.purpose.Purpose` value). A token lives at most 60 s.
- The signature (RFC 9052 §4.4) covers ``Sig_structure = ["Signature1", protected, h'',
  payload]``; ES256 signatures are the raw 64-byte ``r || s`` (RFC 9053 §2.1), which is also
  the JOSE form the keyring's signers return.
- ``kid`` is the first 8 bytes of the signing key's RFC 7638 thumbprint (the keyring's kid,
  base64url-decoded), as the EU Digital COVID Certificate does, to keep the QR code small.
- No compression: a token is about 190 bytes, and an inflater is attack surface.

This module owns the format: :func:`issue_token` makes a token, :func:`parse_token` and
:func:`parse_claims` take one apart and refuse what is malformed (for the exact bytes
:func:`encode_token` writes they slice instead of decoding, which the offline verifier's speed
needs; any other layout goes through cbor2). Deciding whether to trust one (keys, time,
revocation, replay) is :mod:`onecard.card.verify`'s job.
"""

from __future__ import annotations

import io
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

import cbor2

from onecard.card.base45 import Base45Error, b45decode, b45encode
from onecard.card.purpose import Purpose
from onecard.core.jose import Signer, b64url_decode

CARD_KEY_PURPOSE = "card"  # the keyring key use, registered by onecard.card.keys
CARD_ALG = "ES256"
PREFIX = "OC1:"
MAX_LIFETIME = timedelta(seconds=60)
# Refused before any decoding: a real token is about 300 characters.
MAX_TOKEN_LENGTH = 1024
CARD_REFERENCE_LENGTH = 16
CTI_LENGTH = 16
COSE_KID_LENGTH = 8
ES256_SIGNATURE_LENGTH = 64

COSE_SIGN1_TAG = 18  # RFC 9052 §4.2
CWT_TAG = 61  # RFC 8392 §6, optional around the COSE message
COSE_ALG, COSE_CRIT, COSE_KID = 1, 2, 4  # header labels, RFC 9052 §3.1
COSE_ES256 = -7  # RFC 9053 §2.1
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_CTI = 1, 4, 6, 7  # RFC 8392 §4
CLAIM_CARD_REFERENCE = -70001
CLAIM_PURPOSE = -70002

_MAX_LIFETIME_SECONDS = int(MAX_LIFETIME.total_seconds())
_MAX_NUMERIC_DATE = 2**53  # far beyond any real time; keeps arithmetic on small ints
_PURPOSES = {purpose.value: purpose for purpose in Purpose}


class InvalidCardReason(StrEnum):
    """Why a code was refused; stable values a terminal may show or count."""

    OVERSIZE = "oversize"
    BAD_PREFIX = "bad_prefix"
    BAD_ENCODING = "bad_encoding"
    MALFORMED = "malformed"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CARD_INACTIVE = "card_inactive"
    WRONG_PURPOSE = "wrong_purpose"
    REPLAYED = "replayed"


class InvalidCard(Exception):
    """The code must not be accepted; ``reason`` says why. The message never holds the card
    reference or any part of the token."""

    def __init__(self, reason: InvalidCardReason, detail: str | None = None) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail or reason.value


@dataclass(frozen=True, slots=True)
class CardClaims:
    """The claims of one token, validated when made."""

    issuer: str
    card_reference: bytes
    purpose: Purpose
    issued_at: int  # NumericDate, seconds since the epoch
    expires_at: int
    cti: bytes

    def __post_init__(self) -> None:
        # Plain checks, no helpers: the offline verifier builds one of these per code.
        if type(self.issuer) is not str:
            raise TypeError("the issuer must be a string")
        if not self.issuer:
            raise ValueError("the issuer must not be empty")
        if not isinstance(self.card_reference, bytes):
            raise TypeError("the card reference must be bytes")
        if len(self.card_reference) != CARD_REFERENCE_LENGTH:
            raise ValueError(f"the card reference must be {CARD_REFERENCE_LENGTH} bytes")
        if not isinstance(self.cti, bytes) or len(self.cti) != CTI_LENGTH:
            raise ValueError(f"cti must be {CTI_LENGTH} bytes")
        if type(self.purpose) is not Purpose:
            raise TypeError("the purpose must be a Purpose")
        if type(self.issued_at) is not int or type(self.expires_at) is not int:
            raise TypeError("iat and exp must be integers")
        if not 0 <= self.issued_at < _MAX_NUMERIC_DATE:
            raise ValueError("iat is out of range")
        if not 0 < self.expires_at - self.issued_at <= _MAX_LIFETIME_SECONDS:
            raise ValueError(f"exp must be 1 to {_MAX_LIFETIME_SECONDS} s after iat")

    def to_cbor(self) -> bytes:
        return cbor2.dumps(
            {
                CLAIM_ISS: self.issuer,
                CLAIM_EXP: self.expires_at,
                CLAIM_IAT: self.issued_at,
                CLAIM_CTI: self.cti,
                CLAIM_CARD_REFERENCE: self.card_reference,
                CLAIM_PURPOSE: self.purpose.value,
            },
            canonical=True,
        )


class SignedToken(NamedTuple):
    """A COSE_Sign1 message taken apart; its signature is not checked yet.

    A named tuple rather than a frozen dataclass: the offline verifier makes one per code,
    and a tuple costs a third as much to build.
    """

    kid: bytes
    protected: bytes
    payload: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return sig_structure(self.protected, self.payload)


def cose_kid(kid: str) -> bytes:
    """The COSE kid of a keyring key: the first 8 bytes of its RFC 7638 thumbprint."""
    thumbprint = b64url_decode(kid)
    if len(thumbprint) != 32:
        raise ValueError("a keyring kid is a base64url SHA-256 thumbprint")
    return thumbprint[:COSE_KID_LENGTH]


def _bstr_head(length: int) -> bytes:
    """The CBOR head of a byte string of ``length`` (RFC 8949 §3.1, major type 2)."""
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


_SIG_STRUCTURE_START = b"\x84\x6aSignature1"  # array(4), then the 10-character text
_EMPTY_BSTR = b"\x40"  # external_aad: no application data


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4 ``["Signature1", protected, external_aad = h'', payload]`` as CBOR.

    Built from its parts (the same bytes as ``cbor2.dumps`` of the array) because the offline
    verifier builds one per code and cbor2's encoder costs more than the concatenation.
    """
    return b"".join(
        (
            _SIG_STRUCTURE_START,
            _bstr_head(len(protected)),
            protected,
            _EMPTY_BSTR,
            _bstr_head(len(payload)),
            payload,
        )
    )


def encode_token(claims: CardClaims, signer: Signer) -> str:
    """Sign ``claims`` with ``signer`` (an ES256 keyring signer) and encode the QR text."""
    if signer.alg != CARD_ALG:
        raise ValueError(f"card tokens are signed with {CARD_ALG}")
    protected = cbor2.dumps({COSE_ALG: COSE_ES256, COSE_KID: cose_kid(signer.kid)})
    payload = claims.to_cbor()
    signature = signer.sign(sig_structure(protected, payload))
    if len(signature) != ES256_SIGNATURE_LENGTH:
        raise ValueError("the signer did not return a raw r||s ES256 signature")
    message = cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])
    return PREFIX + b45encode(cbor2.dumps(message))


def issue_token(
    signer: Signer,
    *,
    issuer: str,
    card_reference: bytes,
    purpose: Purpose,
    now: datetime,
    lifetime: timedelta = MAX_LIFETIME,
) -> str:
    """A new token for ``card_reference``, valid from ``now`` for ``lifetime`` (1 to 60 s)."""
    if not isinstance(lifetime, timedelta):
        raise TypeError("the lifetime must be a timedelta")
    seconds = int(lifetime.total_seconds())
    if seconds < 1 or lifetime > MAX_LIFETIME:
        raise ValueError(f"a card token lives 1 to {_MAX_LIFETIME_SECONDS} seconds")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    issued_at = int(now.timestamp())
    claims = CardClaims(
        issuer=issuer,
        card_reference=card_reference,
        purpose=Purpose(purpose),
        issued_at=issued_at,
        expires_at=issued_at + seconds,
        cti=secrets.token_bytes(CTI_LENGTH),
    )
    return encode_token(claims, signer)


# -- parsing ------------------------------------------------------------------------------


def _malformed(detail: str) -> InvalidCard:
    return InvalidCard(InvalidCardReason.MALFORMED, detail)


def _loads_exactly(data: bytes) -> Any:
    """One CBOR data item filling ``data`` exactly: trailing bytes are refused."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception:  # cbor2 raises several kinds on hostile input; all mean "not CBOR"
        raise _malformed("not well-formed CBOR") from None
    if stream.tell() != len(data):
        raise _malformed("bytes after the CBOR data item")
    return item


def parse_token(text: str) -> SignedToken:
    """Take the QR text apart down to the signed parts; raises :class:`InvalidCard` with
    ``oversize``, ``bad_prefix``, ``bad_encoding`` or ``malformed``."""
    if not isinstance(text, str):
        raise _malformed("a token is text")
    if len(text) > MAX_TOKEN_LENGTH:
        raise InvalidCard(InvalidCardReason.OVERSIZE, f"longer than {MAX_TOKEN_LENGTH}")
    if not text.startswith(PREFIX):
        raise InvalidCard(InvalidCardReason.BAD_PREFIX, f"the code does not start with {PREFIX}")
    try:
        raw = b45decode(text[len(PREFIX) :])
    except Base45Error as exc:
        raise InvalidCard(InvalidCardReason.BAD_ENCODING, str(exc)) from None
    if parts := _split_as_issued(raw):
        protected, payload, signature = parts
        return SignedToken(_protected_kid(protected), protected, payload, signature)
    message = _loads_exactly(raw)
    if type(message) is cbor2.CBORTag and message.tag == CWT_TAG:
        message = message.value
    if type(message) is not cbor2.CBORTag or message.tag != COSE_SIGN1_TAG:
        raise _malformed("not a tagged COSE_Sign1 message")
    parts = message.value
    if type(parts) is not list or len(parts) != 4:
        raise _malformed("a COSE_Sign1 message is an array of four")
    protected, unprotected, payload, signature = parts
    if (
        type(protected) is not bytes
        or type(unprotected) is not dict
        or type(payload) is not bytes
        or type(signature) is not bytes
    ):
        raise _malformed("COSE_Sign1 parts of the wrong type")
    if len(signature) != ES256_SIGNATURE_LENGTH:
        raise _malformed("an ES256 signature is 64 bytes")
    return SignedToken(_protected_kid(protected), protected, payload, signature)


# Fast paths for the exact bytes encode_token() writes, which is nearly every code a verifier
# sees; anything else goes to cbor2. Each accounts for every byte, so a match decodes to what
# cbor2 would give (tests/card/test_token.py checks they agree).
_COSE_START = b"\xd2\x84\x4d"  # tag 18, array(4), bstr(13): the protected header
_COSE_UNPROTECTED_AND_PAYLOAD = b"\xa0\x58"  # {}, then bstr(1-byte length): the payload
_COSE_SIGNATURE = b"\x58\x40"  # bstr(64)


def _split_as_issued(raw: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``18([h'<13 bytes>', {}, h'<24..255 bytes>', h'<64 bytes>'])`` split without a
    decoder: (protected, payload, signature), or None for any other layout."""
    if len(raw) < 85 or raw[:3] != _COSE_START or raw[16:18] != _COSE_UNPROTECTED_AND_PAYLOAD:
        return None
    end = 19 + raw[18]
    if len(raw) != end + 66 or raw[end : end + 2] != _COSE_SIGNATURE:
        return None
    return raw[3:16], raw[19:end], raw[end + 2 :]


# After the issuer: exp (4) and iat (6) as 4-byte unsigned integers, cti (7) and the card
# reference (-70001) as 16-byte strings, and the label of the purpose (-70002), its text last.
_CLAIMS_LAYOUT = struct.Struct(">2sI2sI2s16s6s16s5s")
_CLAIMS_MARKS = (
    b"\x04\x1a",
    b"\x06\x1a",
    b"\x07\x50",
    b"\x3a\x00\x01\x11\x70\x50",
    b"\x3a\x00\x01\x11\x71",
)
_PURPOSE_TEXTS = {cbor2.dumps(purpose.value): purpose for purpose in Purpose}


def _claims_as_issued(payload: bytes) -> CardClaims | None:
    """The claims of a payload laid out as :meth:`CardClaims.to_cbor` writes it, or None."""
    if payload[:2] != b"\xa6\x01" or len(payload) < 64:
        return None
    head = payload[2]
    if 0x60 <= head < 0x78:
        start, end = 3, 3 + head - 0x60
    elif head == 0x78:
        start, end = 4, 4 + payload[3]
    else:
        return None
    purpose = _PURPOSE_TEXTS.get(payload[end + _CLAIMS_LAYOUT.size :])
    if purpose is None:
        return None
    exp_mark, exp, iat_mark, iat, cti_mark, cti, reference_mark, reference, purpose_mark = (
        _CLAIMS_LAYOUT.unpack_from(payload, end)
    )
    if (exp_mark, iat_mark, cti_mark, reference_mark, purpose_mark) != _CLAIMS_MARKS:
        return None
    try:
        issuer = payload[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return CardClaims(issuer, reference, purpose, iat, exp, cti)


# A signing key's codes all carry the same protected header: decode each distinct one once.
# Only well-formed headers are cached (exceptions are not), and the cache is bounded.
@lru_cache(maxsize=64)
def _protected_kid(protected: bytes) -> bytes:
    header = _loads_exactly(protected)
    if type(header) is not dict:
        raise _malformed("the protected header is not a map")
    alg = header.get(COSE_ALG)
    if type(alg) is not int or alg != COSE_ES256:
        raise _malformed("the algorithm must be ES256")
    if COSE_CRIT in header:
        raise _malformed("critical header parameters are not supported")
    kid = header.get(COSE_KID)
    if type(kid) is not bytes or len(kid) != COSE_KID_LENGTH:
        raise _malformed("the protected header has no 8-byte kid")
    return kid


def parse_claims(payload: bytes) -> CardClaims:
    """The claims of a (verified) payload; raises :class:`InvalidCard` (``malformed``) for a
    missing or mistyped claim, an unknown purpose, or a lifetime over 60 s."""
    try:
        if as_issued := _claims_as_issued(payload):
            return as_issued
    except (TypeError, ValueError) as exc:
        raise _malformed(str(exc)) from None
    claims = _loads_exactly(payload)
    if type(claims) is not dict:
        raise _malformed("the claims are not a map")
    purpose = claims.get(CLAIM_PURPOSE)
    try:
        return CardClaims(
            issuer=claims.get(CLAIM_ISS),  # type: ignore[arg-type]
            card_reference=claims.get(CLAIM_CARD_REFERENCE),  # type: ignore[arg-type]
            purpose=_PURPOSES.get(purpose) if type(purpose) is str else None,  # type: ignore[arg-type]
            issued_at=claims.get(CLAIM_IAT),  # type: ignore[arg-type]
            expires_at=claims.get(CLAIM_EXP),  # type: ignore[arg-type]
            cti=claims.get(CLAIM_CTI),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError) as exc:
        raise _malformed(str(exc)) from None
