"""Tables of the certificate authority.

- ``ca_authority``: the root and the issuing authorities, each with its certificate, its sealed
  private key (the root's may be removed for offline custody), its delegated OCSP responder and
  the number of its latest CRL.
- ``ca_certificate``: every certificate issued, kept forever (a trigger refuses DELETE: the
  Electronic Signature Law asks for at least five years after expiry), with its revocation.
- ``ca_certified_key``: which subject each public key was certified for, so one key never
  stands for two subjects (the primary key decides under races).
- ``ca_crl`` and ``ca_ocsp_response``: the signed bytes the HTTP layer serves, built from the
  records above.
- ``ca_dns_allowance``: the DNS names an administrator allows in service TLS certificates.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, text
from sqlmodel import Field, SQLModel

from onecard.core.db import UTCDateTime


class AuthorityKind(StrEnum):
    ROOT = "root"
    CITIZEN = "citizen"
    ENTERPRISE = "enterprise"
    SERVICE = "service"


class AuthorityStatus(StrEnum):
    ACTIVE = "active"  # issues certificates
    RETIRED = "retired"  # issues nothing new; still signs CRLs and OCSP for what it issued


class CertificateStatus(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


class SubjectKind(StrEnum):
    PERSON = "person"
    ENTERPRISE = "enterprise"
    SERVICE = "service"


class Authority(SQLModel, table=True):
    __tablename__ = "ca_authority"
    __table_args__ = (
        CheckConstraint("kind IN ('root', 'citizen', 'enterprise', 'service')", name="kind"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
        # One authority of each kind issues at a time; adding one retires its predecessor.
        Index(
            "uq_ca_authority_one_active",
            "kind",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=32, unique=True)  # in URLs: /ca/{name}.crt, /ca/{name}.crl
    kind: str = Field(max_length=16)
    status: str = Field(default=AuthorityStatus.ACTIVE, max_length=16)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="ca_authority.id")
    certificate: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # SHA-1 of the public key, as OCSP requests name their issuer (RFC 6960 §4.1.1).
    key_hash: bytes = Field(sa_column=Column(LargeBinary(20), nullable=False, unique=True))
    private_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    ocsp_certificate: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    ocsp_private_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    crl_number: int = 0
    # Bumped by every revocation: workers drop their cached OCSP answers when it moves.
    revision: int = 0
    not_after: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    key_removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Certificate(SQLModel, table=True):
    __tablename__ = "ca_certificate"
    __table_args__ = (
        CheckConstraint("status IN ('valid', 'revoked')", name="status"),
        CheckConstraint("subject_kind IN ('person', 'enterprise', 'service')", name="subject_kind"),
        Index("ix_ca_certificate_revoked", "authority_id", "status", "not_after"),
        Index("ix_ca_certificate_created", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Lower-case hex without leading zeros: up to 159 bits, beyond any integer column.
    serial: str = Field(max_length=40, unique=True)
    authority_id: uuid.UUID = Field(foreign_key="ca_authority.id")
    profile: str = Field(max_length=32)
    subject_kind: str = Field(max_length=16)
    person_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    enterprise_id: uuid.UUID | None = Field(default=None, foreign_key="enterprise.id", index=True)
    subject_dn: str = Field(max_length=500)
    # Lower-cased subject DN and DNS names, for staff search by subject.
    search_text: str = Field(max_length=2000)
    spki_sha256: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, index=True))
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    not_before: datetime = Field(sa_type=UTCDateTime)
    not_after: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default=CertificateStatus.VALID, max_length=16)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revocation_reason: str | None = Field(default=None, max_length=32)
    issued_by: str = Field(max_length=80)
    created_at: datetime = Field(sa_type=UTCDateTime)


class CertifiedKey(SQLModel, table=True):
    __tablename__ = "ca_certified_key"

    spki_sha256: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    subject: str = Field(max_length=300)  # "person:<id>", "enterprise:<id>", "service:<names>"
    created_at: datetime = Field(sa_type=UTCDateTime)


class Crl(SQLModel, table=True):
    """The current CRL of each authority (the number only grows)."""

    __tablename__ = "ca_crl"

    authority_id: uuid.UUID = Field(foreign_key="ca_authority.id", primary_key=True)
    number: int
    this_update: datetime = Field(sa_type=UTCDateTime)
    next_update: datetime = Field(sa_type=UTCDateTime)
    entries: int
    revision: int  # the authority's revision it reflects: revocations up to it are listed
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class OcspResponse(SQLModel, table=True):
    """The pre-signed answer (SHA-1 CertID, no nonce) for each certificate."""

    __tablename__ = "ca_ocsp_response"

    certificate_id: uuid.UUID = Field(foreign_key="ca_certificate.id", primary_key=True)
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    produced_at: datetime = Field(sa_type=UTCDateTime)
    next_update: datetime = Field(sa_type=UTCDateTime, index=True)


class DnsAllowance(SQLModel, table=True):
    __tablename__ = "ca_dns_allowance"
    __table_args__ = (
        Index(
            "uq_ca_dns_allowance_current",
            "pattern",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # "portal.gov.example" allows that name; "*.gov.example" allows any name below it.
    pattern: str = Field(max_length=253)
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(sa_type=UTCDateTime)
    removed_by: str | None = Field(default=None, max_length=80)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
