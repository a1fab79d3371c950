"""Request and response bodies. Sealed columns have no field here, so no response can leak them;
personal numbers appear only masked."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Generic, Literal, Self, TypeVar

from cryptography import x509
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from onecard.ca.certificates import CaUrls
from onecard.ca.models import Authority, Certificate, DnsAllowance
from onecard.ca.profiles import ProfileName
from onecard.card.links import LinkedCardView
from onecard.card.models import Card, LinkKind, Terminal
from onecard.card.online import Disclosure
from onecard.card.purpose import Purpose
from onecard.card.terminals import NewTerminal, VerificationView
from onecard.core.audit import AuditEvent
from onecard.core.masking import mask_email, mask_phone
from onecard.identity.models import (
    AssuranceLevel,
    Enterprise,
    EnterpriseRoleGrant,
    Person,
    StaffRole,
)

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=2000)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


# -- persons ------------------------------------------------------------------------------


class SelfRegistration(Body):
    name: str = Field(max_length=100, examples=["张三"])
    identity_number: str = Field(max_length=32, examples=["11010519491231002X"])
    password: str = Field(max_length=256)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)


class CounterRegistration(Body):
    """Registration by a registrar after checking the person's identity document in person."""

    name: str = Field(max_length=100)
    identity_number: str = Field(max_length=32)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    document_checked: str = Field(
        min_length=1,
        max_length=200,
        description="The document seen at the counter, e.g. 'resident identity card'.",
    )
    initial_password: str | None = Field(None, max_length=256)


class PersonSearch(Body):
    identity_number: str = Field(max_length=32)


class PersonUpdate(Body):
    name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    clear: list[Literal["phone", "email"]] = Field(default_factory=list)


class ContactUpdate(Body):
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    clear: list[Literal["phone", "email"]] = Field(default_factory=list)


class LevelChange(Body):
    level: Literal[1, 2, 3]
    evidence: str = Field(min_length=1, max_length=500)


class StatusReason(Body):
    reason: str = Field(min_length=1, max_length=500)


class PersonOut(BaseModel):
    """A person as staff see it: the identity number masked, contact details masked."""

    id: uuid.UUID
    name: str
    identity_number_masked: str
    birth_date: date
    sex: str
    phone_masked: str | None
    email_masked: str | None
    assurance_level: int
    acr: str
    status: str
    status_reason: str | None
    registered_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(
            id=person.id,
            name=person.name,
            identity_number_masked=person.identity_number_masked,
            birth_date=person.birth_date,
            sex=person.sex,
            phone_masked=mask_phone(person.phone) if person.phone else None,
            email_masked=mask_email(person.email) if person.email else None,
            assurance_level=person.assurance_level,
            acr=AssuranceLevel(person.assurance_level).acr,
            status=person.status,
            status_reason=person.status_reason,
            registered_by=person.registered_by,
            created_at=person.created_at,
            updated_at=person.updated_at,
        )


class MeOut(PersonOut):
    """The citizen's own view: their own phone and email in full."""

    phone: str | None
    email: str | None
    totp_enrolled: bool
    staff_roles: list[str]

    @classmethod
    def of_me(cls, person: Person, *, totp: bool, roles: list[str]) -> MeOut:
        base = PersonOut.of(person).model_dump()
        return cls(
            **base, phone=person.phone, email=person.email, totp_enrolled=totp, staff_roles=roles
        )


class IdentityNumberOut(BaseModel):
    identity_number: str


# -- credentials --------------------------------------------------------------------------


class PasswordChange(Body):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class TotpEnrolmentOut(BaseModel):
    secret: str
    provisioning_uri: str


class TotpCode(Body):
    code: str = Field(min_length=6, max_length=10)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class Bootstrap(Body):
    name: str = Field(max_length=100)
    identity_number: str = Field(max_length=32)
    password: str = Field(max_length=256)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)


# -- staff --------------------------------------------------------------------------------


class StaffRoleGrant(Body):
    person_id: uuid.UUID
    role: str = Field(max_length=32)


class StaffRoleOut(BaseModel):
    id: uuid.UUID
    person_id: uuid.UUID
    role: str
    granted_by: uuid.UUID | None
    granted_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, grant: StaffRole) -> StaffRoleOut:
        return cls.model_validate(grant, from_attributes=True)


# -- enterprises --------------------------------------------------------------------------


