"""OCSP answers encoded by hand (onecard.ca.ocsp_der) say exactly what cryptography's
``OCSPResponseBuilder`` says for the same inputs.

The reference is the builder, called as ``sign_response`` called it before the DER was built
by hand (:func:`_builder_answer`). For each answer both are parsed by cryptography (whose DER
parser is strict: a wrong length form or a non-minimal INTEGER does not load), every field is
compared, the signed ResponseData must be byte for byte the builder's once the producedAt field
is the same (the builder stamps the wall clock), and the signature must verify with the
responder certificate's key. Statuses (good, revoked for every reason, unknown), nonces of 1,
16, 32 and 128 octets or none, the four CertID hashes, serials from 0 to 160 bits and huge
ones (every DER length form), responders on P-256 (the real one included) and P-384.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from onecard.ca import ocsp_der
from onecard.ca.models import Authority
from onecard.ca.ocsp import (
    RESPONSE_LIFETIME,
    UNKNOWN_LIFETIME,
    CertificateState,
    MalformedRequest,
    ParsedRequest,
    Responder,
    parse_request,
    presigned_answer,
    sign_response,
)
from onecard.ca.revocation import RevocationReason

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
NOW = datetime(2025, 6, 30, 8, 15, 42, 123456, tzinfo=UTC)
REVOKED_AT = datetime(2025, 6, 29, 23, 59, 59, 999999, tzinfo=UTC)
STATES = [
    CertificateState("good"),
    CertificateState("unknown"),
    *(CertificateState("revoked", REVOKED_AT, reason) for reason in RevocationReason),
]
NONCES = [None, *(bytes(range(1, size + 1)) for size in (1, 16, 32, 128))]
SERIALS = {
    "0": 0,
    "1 bit": 1,
    "8 bits, top bit set": 0x80,
    "63 bits": 0x4F3A_9C11_D2E7_6B05,
    "64 bits, top bit set": 0xC4F3_A9C1_1D2E_76B5,
    "159 bits": 0x6B05_4F3A_9C11_D2E7_6B05_4F3A_9C11_D2E7_6B05_4F3A,
    "160 bits, top bit set": 0x9C11_D2E7_6B05_4F3A_9C11_D2E7_6B05_4F3A_9C11_D2E7,
}


@dataclass(frozen=True)
class Signer:
    """A responder as sign_response sees it, and the certificate the builder is handed."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    responder: Responder

    @classmethod
    def throwaway(cls, curve: ec.EllipticCurve) -> Signer:
        key = ec.generate_private_key(curve)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway OCSP responder")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=90))
            .sign(key, hashes.SHA256())
        )
        responder = Responder(uuid.uuid4(), 1, {}, {}, key, ocsp_der.ResponderParts.of(certificate))
        return cls(key, certificate, responder)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.throwaway(ec.SECP256R1())


def _request(hash_name: str, serial: int, nonce: bytes | None) -> ParsedRequest:
    size = HASHES[hash_name].digest_size
    return ParsedRequest(hash_name, b"\x5a" * size, b"\xa5" * size, serial, nonce)


def _builder_answer(
    signer: Signer, request: ParsedRequest, state: CertificateState, now: datetime
) -> tuple[bytes, datetime]:
    """sign_response as it was: cryptography's builder (the reference)."""
    lifetime = UNKNOWN_LIFETIME if state.status == "unknown" else RESPONSE_LIFETIME
    next_update = now + lifetime
    reason = None
    if state.reason and state.reason != RevocationReason.UNSPECIFIED:
        reason = RevocationReason(state.reason).flag
    statuses = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial,
            algorithm=HASHES[request.hash_name](),
            cert_status=statuses[state.status],
            this_update=now,
            next_update=next_update,
            revocation_time=state.revoked_at,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
        .certificates([signer.certificate])
    )
    if request.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(request.nonce), critical=False)
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER), next_update


def _produced_at(tbs_response_data: bytes) -> slice:
    """Where producedAt lies: after the SEQUENCE header and the 24-octet responderID byKey."""
    header = 2 if tbs_response_data[1] < 0x80 else 2 + (tbs_response_data[1] & 0x7F)
    start = header + 24
    assert tbs_response_data[start : start + 2] == b"\x18\x0f"  # GeneralizedTime, 15 octets
    return slice(start, start + 17)


def _fields(response: ocsp.OCSPResponse) -> dict[str, object]:
    return {
        "response_status": response.response_status,
        "certificate_status": response.certificate_status,
        "serial_number": response.serial_number,
        "hash_algorithm": response.hash_algorithm.name,
        "issuer_name_hash": response.issuer_name_hash,
        "issuer_key_hash": response.issuer_key_hash,
        "this_update": response.this_update_utc,
        "next_update": response.next_update_utc,
        "revocation_time": response.revocation_time_utc,
        "revocation_reason": response.revocation_reason,
        "responder_key_hash": response.responder_key_hash,
        "responder_name": response.responder_name,
        "signature_algorithm": response.signature_algorithm_oid,
        "certificates": [c.public_bytes(serialization.Encoding.DER) for c in response.certificates],
        "extensions": [(e.oid, e.critical, e.value) for e in response.extensions],
        "single_extensions": list(response.single_extensions),
    }


def assert_answers_like_the_builder(
    signer: Signer, request: ParsedRequest, state: CertificateState, now: datetime
) -> None:
    der, next_update = sign_response(signer.responder, request, state, now)
    expected_der, expected_next_update = _builder_answer(signer, request, state, now)
    ours = ocsp.load_der_ocsp_response(der)
    expected = ocsp.load_der_ocsp_response(expected_der)

    assert next_update == expected_next_update
    assert _fields(ours) == _fields(expected)
    assert ours.produced_at_utc == ours.this_update_utc  # produced when signed, at ``now``
    field = _produced_at(ours.tbs_response_bytes)
    assert _produced_at(expected.tbs_response_bytes) == field
    with_builder_time = bytearray(ours.tbs_response_bytes)
    with_builder_time[field] = expected.tbs_response_bytes[field]
    assert bytes(with_builder_time) == expected.tbs_response_bytes
    signer.certificate.public_key().verify(
        ours.signature, ours.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize(
    "state", STATES, ids=lambda s: f"{s.status}-{s.reason}" if s.reason else s.status
)
def test_every_status_nonce_hash_and_serial_answers_like_the_builder(
    signer: Signer, state: CertificateState, hash_name: str
) -> None:
    for serial in SERIALS.values():
        for nonce in NONCES:
            assert_answers_like_the_builder(signer, _request(hash_name, serial, nonce), state, NOW)


def test_the_reason_is_left_out_for_unspecified_only(signer: Signer) -> None:
    for reason in RevocationReason:
        state = CertificateState("revoked", REVOKED_AT, reason)
        der, _ = sign_response(signer.responder, _request("sha1", 1, None), state, NOW)
        answer = ocsp.load_der_ocsp_response(der)
        expected = None if reason == RevocationReason.UNSPECIFIED else reason.flag
        assert answer.revocation_reason == expected


@pytest.mark.parametrize("reason", list(x509.ReasonFlags))
def test_every_crl_reason_code_is_the_builders(signer: Signer, reason: x509.ReasonFlags) -> None:
    """The table of RFC 5280 §5.3.1 codes, beyond the reasons onecard gives."""
    revoked = ocsp_der.revoked(REVOKED_AT, reason)
    tbs = ocsp_der.response_data(
        signer.responder.parts,
        cert_id=ocsp_der.cert_id("sha1", b"\x01" * 20, b"\x02" * 20, 7),
        cert_status=revoked,
        this_update=NOW,
        next_update=NOW + RESPONSE_LIFETIME,
        nonce=None,
    )
    answer = ocsp.load_der_ocsp_response(
        ocsp_der.signed_response(signer.responder.parts, signer.key, tbs)
    )
    assert answer.revocation_reason is reason


@pytest.mark.parametrize("octets", [127, 128, 255, 256, 65535, 65536])
def test_every_der_length_form_answers_like_the_builder(signer: Signer, octets: int) -> None:
    """Serials whose INTEGER takes ``octets`` octets: short and long lengths of one, two and
    three octets, all the way up to the OCSPResponse."""
    serial = 2 ** (8 * octets - 1) - 1
    state = CertificateState("revoked", REVOKED_AT, RevocationReason.KEY_COMPROMISE)
    assert_answers_like_the_builder(signer, _request("sha256", serial, os.urandom(32)), state, NOW)


def test_times_are_written_in_utc_whole_seconds_naive_meaning_utc(signer: Signer) -> None:
    east = datetime(2025, 1, 1, 7, 30, 5, 999999, tzinfo=timezone(timedelta(hours=8)))
    naive_revocation = CertificateState("revoked", datetime(1999, 12, 31, 23, 59, 59), None)
    assert_answers_like_the_builder(signer, _request("sha1", 9, None), naive_revocation, east)
    der, _ = sign_response(
        signer.responder, _request("sha1", 9, None), CertificateState("good"), east
    )
    assert b"\x18\x0f20241231233005Z" in der


def test_a_p384_responder_answers_like_the_builder() -> None:
    """Answers are signed with ECDSA over SHA-256 on any curve, as the builder signs them."""
    signer = Signer.throwaway(ec.SECP384R1())
    for state in STATES:
        assert_answers_like_the_builder(signer, _request("sha384", 2**70, b"\x01" * 16), state, NOW)


def test_a_negative_serial_is_refused_like_the_builder_refuses_it(signer: Signer) -> None:
    request = _request("sha1", -1, None)
    with pytest.raises(ValueError, match="Negative"):
        _builder_answer(signer, request, CertificateState("unknown"), NOW)
    with pytest.raises(ValueError, match="negative"):
        sign_response(signer.responder, request, CertificateState("unknown"), NOW)


def test_a_revoked_state_without_its_time_is_refused(signer: Signer) -> None:
    with pytest.raises(ValueError, match="revocation time"):
        sign_response(signer.responder, _request("sha1", 1, None), CertificateState("revoked"), NOW)


@pytest.fixture
def real_signer(runtime) -> Signer:  # type: ignore[no-untyped-def]
    """The citizen authority's delegated responder, as Responder.of derives it."""
    with runtime.database.session() as session:
        authority = session.exec(select(Authority).where(Authority.name == "citizen-1")).one()
    assert authority.ocsp_certificate is not None
    return Signer(
        runtime.ca.private_key(authority, "ocsp_private_key"),
        x509.load_der_x509_certificate(authority.ocsp_certificate),
        Responder.of(runtime.ca, authority),
    )


def test_the_real_responder_answers_like_the_builder(real_signer: Signer) -> None:
    responder = real_signer.responder
    for state in STATES:
        for hash_name in HASHES:
            request = ParsedRequest(
                hash_name,
                responder.issuer_name_hashes[hash_name],
                responder.issuer_key_hashes[hash_name],
                SERIALS["64 bits, top bit set"],
                os.urandom(32),
            )
            assert_answers_like_the_builder(real_signer, request, state, NOW)
    stored = presigned_answer(responder, SERIALS["159 bits"], CertificateState("good"), NOW)
    assert stored["produced_at"] == NOW
    assert ocsp.load_der_ocsp_response(stored["der"]).serial_number == SERIALS["159 bits"]


# -- any inputs -------------------------------------------------------------------------------

_TIMEZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]
)
_TIMES = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(9000, 1, 1), timezones=_TIMEZONES
)


