"""Issuance: what every certificate says (RFC 5280 and CA/B habits), whose it is, who may have
which profile, and that a refusal writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)
from sqlmodel import select

from onecard.ca import dns, issuance
from onecard.ca.csr import CsrRejected, check_csr
from onecard.ca.models import Certificate, CertificateStatus, OcspResponse
from onecard.ca.profiles import DOCUMENT_SIGNING, get_profile
from onecard.core.audit import Actor
from onecard.core.errors import Conflict, Forbidden, InvalidInput, InvalidState
from onecard.identity import persons
from onecard.identity.lifecycle import StatusChange
from tests.ca import csr_factory
from tests.ca.conftest import counts


def parsed(certificate) -> x509.Certificate:  # type: ignore[no-untyped-def]
    return x509.load_der_x509_certificate(certificate.der)


def test_serial_numbers_are_positive_random_and_below_2_159(issue, new_person) -> None:
    person = new_person()
    serials = [parsed(issue(person_id=person)).serial_number for _ in range(20)]
    assert len(set(serials)) == 20
    assert all(0 < s < 2**159 for s in serials)
    # 159 random bits: twenty of them all below 2^120 would be a broken generator.
    assert max(s.bit_length() for s in serials) > 150


def test_every_leaf_carries_the_extensions_relying_parties_need(issue, new_person) -> None:
    leaf = parsed(issue(person_id=new_person()))
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.KeyUsage).critical
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    crl_urls = [
        name.value
        for point in ext.get_extension_for_class(x509.CRLDistributionPoints).value
        for name in point.full_name
    ]
    assert crl_urls == ["http://testserver/ca/citizen-1.crl"]
    access = {
        a.access_method: a.access_location.value
        for a in ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    }
    assert access == {
        AuthorityInformationAccessOID.OCSP: "http://testserver/ocsp",
        AuthorityInformationAccessOID.CA_ISSUERS: "http://testserver/ca/citizen-1.crt",
    }
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_subject_comes_from_the_identity_never_from_the_request(issue, new_person) -> None:
    person = new_person()
    leaf = parsed(issue(person_id=person, csr=csr_factory.csr(common_name="Someone Else")))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "张三"
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == str(person)
    assert "Someone Else" not in leaf.subject.rfc4514_string()


def test_signing_profile_uses_non_repudiation_and_document_signing(issue, new_person) -> None:
    leaf = parsed(issue(person_id=new_person(level=2), profile="citizen-sign"))
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment
    assert not usage.digital_signature
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [DOCUMENT_SIGNING]


def test_signing_needs_assurance_level_2(issue, new_person, runtime) -> None:
    person = new_person(level=1)
    before = counts(runtime.database)
    with pytest.raises(Forbidden) as caught:
        issue(person_id=person, profile="citizen-sign")
    assert caught.value.code == "assurance_level_too_low"
    assert counts(runtime.database) == before


def test_enterprise_certificates_name_the_organisation_and_credit_code(
    issue, new_enterprise, runtime
) -> None:
    enterprise_id, _ = new_enterprise()
    leaf = parsed(issue(enterprise_id=enterprise_id, profile="enterprise-sign"))
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "示例科技有限公司"
    )
    identifier = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value
    assert identifier.startswith("NTRCN-")
    assert len(identifier) == 24


def test_enterprise_signing_needs_a_level_2_representative(issue, new_enterprise) -> None:
    enterprise_id, _ = new_enterprise(level=1)
    with pytest.raises(Forbidden):
        issue(enterprise_id=enterprise_id, profile="enterprise-sign")


def test_profiles_only_fit_their_subject_kind(issue, new_person) -> None:
    with pytest.raises(InvalidInput) as caught:
        issue(person_id=new_person(), profile="enterprise-sign")
    assert caught.value.code == "profile_subject_mismatch"


def test_service_tls_needs_names_on_the_allow_list(issue, runtime) -> None:
    with runtime.database.session() as session:
        dns.allow(session, "*.services.example", actor=Actor.system())
    leaf = parsed(issue(dns_names=["Portal.Services.Example."], profile="service-tls"))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["portal.services.example"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(days=200)
    before = counts(runtime.database)
    with pytest.raises(Forbidden) as caught:
        issue(dns_names=["evil.example.org"], profile="service-tls")
    assert caught.value.code == "dns_name_not_allowed"
    with pytest.raises(InvalidInput):
        issue(dns_names=["*.services.example"], profile="service-tls")
    assert counts(runtime.database) == before


def test_a_request_asking_for_other_names_is_refused(issue, new_person, runtime) -> None:
    person = new_person()
    before = counts(runtime.database)
    with pytest.raises(CsrRejected) as caught:
        issue(person_id=person, csr=csr_factory.csr(dns_names=["bank.example"]))
    assert caught.value.code == "csr_names_not_allowed"
    assert counts(runtime.database) == before


def test_one_key_never_stands_for_two_subjects(issue, new_person, runtime) -> None:
    key = csr_factory.private_key()
    first = new_person()
    issue(person_id=first, csr=csr_factory.csr(key))
    # The same subject may have the key certified again (a renewal, another profile)...
    issue(person_id=first, csr=csr_factory.csr(key))
    second = new_person()
    before = counts(runtime.database)
    with pytest.raises(Conflict) as caught:
        issue(person_id=second, csr=csr_factory.csr(key))
    assert caught.value.code == "key_already_certified"
    assert counts(runtime.database) == before


def test_suspended_persons_get_no_new_certificates(issue, new_person, runtime) -> None:
    person_id = new_person()
    issued = issue(person_id=person_id)
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        persons.change_status(
            session, person, StatusChange.SUSPEND, actor=Actor.system(), reason="fraud check"
        )
    with pytest.raises(InvalidState) as caught:
        issue(person_id=person_id)
    assert caught.value.code == "person_not_active"
    with runtime.database.session() as session:
        kept = session.get(type(issued), issued.id)
        assert kept.status == CertificateStatus.VALID  # suspension does not revoke


def test_closing_a_person_revokes_their_certificates(issue, new_person, runtime, run_jobs) -> None:
    person_id = new_person()
    first, second = issue(person_id=person_id), issue(person_id=person_id)
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        persons.change_status(
            session, person, StatusChange.CLOSE, actor=Actor.system(), reason="deceased"
        )
    run_jobs()
    with runtime.database.session() as session:
        for issued in (first, second):
            row = session.get(type(issued), issued.id)
            assert row.status == CertificateStatus.REVOKED
            assert row.revocation_reason == "cessationOfOperation"


def test_names_too_long_for_a_certificate_are_refused(issue, new_enterprise) -> None:
    enterprise_id, _ = new_enterprise(name="很" * 70)
    with pytest.raises(InvalidInput) as caught:
        issue(enterprise_id=enterprise_id, profile="enterprise-sign")
    assert caught.value.code == "name_too_long"


def test_server_side_keys_come_back_once_as_pkcs12(runtime, new_person) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, csr = issuance.generated_key_request()
    with runtime.database.session() as session:
        signed = issuance.prepare(
            session,
            runtime.ca,
            profile=get_profile("citizen-auth"),
            subject=issuance.person_subject(session, new_person()),
            csr=csr,
        )
        issuance.record_signed(session, signed, actor=Actor.system())
        bundle = issuance.pkcs12_bundle(runtime.ca, session, signed, key, "a long passphrase")
    loaded = pkcs12.load_pkcs12(bundle, b"a long passphrase")
    assert loaded.cert.certificate.public_key() == key.public_key()
    assert len(loaded.additional_certs) == 1
    with pytest.raises(ValueError, match="Invalid password"):
        pkcs12.load_pkcs12(bundle, b"the wrong passphrase")


def test_a_batch_records_what_still_passes_and_refuses_the_rest(runtime, new_person) -> None:
    """Concurrent issuances share one write: each is checked again there, alone."""
    first, second, suspended = new_person(), new_person(), new_person()
    shared_key = csr_factory.private_key()
    requests = [
        (first, csr_factory.csr(shared_key)),
        (second, csr_factory.csr(shared_key)),  # the same key for another subject
        (suspended, csr_factory.csr()),
    ]
    with runtime.database.read_session() as session:
        signed = [
            issuance.prepare(
                session,
                runtime.ca,
                profile=get_profile("citizen-auth"),
                subject=issuance.person_subject(session, person_id),
                csr=check_csr(csr),
            )
            for person_id, csr in requests
        ]
    with runtime.database.session() as session:
        persons.change_status(
            session,
            persons.get_person(session, suspended),
            StatusChange.SUSPEND,
            actor=Actor.system(),
            reason="fraud check",
        )
    before = counts(runtime.database)
    with runtime.database.session() as session:
        outcomes = issuance.record_batch(session, [(s, Actor.system()) for s in signed])

    recorded, conflict, inactive = outcomes
    assert isinstance(recorded, Certificate)
    assert recorded.serial == format(signed[0].serial, "x")
    assert isinstance(conflict, Conflict)
    assert conflict.code == "key_already_certified"
    assert isinstance(inactive, InvalidState)
    assert inactive.code == "person_not_active"
    assert counts(runtime.database) == (before[0] + 1, before[1] + 1)
    with runtime.database.session() as session:
        stored = session.exec(
            select(Certificate).where(Certificate.serial == recorded.serial)
        ).one()
        assert stored.person_id == first
        assert session.get(OcspResponse, stored.id) is not None
