"""Terminals (service counters and transit gates) and the record of what they verified.

A terminal is registered by an administrator with a name, a location, an organisation and a
purpose (:class:`onecard.card.purpose.Purpose`). It authenticates as an OAuth client of its
own (client credentials with a secret, the ``card:verify`` scope), made with it in the same
transaction, so the access token it presents names the terminal and therefore what its answers
may disclose. Disabling a terminal disables its client too: its tokens stop working on every
worker at once (the token check reads the client's status). A terminal is disabled, never
deleted, so past verifications keep naming it.

Each online verification is recorded (:func:`onecard.card.online.record_verifications`) in ``card_verification``
and in the audit trail, both about the card's person, so a citizen can list who verified their
card (:func:`verifications_of`, newest first).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from onecard.card.actions import CardAction
from onecard.card.models import CardVerification, Terminal, TerminalStatus
from onecard.card.purpose import Purpose
from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import Forbidden, InvalidInput, NotFound
from onecard.core.pagination import Page, check_limit, decode_cursor, encode_cursor, paginate
from onecard.identity.oidc.clients import ClientSpec, create_client, set_status
from onecard.identity.oidc.models import Client, ClientStatus, GrantType

VERIFY_SCOPE = "card:verify"
_TEXT_MAX = 200


@dataclass(frozen=True)
class TerminalSpec:
    """A terminal's description, validated when made (:class:`InvalidInput` otherwise)."""

    name: str
    location: str
    organisation: str
    purpose: Purpose

    def __post_init__(self) -> None:
        for field in ("name", "location", "organisation"):
            value = getattr(self, field)
            cleaned = value.strip() if isinstance(value, str) else ""
            if not cleaned or len(cleaned) > _TEXT_MAX:
                raise InvalidInput(
                    f"the terminal's {field} must be 1 to {_TEXT_MAX} characters",
                    code=f"terminal_{field}_invalid",
                )
            object.__setattr__(self, field, cleaned)
        try:
            object.__setattr__(self, "purpose", Purpose(self.purpose))
        except ValueError:
            allowed = ", ".join(p.value for p in Purpose)
            raise InvalidInput(
                f"the purpose must be one of {allowed}", code="terminal_purpose_invalid"
            ) from None


@dataclass(frozen=True)
class NewTerminal:
    """A terminal just registered, with its client's credentials (the secret is shown once)."""

    terminal: Terminal
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class VerificationView:
    """One line of a citizen's "who verified my card" list."""

    id: uuid.UUID
    verified_at: datetime
    purpose: Purpose
    terminal_name: str
    location: str
    organisation: str


def create_terminal(session: Session, spec: TerminalSpec, *, actor: Actor) -> NewTerminal:
    """Register a terminal and the OAuth client it authenticates as."""
    client_spec = ClientSpec(
        name=f"terminal: {spec.name}",
        grant_types=(GrantType.CLIENT_CREDENTIALS,),
        scopes=(VERIFY_SCOPE,),
    )
    client, secret = create_client(session, client_spec, actor=actor)
    assert secret is not None  # client_secret_basic
    session.flush()  # the client's id, for the terminal's foreign key
    terminal = Terminal(
        name=spec.name,
        location=spec.location,
        organisation=spec.organisation,
        purpose=spec.purpose,
        client_id=client.id,
        created_at=clock.now(),
    )
    session.add(terminal)
    record(
        session,
        CardAction.TERMINAL_CREATE,
        actor=actor,
        subject=("card_terminal", str(terminal.id)),
        data={
            "name": spec.name,
            "location": spec.location,
            "organisation": spec.organisation,
            "purpose": str(spec.purpose),
            "client_id": client.client_id,
        },
    )
    return NewTerminal(terminal, client.client_id, secret)


def get_terminal(session: Session, terminal_id: uuid.UUID) -> Terminal:
    terminal = session.get(Terminal, terminal_id)
    if terminal is None:
        raise NotFound("no such terminal", code="terminal_not_found")
    return terminal


def list_terminals(session: Session, *, limit: int, cursor: str | None) -> Page[Terminal]:
    return paginate(session, select(Terminal), Terminal, limit=limit, cursor=cursor)


def client_ids(session: Session, terminals: Sequence[Terminal]) -> dict[uuid.UUID, str]:
    """The OAuth ``client_id`` each terminal authenticates with, keyed by the client's row id
    (one query for a whole page)."""
    ids = {terminal.client_id for terminal in terminals}
    if not ids:
        return {}
    rows = session.exec(select(Client.id, Client.client_id).where(Client.id.in_(ids)))  # type: ignore[attr-defined]
    return dict(rows.all())


def disable_terminal(session: Session, terminal_id: uuid.UUID, *, actor: Actor) -> Terminal:
    """Disable a terminal and its client for good; its verifications stay listed."""
    terminal = get_terminal(session, terminal_id)
    if terminal.status == TerminalStatus.DISABLED:
        return terminal
    terminal.status, terminal.disabled_at = TerminalStatus.DISABLED, clock.now()
    session.add(terminal)
    set_status(
        session, session.get_one(Client, terminal.client_id), ClientStatus.DISABLED, actor=actor
    )
    record(
        session,
        CardAction.TERMINAL_DISABLE,
        actor=actor,
        subject=("card_terminal", str(terminal.id)),
    )
    return terminal


def terminal_of_client(session: Session, client_id: str) -> Terminal:
    """The active terminal a client-credentials token belongs to; refused otherwise."""
    terminal = session.exec(
        select(Terminal)
        .join(Client, Client.id == Terminal.client_id)  # type: ignore[arg-type]
        .where(Client.client_id == client_id)
    ).one_or_none()
    if terminal is None:
        raise Forbidden("this client is not a registered terminal", code="not_a_terminal")
    if terminal.status != TerminalStatus.ACTIVE:
        raise Forbidden("this terminal is disabled", code="terminal_disabled")
    return terminal


def verifications_of(
    session: Session, person_id: uuid.UUID, *, limit: int, cursor: str | None = None
) -> Page[VerificationView]:
    """The person's verifications, newest first, a page at a time."""
    check_limit(limit)
    stmt = (
        select(CardVerification, Terminal)
        .join(Terminal, Terminal.id == CardVerification.terminal_id)  # type: ignore[arg-type]
        .where(CardVerification.person_id == person_id)
    )
    if cursor:
        at, row_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                CardVerification.verified_at < at,
                and_(CardVerification.verified_at == at, CardVerification.id < row_id),
            )
        )
    stmt = stmt.order_by(
        CardVerification.verified_at.desc(),  # type: ignore[attr-defined]
        CardVerification.id.desc(),  # type: ignore[attr-defined]
    ).limit(limit + 1)
    rows = list(session.exec(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][0]
        next_cursor = encode_cursor(last.verified_at, last.id)
    return Page([_view(v, t) for v, t in rows], next_cursor)


def _view(verification: CardVerification, terminal: Terminal) -> VerificationView:
    return VerificationView(
        id=verification.id,
        verified_at=verification.verified_at,
        purpose=Purpose(verification.purpose),
        terminal_name=terminal.name,
        location=terminal.location,
        organisation=terminal.organisation,
    )
