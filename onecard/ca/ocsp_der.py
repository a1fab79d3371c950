"""Signed OCSP answers in DER, encoded by hand (RFC 6960 §4.2.1; the nonce of RFC 9654).

Why by hand: an answer to a request with a nonce (or a CertID hashed otherwise than with
SHA-1) is signed on demand, and cryptography's ``OCSPResponseBuilder`` cost 100 to 190 µs per
answer in process (about 75 µs in ``create_ocsp_response``, 43 µs in ``public_bytes``) around a
P-256 signature of about 25 µs. Here what every answer of a responder shares (its responderID
and its certificate) is encoded once per responder (:class:`ResponderParts`), the rest is a few
concatenations, and an answer costs about 35 µs, most of it the signature.
tests/ca/test_ocsp_der.py pins every field to what the builder makes from the same inputs.

This module only encodes; requests are still parsed by cryptography.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import OCSPExtensionOID, SignatureAlgorithmOID

# Universal tags, and the context-specific ones (constructed unless said otherwise) of RFC 6960.
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_NULL = 0x05
_OBJECT_IDENTIFIER = 0x06
_ENUMERATED = 0x0A
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_CONTEXT_0 = 0xA0
_CONTEXT_1 = 0xA1
_CONTEXT_2 = 0xA2
_CONTEXT_0_PRIMITIVE = 0x80
_CONTEXT_2_PRIMITIVE = 0x82


def _tlv(tag: int, content: bytes) -> bytes:
    """Tag, length, content. The length has the short form below 128 octets, else the long
    one: 0x80 | how many octets follow, then the length in them."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def _integer(value: int) -> bytes:
    """A non-negative INTEGER in its fewest octets; one more (0x00) when the top bit is set,
    or the value would read as negative."""
    if value < 0:
        # The builder refuses them too; serials are positive (RFC 5280 §4.1.2.2).
        raise ValueError("negative serial numbers are not supported")
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _object_identifier(dotted: str) -> bytes:
    """X.690 §8.19: the first two arcs in one octet, then each arc in base 128, the high bit
    set on every octet of an arc but its last."""
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    content = bytearray()
    for arc in (40 * first + second, *rest):
        base128 = [arc & 0x7F]
        while arc := arc >> 7:
            base128.append(0x80 | (arc & 0x7F))
        content += bytes(reversed(base128))
    return _tlv(_OBJECT_IDENTIFIER, bytes(content))


def _generalized_time(at: datetime) -> bytes:
    """YYYYMMDDHHMMSSZ in UTC, whole seconds, as the builder writes it (naive means UTC)."""
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    digits = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    return _tlv(_GENERALIZED_TIME, b"%04d%02d%02d%02d%02d%02dZ" % digits)


# CertID hashAlgorithm, by cryptography's hash names: NIST OIDs, with NULL parameters as the
# builder writes them.
_HASH_ALGORITHMS = {
    name: _tlv(_SEQUENCE, _object_identifier(dotted) + _tlv(_NULL, b""))
    for name, dotted in {
        "sha1": "1.3.14.3.2.26",
        "sha256": "2.16.840.1.101.3.4.2.1",
        "sha384": "2.16.840.1.101.3.4.2.2",
        "sha512": "2.16.840.1.101.3.4.2.3",
    }.items()
}
# CRLReason codes (RFC 5280 §5.3.1); 7 is unused.
_REASON_CODES = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
_NONCE = _object_identifier(OCSPExtensionOID.NONCE.dotted_string)
# Answers are signed with ECDSA over SHA-256 whatever the curve, so signatureAlgorithm is the
# same for every responder: ecdsa-with-SHA256, without parameters (RFC 5758 §3.2).
_SIGNATURE = ec.ECDSA(hashes.SHA256())
_SIGNATURE_ALGORITHM = _tlv(
    _SEQUENCE, _object_identifier(SignatureAlgorithmOID.ECDSA_WITH_SHA256.dotted_string)
)
_SUCCESSFUL = _tlv(_ENUMERATED, b"\x00")
_ID_PKIX_OCSP_BASIC = _object_identifier("1.3.6.1.5.5.7.48.1.1")

