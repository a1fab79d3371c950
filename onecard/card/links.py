"""Linked cards: a person's social-security, transit and bank cards (DESIGN.md §3, §4, §6).

Linking validates the number for its kind (:mod:`onecard.core.validators`), then stores it
sealed (AES-256-GCM, associated data naming ``card_link``, ``number`` and the row), a blind
index (one purpose label per kind; a transit number is indexed together with its operator)
and a masked form. Only the masked form leaves this module: :func:`link`, :func:`unlink` and
:func:`links_of` return :class:`LinkedCardView`, which has no field for the number, and errors
carry the validator's code and a reason that never repeats the number. :func:`open_number`
opens the plain number for the online verifier's disclosure to a terminal whose purpose allows
it; its caller records that disclosure.

Rules:

- A bank card needs assurance level 2 (substantial): a financial account is linked only by
  someone whose identity was checked in person (or certificate-backed) with a second factor.
- One physical card belongs to one person while linked: a partial unique index on the blind
  index decides, so two people linking the same card at once cannot both succeed.
- A person links at most one social-security card and one transit card per operator, and any
  number of bank cards. Links belong to the person, so a reissue of the virtual card keeps them.
- The social-security number is the person's identity number, already sealed on ``person``;
  a social-security link stores only the card number printed on the card.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from onecard.card.actions import CardAction
from onecard.card.models import LinkedCard, LinkKind
from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import unique_or_conflict
from onecard.core.errors import Conflict, Forbidden, InvalidInput, InvalidState, NotFound
from onecard.core.masking import mask_bank_card_number, mask_transit_card_number
from onecard.core.sealing import Sealer
from onecard.core.validators import (
    InvalidNumber,
    parse_bank_card_number,
    parse_social_security_card_number,
    parse_transit_card_number,
)
from onecard.identity.models import AssuranceLevel, Person, SubjectStatus

__all__ = [
    "BANK_LINK_LEVEL",
    "LinkedCardView",
    "get_link",
    "link",
    "links_of",
    "open_number",
    "unlink",
]

BANK_LINK_LEVEL = AssuranceLevel.SUBSTANTIAL
_TABLE, _COLUMN = "card_link", "number"
_ISSUER_MAX = 100
_REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class LinkedCardView:
    """What may be shown of a linked card: never the number, only its masked form."""

    id: uuid.UUID
    person_id: uuid.UUID
    kind: LinkKind
    operator: str | None
    number_masked: str
    warning: str | None
    created_at: datetime
    unlinked_at: datetime | None = None

    @classmethod
    def of(cls, row: LinkedCard) -> LinkedCardView:
        return cls(
            id=row.id,
            person_id=row.person_id,
            kind=LinkKind(row.kind),
            operator=row.operator,
            number_masked=row.number_masked,
            warning=row.warning,
            created_at=row.created_at,
            unlinked_at=row.unlinked_at,
        )


@dataclass(frozen=True, slots=True)
class _Number:
    """A validated number and the forms it is stored in."""

    value: str  # sealed
    indexed: str  # blind-indexed: the same physical card always gives the same text
    operator: str | None
    masked: str
    warning: str | None

    def __repr__(self) -> str:
        return f"_Number(masked={self.masked!r}, operator={self.operator!r})"


def link(
    session: Session,
    sealer: Sealer,
    person_id: uuid.UUID,
    kind: LinkKind | str,
    number: str,
    *,
    operator: str | None = None,
    actor: Actor,
    level: AssuranceLevel | int,
) -> LinkedCardView:
    """Link a card to an active person; ``level`` is the assurance level of the request.

    Errors: :class:`InvalidInput` with the validator's code (``bank_card_number_luhn``, …),
    ``link_kind_invalid`` or ``operator_not_allowed``; :class:`Forbidden`
    ``assurance_level_too_low`` (a bank card below level 2); :class:`NotFound`
    ``person_not_found``; :class:`InvalidState` ``person_not_active``; :class:`Conflict`
    ``card_already_linked`` (this physical card is linked, to anyone) or ``link_kind_taken``
    (the person already links a card of this kind, or of this transit operator).
    """
    kind = _kind(kind)
    if kind == LinkKind.BANK and int(level) < BANK_LINK_LEVEL:
        raise Forbidden(
            f"linking a bank card needs assurance level {int(BANK_LINK_LEVEL)}",
            code="assurance_level_too_low",
        )
    _require_active(session, person_id)
    parsed = _parse(kind, number, operator)
    row_id = uuid.uuid4()
    row = LinkedCard(
        id=row_id,
        person_id=person_id,
        kind=kind,
        operator=parsed.operator,
        number_sealed=sealer.seal(parsed.value, table=_TABLE, column=_COLUMN, row_id=row_id),
        number_index=sealer.blind_index(parsed.indexed, purpose=f"{_TABLE}.{kind}"),
        number_masked=parsed.masked,
        warning=parsed.warning,
        created_at=clock.now(),
    )
    with unique_or_conflict(session, _link_conflict):
        session.add(row)
    record(
        session,
        CardAction.LINK_CREATE,
        actor=actor,
        subject=("card_link", str(row.id)),
        person_id=person_id,
        data={
            "kind": str(kind),
            "operator": parsed.operator,
            "number": parsed.masked,
            "warning": parsed.warning,
        },
    )
    return LinkedCardView.of(row)


def unlink(
    session: Session,
    link_id: uuid.UUID,
    *,
    actor: Actor,
    reason: str,
    person_id: uuid.UUID | None = None,
) -> LinkedCardView:
    """Remove a link (kept as history); with ``person_id``, only a link of that person.

    Errors: :class:`InvalidInput` ``reason_required``; :class:`NotFound` ``link_not_found``
    (also for another person's link, so its existence does not show);
    :class:`InvalidState` ``link_already_removed``.
    """
    cleaned = reason.strip()[:_REASON_MAX] if isinstance(reason, str) else ""
    if not cleaned:
        raise InvalidInput("a reason is required", code="reason_required")
    row = session.exec(
        select(LinkedCard)
        .where(LinkedCard.id == link_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None or (person_id is not None and row.person_id != person_id):
        raise NotFound("no such linked card", code="link_not_found")
    if row.unlinked_at is not None:
        raise InvalidState("the card is already unlinked", code="link_already_removed")
    row.unlinked_at, row.unlinked_reason = clock.now(), cleaned
    session.add(row)
    record(
        session,
        CardAction.LINK_REMOVE,
        actor=actor,
        subject=("card_link", str(row.id)),
        person_id=row.person_id,
        data={"kind": row.kind, "number": row.number_masked, "reason": cleaned},
    )
    return LinkedCardView.of(row)


def links_of(session: Session, person_id: uuid.UUID) -> list[LinkedCardView]:
    """The person's current links, oldest first, masked."""
    rows = session.exec(
        select(LinkedCard)
        .where(LinkedCard.person_id == person_id, LinkedCard.unlinked_at.is_(None))  # type: ignore[union-attr]
        .order_by(LinkedCard.created_at, LinkedCard.id)
    )
    return [LinkedCardView.of(row) for row in rows]


def get_link(session: Session, link_id: uuid.UUID) -> LinkedCard:
    """The link's row (current or removed), for code that must open its number."""
    row = session.get(LinkedCard, link_id)
    if row is None:
        raise NotFound("no such linked card", code="link_not_found")
    return row


def open_number(sealer: Sealer, row: LinkedCard) -> str:
    """The plain number, for the online verifier's disclosure only (a terminal whose purpose
    allows it, with the citizen's consent). The caller audits the disclosure; the number must
    not be logged or put in an error."""
    return sealer.open_text(row.number_sealed, table=_TABLE, column=_COLUMN, row_id=row.id)


# -- helpers --------------------------------------------------------------------------------


def _kind(kind: LinkKind | str) -> LinkKind:
    try:
        return LinkKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in LinkKind)
        raise InvalidInput(
            f"the kind of card must be one of {allowed}", code="link_kind_invalid"
        ) from None