class EnterpriseRegistration(Body):
    name: str = Field(max_length=200)
    credit_code: str = Field(max_length=32, examples=["91350100M000100Y43"])
    legal_representative_id: uuid.UUID


class LegalRepresentativeChange(Body):
    legal_representative_id: uuid.UUID


class EnterpriseOut(BaseModel):
    id: uuid.UUID
    name: str
    credit_code: str
    legal_representative_id: uuid.UUID
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, enterprise: Enterprise) -> EnterpriseOut:
        return cls.model_validate(enterprise, from_attributes=True)


class RoleGrantIn(Body):
    person_id: uuid.UUID
    role: str = Field(max_length=64, description="'admin', 'agent' or a named service role.")
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class RoleGrantOut(BaseModel):
    id: uuid.UUID
    enterprise_id: uuid.UUID
    person_id: uuid.UUID
    role: str
    valid_from: datetime | None
    valid_until: datetime | None
    granted_by: uuid.UUID | None
    granted_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, grant: EnterpriseRoleGrant) -> RoleGrantOut:
        return cls.model_validate(grant, from_attributes=True)


class MyEnterpriseOut(EnterpriseOut):
    my_roles: list[str]


# -- audit --------------------------------------------------------------------------------


class AuditEventOut(BaseModel):
    """An event as the person it concerns sees it (no chain position: that would reveal the
    service's overall activity)."""

    id: uuid.UUID
    occurred_at: datetime
    action: str
    actor_kind: str
    actor_id: str | None
    subject_type: str | None
    subject_id: str | None
    data: dict

    @classmethod
    def of(cls, event: AuditEvent) -> Self:
        fields = event.model_dump(include=set(cls.model_fields) - {"data"})
        return cls(**fields, data=event.data_dict())


class AuditorEventOut(AuditEventOut):
    """An event with its place in the hash chain, for auditors."""

    seq: int
    prev_hash: str
    hash: str


class ChainReportOut(BaseModel):
    ok: bool
    events: int
    checkpoints: int
    broken_seq: int | None = None
    broken_reason: str | None = None


# -- clients (relying parties) ------------------------------------------------------------


class ClientIn(Body):
    """A portal (code flow) or terminal (client credentials) registration."""

    name: str = Field(max_length=200)
    client_type: Literal["confidential", "public"] = "confidential"
    auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] = (
        "client_secret_basic"
    )
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    backchannel_logout_uri: str | None = Field(None, max_length=2000)
    grant_types: list[Literal["authorization_code", "refresh_token", "client_credentials"]] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"], max_length=3
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid"], max_length=20)
    jwks: dict | None = None
    jwks_uri: str | None = Field(None, max_length=2000)
    subject_type: Literal["public", "pairwise"] = "public"
    sector_identifier: str | None = Field(None, max_length=255)
    id_token_alg: Literal["RS256", "ES256"] = "RS256"
    min_level: Literal[1, 2, 3] = 1
    full_identity_number: bool = Field(
        False, description="Allow this client the full identity number (identity scope)."
    )


class ClientUpdate(Body):
    """Fields to change; absent fields keep their value."""

    name: str | None = Field(None, max_length=200)
    redirect_uris: list[str] | None = Field(None, max_length=20)
    post_logout_redirect_uris: list[str] | None = Field(None, max_length=20)
    backchannel_logout_uri: str | None = Field(None, max_length=2000)
    grant_types: (
        list[Literal["authorization_code", "refresh_token", "client_credentials"]] | None
    ) = Field(None, max_length=3)
    scopes: list[str] | None = Field(None, max_length=20)
    jwks: dict | None = None
    jwks_uri: str | None = Field(None, max_length=2000)
    subject_type: Literal["public", "pairwise"] | None = None
    sector_identifier: str | None = Field(None, max_length=255)
    id_token_alg: Literal["RS256", "ES256"] | None = None
    min_level: Literal[1, 2, 3] | None = None
    full_identity_number: bool | None = None


class ClientOut(BaseModel):
    client_id: str
    name: str
    client_type: str
    auth_method: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    backchannel_logout_uri: str | None
    grant_types: list[str]
    scopes: list[str]
    jwks: dict | None
    jwks_uri: str | None
    subject_type: str
    sector_identifier: str | None
    id_token_alg: str
    min_level: int
    full_identity_number: bool
    status: str
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def of(cls, client: object) -> Self:
        return cls.model_validate(client, from_attributes=True)


