"""The CSR policy: proof of possession, allowed keys, and no requests for names or CA powers."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from onecard.ca.csr import MAX_CSR_BYTES, CsrRejected, check_csr
from tests.ca import csr_factory as f

VECTORS = Path(__file__).parent.parent / "vectors" / "csr"


@pytest.mark.parametrize("kind", ["P-256", "P-384", "RSA-2048"])
@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_allowed_keys_pass_in_pem_and_der(kind: str, encoding: serialization.Encoding) -> None:
    checked = check_csr(f.csr(f.private_key(kind), encoding=encoding))
    assert checked.key_description == kind
    assert len(checked.spki_sha256) == 32
    assert checked.dns_names == ()


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("RSA-1024", "csr_weak_key"),
        ("P-521", "csr_key_not_allowed"),
        ("secp256k1", "csr_key_not_allowed"),
        ("Ed25519", "csr_key_not_allowed"),
        ("DSA-2048", "csr_key_not_allowed"),
    ],
)
def test_other_keys_are_refused_with_a_reason(kind: str, code: str) -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(f.csr(f.private_key(kind)))
    assert caught.value.code == code


def test_a_flipped_signature_bit_fails_proof_of_possession() -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(f.with_bad_signature(f.csr()))
    assert caught.value.code in {"csr_bad_signature", "csr_malformed"}


def test_a_request_for_someone_elses_key_fails_proof_of_possession() -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(f.with_swapped_key(f.csr()))
    assert caught.value.code == "csr_bad_signature"


def test_sha1_signed_requests_are_refused() -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr((VECTORS / "rsa2048-sha1.csr.pem").read_bytes())
    assert caught.value.code == "csr_weak_signature"


@pytest.mark.parametrize(
    "extension",
    [
        x509.BasicConstraints(ca=True, path_length=None),
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
    ],
)
def test_requests_for_ca_powers_are_refused(extension: x509.ExtensionType) -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(f.csr(extensions=[extension]))
    assert caught.value.code == "csr_asks_ca"


def test_requests_for_names_other_than_dns_are_refused() -> None:
    extension = x509.SubjectAlternativeName([x509.RFC822Name("someone@example.org")])
    with pytest.raises(CsrRejected) as caught:
        check_csr(f.csr(extensions=[extension]))
    assert caught.value.code == "csr_names_not_allowed"


def test_requested_dns_names_are_reported_for_the_profile_to_judge() -> None:
    checked = check_csr(f.csr(dns_names=["portal.gov.example"]))
    assert checked.dns_names == ("portal.gov.example",)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
    ],
)
def test_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(data)
    assert caught.value.code == "csr_malformed"


def test_truncated_requests_are_malformed() -> None:
    der = f.csr(encoding=serialization.Encoding.DER)
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        with pytest.raises(CsrRejected) as caught:
            check_csr(der[:cut])
        assert caught.value.code == "csr_malformed"


def test_oversized_requests_are_refused_before_parsing() -> None:
    with pytest.raises(CsrRejected) as caught:
        check_csr(b"0" * (MAX_CSR_BYTES + 1))
    assert caught.value.code == "csr_too_large"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_escape_as_anything_but_a_rejection(data: bytes) -> None:
    with contextlib.suppress(CsrRejected):
        check_csr(data)


def test_an_unknown_request_version_is_malformed() -> None:
    # Found by hypothesis at the HTTP layer: cryptography raises InvalidVersion, not ValueError.
    der = f.csr(encoding=serialization.Encoding.DER)
    version_at = der.index(b"\x02\x01\x00")
    bumped = der[:version_at] + b"\x02\x01\x01" + der[version_at + 3 :]
    with pytest.raises(CsrRejected) as caught:
        check_csr(bumped)
    assert caught.value.code == "csr_malformed"
