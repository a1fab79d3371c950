"""Revocation, CRLs and OCSP answers: reasons, monotonic CRL numbers, one-pass CRLs that keep
entries until expiry, and an OCSP responder that follows revocations within a second."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlmodel import select

from onecard.ca import revocation
from onecard.ca.crl import CRL_LIFETIME, build_crl, current_crl, publish_crl
from onecard.ca.models import Authority, Certificate
from onecard.ca.ocsp import MALFORMED, UNAUTHORIZED
from onecard.ca.revocation import RevocationReason, parse_reason
from onecard.core import clock
from onecard.core.audit import Actor, AuditEvent
from onecard.core.errors import Forbidden, InvalidInput, InvalidState
from tests.ca import csr_factory


def _authority(runtime, name: str = "citizen-1") -> Authority:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        return session.exec(select(Authority).where(Authority.name == name)).one()


def _crl(runtime, name: str = "citizen-1") -> x509.CertificateRevocationList:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        crl = current_crl(session, _authority(runtime, name))
        return x509.load_der_x509_crl(crl.der)


def _revoke(runtime, certificate, reason=RevocationReason.KEY_COMPROMISE) -> None:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        revocation.revoke(
            session, session.get_one(Certificate, certificate.id), reason, actor=Actor.system()
        )


def _ocsp_request(runtime, certificate, *, nonce: bytes | None = None, algorithm=None) -> bytes:  # type: ignore[no-untyped-def]
    leaf = x509.load_der_x509_certificate(certificate.der)
    issuer = runtime.ca.certificate(_authority(runtime))
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_subjects_and_staff_have_their_own_reasons() -> None:
    assert parse_reason("keyCompromise", by_staff=False) is RevocationReason.KEY_COMPROMISE
    assert parse_reason("privilegeWithdrawn", by_staff=True) is RevocationReason.PRIVILEGE_WITHDRAWN
    with pytest.raises(Forbidden):
        parse_reason("affiliationChanged", by_staff=False)
    for refused in ("certificateHold", "removeFromCRL", "aACompromise", "nonsense", ""):
        with pytest.raises(InvalidInput):
            parse_reason(refused, by_staff=True)


def test_revocation_lists_the_certificate_with_its_reason_in_a_new_crl(
    runtime, issue, new_person, run_jobs
) -> None:
    before = _crl(runtime)
    certificate = issue(person_id=new_person())
    _revoke(runtime, certificate)
    run_jobs()
    after = _crl(runtime)
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    entry = after.get_revoked_certificate_by_serial_number(int(certificate.serial, 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert after.next_update_utc - after.last_update_utc <= timedelta(days=7)
    assert after.is_signature_valid(runtime.ca.certificate(_authority(runtime)).public_key())
    with runtime.database.session() as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "ca:certificate:revoke",
                AuditEvent.subject_id == certificate.serial,
            )
        ).all()
    assert len(events) == 1


def test_an_unspecified_reason_leaves_the_reason_code_out(
    runtime, issue, new_person, run_jobs
) -> None:
    certificate = issue(person_id=new_person())
    _revoke(runtime, certificate, RevocationReason.UNSPECIFIED)
    run_jobs()
    entry = _crl(runtime).get_revoked_certificate_by_serial_number(int(certificate.serial, 16))
    assert entry is not None
    assert len(entry.extensions) == 0


def test_a_certificate_is_revoked_once(runtime, issue, new_person) -> None:
    certificate = issue(person_id=new_person())
    _revoke(runtime, certificate)
    with pytest.raises(InvalidState) as caught:
        _revoke(runtime, certificate)
    assert caught.value.code == "certificate_revoked"


def test_crls_drop_entries_only_after_the_certificate_expires(runtime) -> None:
    now = clock.now()
    issuer = runtime.ca.certificate(_authority(runtime))
    key = runtime.ca.private_key(_authority(runtime))
    entries = [(format(n, "x"), now - timedelta(hours=1), "superseded") for n in range(1, 1001)]
    crl = build_crl(
        issuer,
        key,
        number=7,
        this_update=now,
        next_update=now + CRL_LIFETIME,
        revoked=entries,
    )
    assert len(crl) == 1000
    with runtime.database.session() as session:
        authority = _authority(runtime)
        published = publish_crl(session, runtime.ca, authority, actor=Actor.system())
        listed = published.entries
    with runtime.database.session() as session:
        stored = session.exec(
            select(Certificate).where(
                Certificate.authority_id == authority.id, Certificate.status == "revoked"
            )
        ).all()
    assert listed == sum(1 for c in stored if c.not_after > now)


def test_ocsp_answers_good_then_revoked_within_a_second_of_the_job(
    runtime, issue, new_person, run_jobs
) -> None:
    certificate = issue(person_id=new_person())
    request = _ocsp_request(runtime, certificate)
    answer = ocsp.load_der_ocsp_response(runtime.ocsp.answer(request))
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert runtime.ocsp.cached(request) is not None  # served from memory from now on
    _revoke(runtime, certificate)
    run_jobs()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        der = runtime.ocsp.cached(request) or runtime.ocsp.answer(request)
        answer = ocsp.load_der_ocsp_response(der)
        if answer.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            break
        time.sleep(0.1)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise


def test_ocsp_echoes_a_nonce_and_signs_with_the_delegated_responder(
    runtime, issue, new_person
) -> None:
    certificate = issue(person_id=new_person())
    nonce = b"\x01" * 32
    answer = ocsp.load_der_ocsp_response(
        runtime.ocsp.answer(_ocsp_request(runtime, certificate, nonce=nonce))
    )
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    responder = answer.certificates[0]
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    assert responder.issuer == runtime.ca.certificate(_authority(runtime)).subject


def test_ocsp_answers_sha256_cert_ids(runtime, issue, new_person) -> None:
    certificate = issue(person_id=new_person())
    request = _ocsp_request(runtime, certificate, algorithm=hashes.SHA256())
    answer = ocsp.load_der_ocsp_response(runtime.ocsp.answer(request))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.hash_algorithm.name == "sha256"


def test_ocsp_says_unknown_for_serials_never_issued(runtime, issue, new_person) -> None:
    certificate = issue(person_id=new_person())
    certificate.serial = format(int(certificate.serial, 16) ^ 1, "x")
    fake = x509.load_der_x509_certificate(certificate.der)
    issuer = runtime.ca.certificate(_authority(runtime))
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_hashes(fake, issuer), int(certificate.serial, 16), hashes.SHA1()
    )
    answer = ocsp.load_der_ocsp_response(
        runtime.ocsp.answer(builder.build().public_bytes(serialization.Encoding.DER))
    )
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def _hashes(leaf: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    return request.issuer_name_hash, request.issuer_key_hash


def test_ocsp_refuses_issuers_it_does_not_serve_and_malformed_requests(runtime) -> None:
    other = csr_factory.private_key()
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Elsewhere CA")])
    foreign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(other.public_key())
        .serial_number(5)
        .not_valid_before(clock.now())
        .not_valid_after(clock.now() + timedelta(days=1))
        .sign(other, hashes.SHA256())
    )
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(foreign, foreign, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert runtime.ocsp.answer(request) == UNAUTHORIZED
    for garbage in (b"", b"\x30\x03\x02\x01\x01", request[:-5], b"x" * 20_000):
        assert runtime.ocsp.answer(garbage) == MALFORMED


def test_ocsp_refuses_nonces_outside_1_to_128_octets(runtime, issue, new_person) -> None:
    certificate = issue(person_id=new_person())
    too_long = _ocsp_request(runtime, certificate, nonce=b"\x02" * 129)
    assert runtime.ocsp.answer(too_long) == MALFORMED
    assert runtime.ocsp.cached(too_long) in (None, MALFORMED)
