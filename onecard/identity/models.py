"""Tables of the identity package.

Sealed fields (``*_sealed``) exist only on these table models, never on the response schemas in
``onecard.api``, so a response cannot leak them. Personal numbers are stored three ways: sealed
(AES-256-GCM, associated data = table, column, row), a blind index for equality look-ups and
uniqueness, and the masked form shown to people.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import IntEnum, StrEnum

from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, text
from sqlmodel import Field, SQLModel

from onecard.core import clock
from onecard.core.db import UTCDateTime


class AssuranceLevel(IntEnum):
    """eIDAS-aligned levels, exposed as ``urn:onecard:loa:N``."""

    LOW = 1  # self-registered
    SUBSTANTIAL = 2  # identity checked in person (or certificate-backed) and a second factor
    HIGH = 3

    @property
    def acr(self) -> str:
        return f"urn:onecard:loa:{self.value}"


class SubjectStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class StaffRoleName(StrEnum):
    ADMIN = "admin"
    REGISTRAR = "registrar"
    CA_OFFICER = "ca_officer"
    CARD_OFFICER = "card_officer"
    AUDITOR = "auditor"


class RegisteredBy(StrEnum):
    SELF = "self"
    REGISTRAR = "registrar"
    IMPORT = "import"
    BOOTSTRAP = "bootstrap"


def _uuid_pk() -> uuid.UUID:
    return Field(default_factory=uuid.uuid4, primary_key=True)  # type: ignore[return-value]


def _now_column() -> datetime:
    return Field(default_factory=clock.now, sa_type=UTCDateTime)  # type: ignore[return-value]


class Person(SQLModel, table=True):
    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint("assurance_level BETWEEN 1 AND 3", name="assurance_level"),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
    )

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=100)
    identity_number_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    identity_number_index: bytes = Field(
        sa_column=Column(LargeBinary(32), nullable=False, unique=True)
    )
    identity_number_masked: str = Field(max_length=18)
    birth_date: date
    sex: str = Field(max_length=8)
    phone: str | None = Field(default=None, max_length=20, unique=True)
    email: str | None = Field(default=None, max_length=254, unique=True)
    assurance_level: int = Field(default=AssuranceLevel.LOW)
    status: str = Field(default=SubjectStatus.ACTIVE, max_length=16, index=True)
    status_reason: str | None = Field(default=None, max_length=500)
    registered_by: str = Field(max_length=16)
    # External reference from an imported system (unique per source): makes imports idempotent.
    external_ref: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = _now_column()
    updated_at: datetime = _now_column()

    @property
    def level(self) -> AssuranceLevel:
        return AssuranceLevel(self.assurance_level)


class Enterprise(SQLModel, table=True):
    __tablename__ = "enterprise"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
    )

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=200)
    # The unified social credit code is public register data (GB 32100), not sealed.
    credit_code: str = Field(max_length=18, unique=True)
    legal_representative_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    status: str = Field(default=SubjectStatus.ACTIVE, max_length=16)
    status_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _now_column()
    updated_at: datetime = _now_column()


class EnterpriseRoleGrant(SQLModel, table=True):
    """A role a person holds in an enterprise (``admin``, ``agent`` or a named service role)."""

    __tablename__ = "enterprise_role_grant"
    __table_args__ = (
        Index(
            "uq_enterprise_role_grant_current",
            "enterprise_id",
            "person_id",
            "role",
            unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )

    id: uuid.UUID = _uuid_pk()
    enterprise_id: uuid.UUID = Field(foreign_key="enterprise.id", index=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    role: str = Field(max_length=64)
    valid_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    granted_by: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    granted_at: datetime = _now_column()
    withdrawn_by: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_current(self, at: datetime) -> bool:
        return (
            self.withdrawn_at is None
            and (self.valid_from is None or self.valid_from <= at)
            and (self.valid_until is None or at < self.valid_until)
        )


class StaffRole(SQLModel, table=True):
    __tablename__ = "staff_role"
    __table_args__ = (
        Index(
            "uq_staff_role_current",
            "person_id",
            "role",
            unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )

    id: uuid.UUID = _uuid_pk()
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    role: str = Field(max_length=32)
    granted_by: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    granted_at: datetime = _now_column()
    withdrawn_by: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasswordCredential(SQLModel, table=True):
    __tablename__ = "password_credential"

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    hash: str = Field(max_length=255, repr=False)
    changed_at: datetime = _now_column()


class TotpCredential(SQLModel, table=True):
    __tablename__ = "totp_credential"

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The last accepted 30-second step: a code for this step or an earlier one is refused.
    last_used_step: int = 0
    created_at: datetime = _now_column()


class RecoveryCode(SQLModel, table=True):
    __tablename__ = "recovery_code"

    id: uuid.UUID = _uuid_pk()
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    # HMAC-SHA256 under a key derived from the master key: a stolen database alone does not
    # allow guessing codes offline.
    code_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _now_column()


class ApiToken(SQLModel, table=True):
    """Interim bearer tokens (administrator tokens from the CLI, sign-in tokens, the one-time
    bootstrap token) until the OpenID Connect provider issues access tokens. Stored hashed."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("kind IN ('admin', 'sign_in', 'bootstrap')", name="kind"),)

    id: uuid.UUID = _uuid_pk()
    token_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    kind: str = Field(max_length=16)
    person_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    created_at: datetime = _now_column()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