@st.composite
def requests(draw: st.DrawFn) -> ParsedRequest:
    hash_name = draw(st.sampled_from(list(HASHES)))
    size = HASHES[hash_name].digest_size
    return ParsedRequest(
        hash_name,
        draw(st.binary(min_size=size, max_size=size)),
        draw(st.binary(min_size=size, max_size=size)),
        draw(st.integers(min_value=0, max_value=2**200)),
        draw(st.none() | st.binary(min_size=1, max_size=128)),
    )


_STATES = st.sampled_from([CertificateState("good"), CertificateState("unknown")]) | st.builds(
    CertificateState,
    st.just("revoked"),
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(9000, 1, 1))
    | _TIMES,  # naive ones too: cryptography reads them as UTC
    st.none() | st.sampled_from(list(RevocationReason)),
)


@settings(max_examples=300, deadline=None)
@given(request=requests(), state=_STATES, now=_TIMES)
def test_any_answer_is_the_builders(
    signer: Signer, request: ParsedRequest, state: CertificateState, now: datetime
) -> None:
    assert_answers_like_the_builder(signer, request, state, now)


def test_a_request_for_a_negative_serial_is_malformed() -> None:
    # cryptography will not build one: write serial 1, then make its INTEGER -1.
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(b"\xaa" * 20, b"\xbb" * 20, 1, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    at = request.rindex(b"\x02\x01\x01")
    negative = request[:at] + b"\x02\x01\xff" + request[at + 3 :]
    with pytest.raises(MalformedRequest, match="negative"):
        parse_request(negative)