class ClientCreated(ClientOut):
    client_secret: str | None = Field(
        None, description="Shown once; only its hash is stored. None for key-based methods."
    )


class ClientSecretOut(BaseModel):
    client_id: str
    client_secret: str


# -- sessions and consents ----------------------------------------------------------------


class SessionOut(BaseModel):
    sid: str
    auth_time: AwareDatetime
    level: int
    amr: list[str]
    user_agent: str | None
    created_at: AwareDatetime
    last_seen_at: AwareDatetime
    expires_at: AwareDatetime


class SessionsEnded(BaseModel):
    ended: int


class ConsentOut(BaseModel):
    client_id: str
    client_name: str
    scopes: list[str]
    claims: list[str]
    granted_at: AwareDatetime
    updated_at: AwareDatetime


# -- certificate authority ----------------------------------------------------------------


class AuthorityOut(BaseModel):
    name: str
    kind: str
    status: str
    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    certificate_url: str
    crl_url: str
    key_online: bool = Field(description="False once the root key is in offline custody.")

    @classmethod
    def of(cls, authority: Authority, certificate: x509.Certificate, urls: CaUrls) -> Self:
        return cls(
            name=authority.name,
            kind=authority.kind,
            status=authority.status,
            subject=certificate.subject.rfc4514_string(),
            serial=format(certificate.serial_number, "x"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            certificate_url=urls.certificate(authority.name),
            crl_url=urls.crl(authority.name),
            key_online=authority.private_key is not None,
        )


ProfileField = Field(
    description="citizen-auth, citizen-sign, enterprise-sign or service-tls",
    examples=["citizen-auth"],
)
CsrField = Field(
    min_length=1,
    max_length=20_000,
    description="A PKCS#10 request in PEM, or its DER in base64. Only its public key is used.",
)


class CertificateRequest(Body):
    profile: ProfileName = ProfileField
    csr: str = CsrField


class GeneratedKeyRequest(Body):
    """Server-side key generation: the key comes back once, in a PKCS#12 file."""

    profile: ProfileName = ProfileField
    passphrase: str = Field(min_length=12, max_length=256)


class OfficerCertificateRequest(Body):
    """A CA officer's issuance: name exactly one subject (a person, an enterprise, or DNS
    names for a service)."""

    profile: ProfileName = ProfileField
    csr: str = CsrField
    person_id: uuid.UUID | None = None
    enterprise_id: uuid.UUID | None = None
    dns_names: list[str] | None = Field(None, max_length=100)


class RevocationRequest(Body):
    reason: str = Field(
        "unspecified",
        max_length=32,
        description="unspecified, keyCompromise, superseded, cessationOfOperation; CA officers "
        "also affiliationChanged and privilegeWithdrawn.",
    )


class CertificateOut(BaseModel):
    serial: str
    profile: str
    status: str
    subject: str
    subject_kind: str
    person_id: uuid.UUID | None
    enterprise_id: uuid.UUID | None
    authority: str
    dns_names: list[str]
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
    created_at: datetime
    links: dict[str, str]

    @classmethod
    def of(cls, certificate: Certificate, authority_name: str) -> Self:
        parsed = x509.load_der_x509_certificate(certificate.der)
        try:
            san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns_names = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            dns_names = []
        base = f"/v1/certificates/{certificate.serial}"
        return cls(
            serial=certificate.serial,
            profile=certificate.profile,
            status=certificate.status,
            subject=certificate.subject_dn,
            subject_kind=certificate.subject_kind,
            person_id=certificate.person_id,
            enterprise_id=certificate.enterprise_id,
            authority=authority_name,
            dns_names=dns_names,
            not_before=certificate.not_before,
            not_after=certificate.not_after,
            revoked_at=certificate.revoked_at,
            revocation_reason=certificate.revocation_reason,
            created_at=certificate.created_at,
            links={
                "self": base,
                "pem": f"{base}/download?format=pem",
                "der": f"{base}/download?format=der",
                "chain": f"{base}/download?format=chain",
            },
        )


class DnsAllowanceIn(Body):
    pattern: str = Field(max_length=260, examples=["portal.gov.example", "*.gov.example"])


class DnsAllowanceOut(BaseModel):
    id: uuid.UUID
    pattern: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, allowance: DnsAllowance) -> Self:
        return cls(
            id=allowance.id,
            pattern=allowance.pattern,
            created_by=allowance.created_by,
            created_at=allowance.created_at,
        )


