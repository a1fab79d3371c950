"""The hierarchy: what `ca init` creates, replacing an issuing authority without breaking what
it issued, and the root key's offline custody."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy import delete
from sqlalchemy.exc import DatabaseError
from sqlmodel import select

from onecard.ca import hierarchy, issuance
from onecard.ca.crl import current_crl, publish_crl
from onecard.ca.csr import check_csr
from onecard.ca.models import Authority, AuthorityKind, AuthorityStatus, Certificate
from onecard.ca.ocsp import OcspResponder
from onecard.ca.profiles import get_profile
from onecard.ca.service import CertificateAuthority, active_authority, list_authorities
from onecard.core.audit import Actor
from onecard.core.errors import InvalidInput, InvalidState
from onecard.identity.models import AssuranceLevel
from tests import factories
from tests.ca import csr_factory

PASSPHRASE = "correct horse battery staple"


def test_init_creates_a_p384_root_and_three_issuing_authorities_once(own_ca) -> None:
    with own_ca.database.session() as session:
        authorities = {a.name: a for a in list_authorities(session)}
        assert hierarchy.ensure_hierarchy(session, own_ca.ca, Actor.system()) == []
    assert set(authorities) == {"root", "citizen-1", "enterprise-1", "service-1"}
    root = own_ca.ca.certificate(authorities["root"])
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    for name in ("citizen-1", "enterprise-1", "service-1"):
        authority = authorities[name]
        certificate = own_ca.ca.certificate(authority)
        certificate.verify_directly_issued_by(root)
        assert (
            certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
            == 0
        )
        responder = x509.load_der_x509_certificate(authority.ocsp_certificate)
        responder.verify_directly_issued_by(certificate)
        assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
        with own_ca.database.session() as session:
            assert current_crl(session, authority) is not None


def test_a_new_authority_retires_the_old_one_which_keeps_serving_its_certificates(
    own_ca, issue, new_person
) -> None:
    with own_ca.database.session() as session:
        person_id = factories.person(session, own_ca.sealer, level=AssuranceLevel.SUBSTANTIAL).id
    old_leaf = issue(person_id=person_id, database=own_ca.database)
    with own_ca.database.session() as session:
        created = hierarchy.add_authority(session, own_ca.ca, AuthorityKind.CITIZEN, Actor.system())
        assert created.name == "citizen-2"
    with own_ca.database.session() as session:
        old = session.exec(select(Authority).where(Authority.name == "citizen-1")).one()
        assert old.status == AuthorityStatus.RETIRED
        assert active_authority(session, AuthorityKind.CITIZEN).name == "citizen-2"
        # The retired authority still signs CRLs and OCSP answers for what it issued.
        crl = publish_crl(session, own_ca.ca, old, actor=Actor.system())
        assert crl.number >= 2
    new_leaf = issue(person_id=person_id, database=own_ca.database)
    assert new_leaf.authority_id == created.id
    leaf = x509.load_der_x509_certificate(old_leaf.der)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, own_ca.ca.certificate(old), hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    answer = ocsp.load_der_ocsp_response(own_ca.ocsp.answer(request))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_the_root_key_goes_offline_only_after_its_export_is_proven(own_ca) -> None:
    with own_ca.database.session() as session:
        exported = hierarchy.export_root_key(session, own_ca.ca, PASSPHRASE, Actor.system())
    assert exported.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with own_ca.database.session() as session, pytest.raises(InvalidInput):
        hierarchy.remove_root_key(
            session, own_ca.ca, exported, "the wrong passphrase", Actor.system()
        )
    with own_ca.database.session() as session:
        hierarchy.remove_root_key(session, own_ca.ca, exported, PASSPHRASE, Actor.system())
    with own_ca.database.session() as session:
        root = active_authority(session, AuthorityKind.ROOT)
        assert root.private_key is None
        # Without the key nothing the root signs can be made...
        with pytest.raises(InvalidState) as caught:
            hierarchy.add_authority(session, own_ca.ca, AuthorityKind.SERVICE, Actor.system())
        assert caught.value.code == "authority_key_offline"
    with own_ca.database.session() as session:
        # ...until the exported key is brought back for the ceremony.
        key = hierarchy.load_root_key(session, own_ca.ca, exported, PASSPHRASE)
        created = hierarchy.add_authority(
            session, own_ca.ca, AuthorityKind.SERVICE, Actor.system(), root_key=key
        )
        crl = publish_crl(session, own_ca.ca, root, actor=Actor.system(), key=key)
    own_ca.ca.certificate(created).verify_directly_issued_by(own_ca.ca.certificate(root))
    assert x509.load_der_x509_crl(crl.der).is_signature_valid(
        own_ca.ca.certificate(root).public_key()
    )


def test_an_exported_key_must_be_the_roots(own_ca) -> None:
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    with own_ca.database.session() as session, pytest.raises(InvalidInput) as caught:
        hierarchy.remove_root_key(session, own_ca.ca, other, PASSPHRASE, Actor.system())
    assert caught.value.code == "root_key_mismatch"


def test_export_passphrases_must_be_long(own_ca) -> None:
    with own_ca.database.session() as session, pytest.raises(InvalidInput):
        hierarchy.export_root_key(session, own_ca.ca, "short", Actor.system())


def test_certificate_records_are_never_deleted(runtime, issue, new_person) -> None:
    certificate = issue(person_id=new_person())
    with pytest.raises(DatabaseError), runtime.database.session() as session:
        session.exec(delete(Certificate).where(Certificate.id == certificate.id))  # type: ignore[call-overload]


def test_a_responder_renewed_by_another_process_signs_the_next_answers(own_ca, settings) -> None:
    other = CertificateAuthority(own_ca.sealer, settings)  # another worker's cache
    with own_ca.database.session() as session:
        person_id = factories.person(session, own_ca.sealer, level=AssuranceLevel.LOW).id
        citizen = active_authority(session, AuthorityKind.CITIZEN)
        other.private_key(citizen, "ocsp_private_key")  # warm: the old responder key
        hierarchy.issue_ocsp_responder(session, own_ca.ca, citizen, Actor.system())

    with own_ca.database.session() as session:
        certificate = issuance.issue(
            session,
            other,
            profile=get_profile("citizen-auth"),
            subject=issuance.person_subject(session, person_id),
            csr=check_csr(csr_factory.csr()),
            actor=Actor.system(),
        )
        citizen = active_authority(session, AuthorityKind.CITIZEN)
    leaf = x509.load_der_x509_certificate(certificate.der)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, own_ca.ca.certificate(citizen), hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    answer = ocsp.load_der_ocsp_response(OcspResponder(own_ca.database, other).answer(request))
    signer = answer.certificates[0]
    assert signer.public_bytes(serialization.Encoding.DER) == citizen.ocsp_certificate
    signer.public_key().verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )
