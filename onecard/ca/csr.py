"""PKCS#10 certificate requests (RFC 2986): parsing, proof of possession and key policy.

:func:`check_csr` either returns a :class:`CheckedCsr` or raises :class:`CsrRejected` with a
machine-readable reason; nothing here returns ``False`` for a bad request. Only the public key
is taken from a request: the subject comes from the verified identity, so a request that asks
for names (a subjectAltName other than the DNS names being requested) or for CA powers is
refused rather than silently trimmed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from onecard.core.errors import InvalidInput

MAX_CSR_BYTES = 16 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
_WEAK_HASHES = (hashes.MD5, hashes.SHA1)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class CsrRejected(InvalidInput):
    """The request cannot be honoured; ``code`` says why (``csr_*``)."""


@dataclass(frozen=True)
class CheckedCsr:
    public_key: PublicKey
    spki_der: bytes
    dns_names: tuple[str, ...]  # subjectAltName dNSName entries the request asked for

    @property
    def spki_sha256(self) -> bytes:
        return hashlib.sha256(self.spki_der).digest()

    @property
    def key_description(self) -> str:
        return describe_key(self.public_key)


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse PEM or DER; anything else is ``csr_malformed``."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw:
        raise CsrRejected("the certificate request is empty", code="csr_malformed")
    if len(raw) > MAX_CSR_BYTES:
        raise CsrRejected(
            f"the certificate request exceeds {MAX_CSR_BYTES} bytes", code="csr_too_large"
        )
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(raw.strip())
        return x509.load_der_x509_csr(raw)
    except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm):
        raise CsrRejected(
            "the certificate request is not a PKCS#10 request in PEM or DER", code="csr_malformed"
        ) from None


def check_csr(data: bytes | str) -> CheckedCsr:
    csr = load_csr(data)
    public_key = _allowed_key(csr)
    _check_signature(csr)
    return CheckedCsr(
        public_key=public_key,
        spki_der=public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        dns_names=_requested_names(csr),
    )


def check_key(public_key: object) -> PublicKey:
    """The key policy: RSA of 2048 to 8192 bits with an odd exponent ≥ 65537, or P-256, or P-384."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        if not MIN_RSA_BITS <= public_key.key_size <= MAX_RSA_BITS:
            raise CsrRejected(
                f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, "
                f"not {public_key.key_size}",
                code="csr_weak_key",
            )
        if numbers.e < 65537 or numbers.e % 2 == 0 or numbers.n % 2 == 0:
            raise CsrRejected("the RSA key's exponent or modulus is unsafe", code="csr_weak_key")
        return public_key
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _CURVES:
            raise CsrRejected(
                f"elliptic-curve keys must be on P-256 or P-384, not {public_key.curve.name}",
                code="csr_key_not_allowed",
            )
        return public_key
    raise CsrRejected(
        f"{type(public_key).__name__.removeprefix('_')} keys are not allowed; "
        "use RSA (2048 bits or more), P-256 or P-384",
        code="csr_key_not_allowed",
    )


def describe_key(public_key: PublicKey) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    return _CURVES[public_key.curve.name]


def _allowed_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CsrRejected(
            "the request's public key cannot be read", code="csr_key_not_allowed"
        ) from None
    return check_key(public_key)


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or isinstance(algorithm, _WEAK_HASHES):
        raise CsrRejected(
            "the request must be signed with SHA-256 or stronger", code="csr_weak_signature"
        )
    try:
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm:
        valid = False
    if not valid:
        # Proof of possession failed: whoever sent this does not hold the private key.
        raise CsrRejected(
            "the request's signature does not verify with its public key",
            code="csr_bad_signature",
        )


def _requested_names(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise CsrRejected(
            "the request's extensions cannot be parsed", code="csr_malformed"
        ) from None
    dns_names: list[str] = []
    for extension in extensions:
        oid = extension.oid
        if oid == ExtensionOID.BASIC_CONSTRAINTS and extension.value.ca:
            raise CsrRejected("the request asks to be a CA", code="csr_asks_ca")
        if oid == ExtensionOID.KEY_USAGE and (
            extension.value.key_cert_sign or extension.value.crl_sign
        ):
            raise CsrRejected("the request asks for certificate or CRL signing", code="csr_asks_ca")
        if oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            names = extension.value
            if len(names) != len(names.get_values_for_type(x509.DNSName)):
                raise CsrRejected(
                    "the request asks for names other than DNS names", code="csr_names_not_allowed"
                )
            dns_names.extend(names.get_values_for_type(x509.DNSName))
    return tuple(dns_names)