# -- the one-card -------------------------------------------------------------------------


class CardOut(BaseModel):
    """A virtual card; its pseudonymous QR reference is never shown."""

    id: uuid.UUID
    person_id: uuid.UUID
    number: str
    status: str
    status_reason: str | None
    created_at: datetime
    status_changed_at: datetime | None
    replaces_id: uuid.UUID | None

    @classmethod
    def of(cls, card: Card) -> Self:
        return cls(
            id=card.id,
            person_id=card.person_id,
            number=card.number,
            status=card.status,
            status_reason=card.status_reason,
            created_at=card.created_at,
            status_changed_at=card.status_changed_at,
            replaces_id=card.replaces_id,
        )


class CardReason(Body):
    reason: str | None = Field(None, max_length=500, examples=["left the phone on the bus"])


class CodeOut(BaseModel):
    token: str = Field(description="The QR code's text: `OC1:` and a Base45 COSE_Sign1 CWT.")
    purpose: Purpose
    expires_at: datetime


class LinkIn(Body):
    kind: LinkKind
    number: str = Field(max_length=40, examples=["6222021234567894"])
    operator: str | None = Field(
        None, max_length=100, description="Transit operator, or the bank's name."
    )


class LinkOut(BaseModel):
    """A linked card: the number appears masked only."""

    id: uuid.UUID
    kind: LinkKind
    operator: str | None
    number_masked: str
    warning: str | None
    created_at: datetime

    @classmethod
    def of(cls, view: LinkedCardView) -> Self:
        return cls(
            id=view.id,
            kind=view.kind,
            operator=view.operator,
            number_masked=view.number_masked,
            warning=view.warning,
            created_at=view.created_at,
        )


class VerifyIn(Body):
    token: str = Field(max_length=2048, description="The scanned QR code's text.")


class DisclosureOut(BaseModel):
    """What the terminal's purpose allows it to learn; other fields are absent (null)."""

    valid: Literal[True] = True
    purpose: Purpose
    verified_at: datetime
    transit_linked: bool | None = None
    name: str | None = None
    identity_number_masked: str | None = None
    assurance_level: int | None = None
    social_security_linked: bool | None = None
    bank_cards_masked: list[str] | None = None

    @classmethod
    def of(cls, disclosure: Disclosure) -> Self:
        banks = disclosure.bank_cards_masked
        return cls(
            purpose=disclosure.purpose,
            verified_at=disclosure.verified_at,
            transit_linked=disclosure.transit_linked,
            name=disclosure.name,
            identity_number_masked=disclosure.identity_number_masked,
            assurance_level=disclosure.assurance_level,
            social_security_linked=disclosure.social_security_linked,
            bank_cards_masked=list(banks) if banks is not None else None,
        )


class VerificationOut(BaseModel):
    id: uuid.UUID
    verified_at: datetime
    purpose: Purpose
    terminal: str
    location: str
    organisation: str

    @classmethod
    def of(cls, view: VerificationView) -> Self:
        return cls(
            id=view.id,
            verified_at=view.verified_at,
            purpose=view.purpose,
            terminal=view.terminal_name,
            location=view.location,
            organisation=view.organisation,
        )


class TerminalIn(Body):
    name: str = Field(max_length=200, examples=["Gate 3"])
    location: str = Field(max_length=200, examples=["Line 1, People's Square"])
    organisation: str = Field(max_length=200, examples=["City Metro"])
    purpose: Purpose


class TerminalOut(BaseModel):
    id: uuid.UUID
    name: str
    location: str
    organisation: str
    purpose: Purpose
    client_id: str
    status: str
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, terminal: Terminal, client_id: str) -> Self:
        return cls(
            id=terminal.id,
            name=terminal.name,
            location=terminal.location,
            organisation=terminal.organisation,
            purpose=Purpose(terminal.purpose),
            client_id=client_id,
            status=terminal.status,
            created_at=terminal.created_at,
            disabled_at=terminal.disabled_at,
        )


class NewTerminalOut(BaseModel):
    terminal_id: uuid.UUID
    client_id: str
    client_secret: str = Field(description="Shown once: the terminal's token requests use it.")

    @classmethod
    def of(cls, made: NewTerminal) -> Self:
        return cls(
            terminal_id=made.terminal.id, client_id=made.client_id, client_secret=made.client_secret
        )
