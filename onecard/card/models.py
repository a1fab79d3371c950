"""Tables of the one-card (DESIGN.md §6).

- ``card``: the citizen's virtual card: its number (with a Luhn check digit, see
  :mod:`onecard.card.numbers`), its pseudonymous ``reference`` (16 random bytes, the only thing
  a QR token says about the card; never derived from identity data) and its status. A reissue
  closes the old card and makes a new one that names it in ``replaces_id``; a person holds at
  most one card that is not closed (a partial unique index decides under races).
- ``card_link``: the social-security, transit and bank cards a person linked. Links belong to
  the person, not to one virtual card, so they survive a reissue. The number is stored three
  ways, like the identity number: sealed (associated data = table, column, row), a blind index
  (one purpose label per kind; a transit number is indexed with its operator, since operators
  may issue the same digits) and masked for display. While linked, one physical card belongs
  to one person only (a partial unique index decides). The social-security *number* is the
  person's identity number and is not stored again: a social-security link holds only the card
  number printed on the card.
- ``card_terminal``: a service counter or gate that verifies QR tokens, the OAuth client it
  authenticates as (client credentials), and the purpose its answers are cut to.
- ``card_verification``: each online verification, so a citizen can list who verified their
  card.
- ``card_trust_list``: the trust list as published, one row that every worker serves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, Text, text
from sqlmodel import Field, SQLModel

from onecard.core.db import UTCDateTime

# The purposes a terminal serves and the kinds of linked card are the same three words. The
# QR token's purpose claim (onecard.card.purpose) uses them too.
_PURPOSES = "('transit', 'social_security', 'bank')"
CARD_REFERENCE_BYTES = 16


class CardStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # by an officer, the citizen, or because the person is suspended
    LOST = "lost"  # reported lost: refused at once; only a reissue replaces it
    CLOSED = "closed"  # final


class LinkKind(StrEnum):
    SOCIAL_SECURITY = "social_security"
    TRANSIT = "transit"
    BANK = "bank"


class TerminalStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Card(SQLModel, table=True):
    __tablename__ = "card"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'lost', 'closed')", name="status"),
        CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL)", name="closed_at"),
        CheckConstraint("NOT suspended_with_person OR status = 'suspended'", name="with_person"),
        # One card per person at a time; closed cards stay as history.
        Index(
            "uq_card_person_open",
            "person_id",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
        # The trust list's suspended-card list: suspended, lost and recently closed cards.
        Index("ix_card_status_closed_at", "status", "closed_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id")
    number: str = Field(max_length=16, unique=True)
    reference: bytes = Field(
        sa_column=Column(LargeBinary(CARD_REFERENCE_BYTES), nullable=False, unique=True)
    )
    status: str = Field(default=CardStatus.ACTIVE, max_length=16)
    status_reason: str | None = Field(default=None, max_length=500)
    # Set when the card was suspended only because its person was: reinstating the person
    # resumes it, while a card an officer suspended stays suspended.
    suspended_with_person: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime)
    # Bumped by every status change: caches of the suspended-card list key on its maximum.
    status_changed_at: datetime = Field(sa_type=UTCDateTime, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    replaces_id: uuid.UUID | None = Field(default=None, foreign_key="card.id")


class LinkedCard(SQLModel, table=True):
    __tablename__ = "card_link"
    __table_args__ = (
        CheckConstraint(f"kind IN {_PURPOSES}", name="kind"),
        # Transit numbers are scoped by their operator; a social-security card has none; a
        # bank card may name its issuer.
        CheckConstraint(
            "(kind = 'transit' AND operator IS NOT NULL)"
            " OR (kind = 'social_security' AND operator IS NULL)"
            " OR kind = 'bank'",
            name="operator",
        ),
        CheckConstraint(
            "(unlinked_at IS NULL) = (unlinked_reason IS NULL)", name="unlinked_reason"
        ),
        # One physical card, one person: the database decides, not a check before the insert.
        Index(
            "uq_card_link_number_index",
            "kind",
            "number_index",
            unique=True,
            sqlite_where=text("unlinked_at IS NULL"),
            postgresql_where=text("unlinked_at IS NULL"),
        ),
        # A person has one social-security card, and one transit card per operator; several
        # bank cards are allowed (salary, pension and savings accounts are often different).
        Index(
            "uq_card_link_person_social_security",
            "person_id",
            unique=True,
            sqlite_where=text("kind = 'social_security' AND unlinked_at IS NULL"),
            postgresql_where=text("kind = 'social_security' AND unlinked_at IS NULL"),
        ),
        Index(
            "uq_card_link_person_transit_operator",
            "person_id",
            "operator",
            unique=True,
            sqlite_where=text("kind = 'transit' AND unlinked_at IS NULL"),
            postgresql_where=text("kind = 'transit' AND unlinked_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    kind: str = Field(max_length=16)
    operator: str | None = Field(default=None, max_length=100)
    number_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    number_index: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False), repr=False)
    number_masked: str = Field(max_length=32)
    # Why a number was accepted despite a failed check ("unionpay_without_luhn", DESIGN §4).
    warning: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    unlinked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    unlinked_reason: str | None = Field(default=None, max_length=500)


class Terminal(SQLModel, table=True):
    __tablename__ = "card_terminal"
    __table_args__ = (
        CheckConstraint(f"purpose IN {_PURPOSES}", name="purpose"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint("(status = 'disabled') = (disabled_at IS NOT NULL)", name="disabled_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    location: str = Field(max_length=200)
    organisation: str = Field(max_length=200)
    purpose: str = Field(max_length=16)
    # The OAuth client (client_credentials) the terminal authenticates as; one terminal per
    # client, so the access token's client names the terminal and its purpose.
    client_id: uuid.UUID = Field(foreign_key="oidc_client.id", unique=True)
    status: str = Field(default=TerminalStatus.ACTIVE, max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CardVerification(SQLModel, table=True):
    __tablename__ = "card_verification"
    __table_args__ = (
        CheckConstraint(f"purpose IN {_PURPOSES}", name="purpose"),
        # "Who verified my card": a person's verifications, newest first.
        Index("ix_card_verification_person", "person_id", "verified_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    card_id: uuid.UUID = Field(foreign_key="card.id", index=True)
    # Copied from the card: the list survives a reissue and needs no join.
    person_id: uuid.UUID = Field(foreign_key="person.id")
    terminal_id: uuid.UUID = Field(foreign_key="card_terminal.id", index=True)
    purpose: str = Field(max_length=16)
    verified_at: datetime = Field(sa_type=UTCDateTime)


class PublishedTrustList(SQLModel, table=True):
    """The trust list as published (``GET /v1/cards/trust-list``): one row, so that every
    worker serves the same signed bytes, and a terminal's ``If-None-Match`` holds whichever
    worker answers (see :class:`onecard.card.online.TrustListPublisher`)."""

    __tablename__ = "card_trust_list"

    name: str = Field(primary_key=True, max_length=16)
    # SHA-256 of everything the list says but its times: a change of keys or of inactive
    # cards changes it, and the list is signed again.
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    jws: str = Field(sa_column=Column(Text, nullable=False))
    issued_at: datetime = Field(sa_type=UTCDateTime)
    next_update: datetime = Field(sa_type=UTCDateTime)
