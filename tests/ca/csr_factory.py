"""Certificate requests for the CA tests: good ones of every allowed key type, and the bad
kinds the CA must refuse (each built here with cryptography, so what is wrong is explicit)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

_KEYS = {
    "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA-1024": lambda: rsa.generate_private_key(65537, 1024),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
    "DSA-2048": lambda: dsa.generate_private_key(2048),
}


def private_key(kind: str = "P-256"):  # type: ignore[no-untyped-def]
    return _KEYS[kind]()


def csr(
    key=None,  # type: ignore[no-untyped-def]
    *,
    common_name: str = "ignored by the CA",
    dns_names: list[str] | None = None,
    extensions: list[x509.ExtensionType] | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = hashes.SHA256(),
    encoding: serialization.Encoding = serialization.Encoding.PEM,
) -> bytes:
    key = key or private_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=True)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        hash_algorithm = None
    return builder.sign(key, hash_algorithm).public_bytes(encoding)


def with_bad_signature(pem: bytes) -> bytes:
    """The same request with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    return bytes(der)


def with_swapped_key(pem: bytes) -> bytes:
    """A request whose public key is replaced by another's: its signature cannot verify (no
    proof of possession of the key it asks to certify)."""
    original = x509.load_pem_x509_csr(pem)
    der = original.public_bytes(serialization.Encoding.DER)
    spki = original.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = (
        private_key("P-256")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert len(spki) == len(other)
    return der.replace(spki, other)