def _require_active(session: Session, person_id: uuid.UUID) -> None:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound("no such person", code="person_not_found")
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidState(f"the person is {person.status}", code="person_not_active")


def _parse(kind: LinkKind, number: str, operator: str | None) -> _Number:
    try:
        if kind == LinkKind.BANK:
            return _bank(number, operator)
        if kind == LinkKind.TRANSIT:
            return _transit(number, operator)
        return _social_security(number, operator)
    except InvalidNumber as exc:
        raise InvalidInput(exc.reason, code=exc.code) from None


def _bank(number: str, issuer: str | None) -> _Number:
    pan = parse_bank_card_number(number)
    issuer = issuer.strip() if issuer is not None else None
    if issuer is not None and len(issuer) > _ISSUER_MAX:
        raise InvalidInput(
            f"the bank's name has at most {_ISSUER_MAX} characters", code="bank_issuer_length"
        )
    return _Number(
        value=pan.value,
        indexed=pan.value,
        operator=issuer or None,
        masked=mask_bank_card_number(pan.value),
        warning=pan.warning,
    )


def _transit(number: str, operator: str | None) -> _Number:
    # No operator is the validator's own "transit_card_operator" refusal.
    card = parse_transit_card_number(number, operator or "")
    return _Number(
        value=card.value,
        # Operators number their cards independently: the same digits from two operators are
        # two physical cards.
        indexed=f"{card.operator}:{card.value}",
        operator=card.operator,
        masked=mask_transit_card_number(card.value),
        warning=None,
    )


def _social_security(number: str, operator: str | None) -> _Number:
    if operator is not None:
        raise InvalidInput("a social-security card has no operator", code="operator_not_allowed")
    card = parse_social_security_card_number(number)
    return _Number(
        value=card.value,
        indexed=card.value,
        operator=None,
        # No conventional mask exists for this number: the last four, as on transit cards.
        masked=mask_transit_card_number(card.value),
        warning=None,
    )


def _link_conflict(constraint: str) -> Conflict:
    # PostgreSQL names the index; SQLite names its columns ("card_link.kind,
    # card_link.number_index"). Either way only the number's index mentions number_index.
    if "number_index" in constraint:
        return Conflict("this card is already linked to an account", code="card_already_linked")
    return Conflict(
        "a card of this kind (or of this transit operator) is already linked; unlink it first",
        code="link_kind_taken",
    )
