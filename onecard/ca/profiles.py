"""Certificate profiles: for each kind of certificate, who it is for, which authority issues
it, the assurance level it needs, how long it lives, and its key usages.

Validity stays inside the CA/Browser Forum limits: 199 days for TLS server certificates (the
Baseline Requirements allow 200 from 15 March 2026), two years for personal and organisation
certificates (the S/MIME Baseline Requirements allow 825 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from onecard.ca.models import AuthorityKind, SubjectKind
from onecard.core.errors import InvalidInput

# id-kp-documentSigning (RFC 9336): signatures over documents, not TLS or e-mail.
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")


class ProfileName(StrEnum):
    CITIZEN_AUTH = "citizen-auth"
    CITIZEN_SIGN = "citizen-sign"
    ENTERPRISE_SIGN = "enterprise-sign"
    SERVICE_TLS = "service-tls"


@dataclass(frozen=True)
class Profile:
    name: ProfileName
    authority: AuthorityKind
    subject: SubjectKind
    min_level: int
    validity: timedelta
    digital_signature: bool
    content_commitment: bool
    extended_key_usage: tuple[ObjectIdentifier, ...]

    def key_usage(self, public_key: object) -> x509.KeyUsage:
        # RSA TLS keys may also be used for key transport (TLS 1.2 RSA key exchange).
        key_encipherment = self.subject is SubjectKind.SERVICE and isinstance(
            public_key, rsa.RSAPublicKey
        )
        return x509.KeyUsage(
            digital_signature=self.digital_signature,
            content_commitment=self.content_commitment,
            key_encipherment=key_encipherment,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )


PROFILES: dict[ProfileName, Profile] = {
    ProfileName.CITIZEN_AUTH: Profile(
        ProfileName.CITIZEN_AUTH,
        AuthorityKind.CITIZEN,
        SubjectKind.PERSON,
        min_level=1,
        validity=timedelta(days=730),
        digital_signature=True,
        content_commitment=False,
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    ),
    ProfileName.CITIZEN_SIGN: Profile(
        ProfileName.CITIZEN_SIGN,
        AuthorityKind.CITIZEN,
        SubjectKind.PERSON,
        min_level=2,
        validity=timedelta(days=730),
        digital_signature=False,
        content_commitment=True,
        extended_key_usage=(DOCUMENT_SIGNING,),
    ),
    ProfileName.ENTERPRISE_SIGN: Profile(
        ProfileName.ENTERPRISE_SIGN,
        AuthorityKind.ENTERPRISE,
        SubjectKind.ENTERPRISE,
        min_level=2,
        validity=timedelta(days=730),
        digital_signature=False,
        content_commitment=True,
        extended_key_usage=(DOCUMENT_SIGNING,),
    ),
    ProfileName.SERVICE_TLS: Profile(
        ProfileName.SERVICE_TLS,
        AuthorityKind.SERVICE,
        SubjectKind.SERVICE,
        min_level=2,
        validity=timedelta(days=199),
        digital_signature=True,
        content_commitment=False,
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[ProfileName(name)]
    except ValueError:
        known = ", ".join(PROFILES)
        raise InvalidInput(
            f"unknown certificate profile {name!r}; known: {known}", code="profile_unknown"
        ) from None
