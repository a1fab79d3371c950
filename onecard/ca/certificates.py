"""Building certificates: the CA certificates, the delegated OCSP responders and the leaves.

Every certificate follows RFC 5280 and the CA/Browser Forum's habits: a positive serial number
of 159 random bits (at least 64 are required, below 2^159 keeps it within 20 octets), UTF8String
names (PrintableString for country and serialNumber), AKI and SKI, basicConstraints (critical),
keyUsage (critical), and in every leaf the CRL distribution point and the AIA CA-issuer and
OCSP URLs, built from the configured public base URL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from onecard.ca.models import AuthorityKind
from onecard.ca.profiles import DOCUMENT_SIGNING, Profile

SERIAL_BITS = 159
# X.520 upper bounds for the name attributes we fill in.
MAX_COMMON_NAME = 64
MAX_ORGANIZATION = 64
# Backdating hides the exact issuance time and absorbs relying parties' clock skew.
BACKDATE = timedelta(minutes=1)

_CA_EXTENDED_KEY_USAGE = {
    AuthorityKind.CITIZEN: (ExtendedKeyUsageOID.CLIENT_AUTH, DOCUMENT_SIGNING),
    AuthorityKind.ENTERPRISE: (DOCUMENT_SIGNING,),
    AuthorityKind.SERVICE: (ExtendedKeyUsageOID.SERVER_AUTH,),
}
_CA_TITLES = {
    AuthorityKind.ROOT: "Root CA",
    AuthorityKind.CITIZEN: "Citizen CA",
    AuthorityKind.ENTERPRISE: "Enterprise CA",
    AuthorityKind.SERVICE: "Service CA",
}


@dataclass(frozen=True)
class CaUrls:
    """Where relying parties fetch CA certificates, CRLs and OCSP answers."""

    base: str

    def certificate(self, authority_name: str) -> str:
        return f"{self.base}/ca/{authority_name}.crt"

    def crl(self, authority_name: str) -> str:
        return f"{self.base}/ca/{authority_name}.crl"

    @property
    def ocsp(self) -> str:
        return f"{self.base}/ocsp"


def new_serial() -> int:
    """A positive serial number from the CSPRNG, below 2^159 (at most 20 octets in DER)."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial.bit_length() > 64:  # astronomically rare otherwise; keep >= 64 bits anyway
            return serial


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def key_hash(public_key: object) -> bytes:
    """SHA-1 of the subjectPublicKey bits: the SKI (RFC 5280 §4.2.1.2 method 1) and the OCSP
    issuerKeyHash (RFC 6960 §4.1.1) alike."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest  # type: ignore[arg-type]


def signature_hash(key: ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    return hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()


def ca_name(organization: str, kind: AuthorityKind, generation: int) -> x509.Name:
    title = _CA_TITLES[kind] if generation == 1 else f"{_CA_TITLES[kind]} {generation}"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:MAX_ORGANIZATION]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} {title}"[:MAX_COMMON_NAME]),
        ]
    )


def _ca_key_usage(*, digital_signature: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not digital_signature,
        crl_sign=not digital_signature,
        encipher_only=False,
        decipher_only=False,
    )


def _base(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
            critical=False,
        )
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _distribution(urls: CaUrls, issuer_name: str, *, ocsp: bool) -> list[x509.ExtensionType]:
    access = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(urls.certificate(issuer_name)),
        )
    ]
    if ocsp:
        access.insert(
            0,
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
            ),
        )
    crl_point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(urls.crl(issuer_name))],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return [x509.CRLDistributionPoints([crl_point]), x509.AuthorityInformationAccess(access)]


def build_root(
    key: ec.EllipticCurvePrivateKey, name: x509.Name, not_before: datetime, lifetime: timedelta
) -> x509.Certificate:
    builder = (
        _base(name, name, key.public_key(), not_before, not_before + lifetime, new_serial())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
    )
    return builder.sign(key, signature_hash(key))


def build_intermediate(
    *,
    kind: AuthorityKind,
    public_key: ec.EllipticCurvePublicKey,
    name: x509.Name,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    urls: CaUrls,
    not_before: datetime,
    lifetime: timedelta,
) -> x509.Certificate:
    not_after = min(not_before + lifetime, root.not_valid_after_utc)
    builder = (
        _base(name, root.subject, public_key, not_before, not_after, new_serial())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(_CA_EXTENDED_KEY_USAGE[kind])), critical=False)
        .add_extension(_aki(root), critical=False)
    )
    for extension in _distribution(urls, AuthorityKind.ROOT.value, ocsp=False):
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(root_key, signature_hash(root_key))


def build_ocsp_responder(
    *,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    lifetime: timedelta,
) -> x509.Certificate:
    """A delegated responder (RFC 6960 §4.2.2.2) with id-pkix-ocsp-nocheck: short-lived and
    renewed well before it expires, since relying parties do not check its revocation."""
    organization = issuer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    issuer_cn = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(organization)),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer_cn} OCSP"[:MAX_COMMON_NAME]),
        ]
    )
    not_after = min(not_before + lifetime, issuer.not_valid_after_utc)
    builder = (
        _base(name, issuer.subject, public_key, not_before, not_after, new_serial())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ca_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))


@dataclass(frozen=True)
class LeafRequest:
    """What a leaf certificate will say, decided before anything is signed."""

    profile: Profile
    subject: x509.Name
    public_key: object
    dns_names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    serial: int


def build_leaf(
    request: LeafRequest,
    *,
    issuer: x509.Certificate,
    issuer_name: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    urls: CaUrls,
) -> x509.Certificate:
    profile = request.profile
    builder = (
        _base(
            request.subject,
            issuer.subject,
            request.public_key,
            request.not_before,
            request.not_after,
            request.serial,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(profile.key_usage(request.public_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    for extension in _distribution(urls, issuer_name, ocsp=True):
        builder = builder.add_extension(extension, critical=False)
    if request.dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(name) for name in request.dns_names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))