GOOD = _tlv(_CONTEXT_0_PRIMITIVE, b"")  # CertStatus good: [0] IMPLICIT NULL
UNKNOWN = _tlv(_CONTEXT_2_PRIMITIVE, b"")  # CertStatus unknown: [2] IMPLICIT NULL


def revoked(revoked_at: datetime, reason: x509.ReasonFlags | None) -> bytes:
    """CertStatus revoked: [1] IMPLICIT RevokedInfo, the reason only when given."""
    content = _generalized_time(revoked_at)
    if reason is not None:
        content += _tlv(_CONTEXT_0, _tlv(_ENUMERATED, bytes((_REASON_CODES[reason],))))
    return _tlv(_CONTEXT_1, content)


def cert_id(hash_name: str, issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> bytes:
    """The CertID of the request, re-encoded (``hash_name`` one of sha1, sha256, sha384, sha512)."""
    return _tlv(
        _SEQUENCE,
        _HASH_ALGORITHMS[hash_name]
        + _tlv(_OCTET_STRING, issuer_name_hash)
        + _tlv(_OCTET_STRING, issuer_key_hash)
        + _integer(serial),
    )


@dataclass(frozen=True)
class ResponderParts:
    """What every answer of one responder carries, encoded once."""

    responder_id: bytes  # [2] byKey: SHA-1 of the certificate's subjectPublicKey bits
    certs: bytes  # [0] EXPLICIT SEQUENCE OF Certificate: its own, which clients check

    @classmethod
    def of(cls, certificate: x509.Certificate) -> ResponderParts:
        # RFC 6960's KeyHash and RFC 5280's key identifier (method 1) hash the same bits.
        key_hash = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
        return cls(
            _tlv(_CONTEXT_2, _tlv(_OCTET_STRING, key_hash)),
            _tlv(
                _CONTEXT_0,
                _tlv(_SEQUENCE, certificate.public_bytes(serialization.Encoding.DER)),
            ),
        )


def response_data(
    parts: ResponderParts,
    *,
    cert_id: bytes,
    cert_status: bytes,
    this_update: datetime,
    next_update: datetime,
    nonce: bytes | None,
) -> bytes:
    """ResponseData (version v1, left out as DER wants a default) with one SingleResponse,
    produced at its ``this_update``; the nonce echoed in responseExtensions when asked."""
    this_update_der = _generalized_time(this_update)
    single_response = _tlv(
        _SEQUENCE,
        cert_id + cert_status + this_update_der + _tlv(_CONTEXT_0, _generalized_time(next_update)),
    )
    content = parts.responder_id + this_update_der + _tlv(_SEQUENCE, single_response)
    if nonce is not None:
        content += _tlv(_CONTEXT_1, _tlv(_SEQUENCE, _nonce_extension(nonce)))
    return _tlv(_SEQUENCE, content)


def _nonce_extension(nonce: bytes) -> bytes:
    """Extension { id-pkix-ocsp-nonce, critical left out (FALSE), extnValue }: the extnValue
    holds the DER of an OCTET STRING of the nonce (RFC 9654 §2.1), as the builder writes it."""
    return _tlv(_SEQUENCE, _NONCE + _tlv(_OCTET_STRING, _tlv(_OCTET_STRING, nonce)))


def signed_response(
    parts: ResponderParts, key: ec.EllipticCurvePrivateKey, tbs_response_data: bytes
) -> bytes:
    """The successful OCSPResponse of a BasicOCSPResponse over ``tbs_response_data``, signed
    by ``key`` with ECDSA over SHA-256."""
    signature = key.sign(tbs_response_data, _SIGNATURE)
    basic = _tlv(
        _SEQUENCE,
        tbs_response_data
        + _SIGNATURE_ALGORITHM
        + _tlv(_BIT_STRING, b"\x00" + signature)  # no unused bits
        + parts.certs,
    )
    response_bytes = _tlv(_SEQUENCE, _ID_PKIX_OCSP_BASIC + _tlv(_OCTET_STRING, basic))
    return _tlv(_SEQUENCE, _SUCCESSFUL + _tlv(_CONTEXT_0, response_bytes))
