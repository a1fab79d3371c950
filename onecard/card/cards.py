"""The virtual card's life cycle (DESIGN.md §6): issue, suspend, resume, report lost, reissue,
close, and the look-ups the verifiers need.

::

    active ⇄ suspended          (an officer or the citizen; or the person's own suspension)
    active, suspended → lost    (reported lost: refused at once, only a reissue replaces it)
    active, lost → closed + a new active card   (reissue: new number, new reference)
    any but closed → closed     (final)

Every function takes the caller's session and audits in it, so a change and its event commit
together. The card row (and, where the person's status matters, the person row) is locked
before it is read for a change, so two workers changing one card take turns instead of both
acting on what they read. Locks are taken person first, then card, as in a person's status
change, so no two transactions can wait for each other. "One open card per person" is a partial unique index: two issues
racing for one person both insert, and the database refuses the second.

The person-driven changes at the end are called by :mod:`onecard.card.listener` inside the
person's own status change.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from onecard.card.actions import CardAction
from onecard.card.models import CARD_REFERENCE_BYTES, Card, CardStatus
from onecard.card.numbers import new_card_number
from onecard.core import clock
from onecard.core.audit import Actor, EventSpec, record, record_many
from onecard.core.db import violated_constraint
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from onecard.identity.models import Person, SubjectStatus

__all__ = [
    "CLOSED_CARDS_LISTED_FOR",
    "card_by_reference",
    "card_of_person",
    "close",
    "close_with_person",
    "get_card",
    "inactive_references",
    "issue_card",
    "reissue",
    "report_lost",
    "resume",
    "resume_with_person",
    "suspend",
    "suspend_with_person",
]

# A closed card stays on the trust list's suspended-card list this long: terminals refresh the
# list far more often, and a token minted before the close expires within a minute anyway.
CLOSED_CARDS_LISTED_FOR = timedelta(days=7)
# A clash of 11 random digits is rare (1 in 10^11 per card held) but must not fail an issue.
_NUMBER_ATTEMPTS = 5
_REASON_MAX = 500
# Why a card changed with its person (the audit event's "cause").
_PERSON_SUSPENDED = "person_suspended"
_PERSON_REINSTATED = "person_reinstated"
_PERSON_CLOSED = "person_closed"


# -- look-ups -------------------------------------------------------------------------------


def get_card(session: Session, card_id: uuid.UUID) -> Card:
    card = session.get(Card, card_id)
    if card is None:
        raise NotFound("no such card", code="card_not_found")
    return card


def card_of_person(session: Session, person_id: uuid.UUID) -> Card | None:
    """The person's card that is not closed (at most one), or ``None``."""
    return session.exec(
        select(Card).where(Card.person_id == person_id, Card.status != CardStatus.CLOSED)
    ).one_or_none()


def card_by_reference(session: Session, reference: bytes) -> Card | None:
    """The card a QR token's reference names (any status: the caller decides what it allows)."""
    return session.exec(select(Card).where(Card.reference == reference)).one_or_none()


def inactive_references(session: Session, *, now: datetime) -> list[bytes]:
    """References of suspended and lost cards, and of cards closed in the last 7 days, sorted:
    the suspended-card list of the trust list. Older closed cards drop out, so the list stays
    bounded by the cards that are suspended or lost now."""
    stmt = (
        select(Card.reference)
        .where(
            or_(
                Card.status.in_([CardStatus.SUSPENDED, CardStatus.LOST]),  # type: ignore[attr-defined]
                and_(
                    Card.status == CardStatus.CLOSED,
                    Card.closed_at >= now - CLOSED_CARDS_LISTED_FOR,  # type: ignore[operator]
                ),
            )
        )
        .order_by(Card.reference)
    )
    return list(session.exec(stmt))


# -- issue ----------------------------------------------------------------------------------


def issue_card(session: Session, person_id: uuid.UUID, *, actor: Actor) -> Card:
    """A new active card for an active person who holds no open card (409 ``card_exists``)."""
    _require_active(_lock_person(session, person_id))
    card = _insert_card(session, person_id, replaces=None)
    record(
        session,
        CardAction.CARD_ISSUE,
        actor=actor,
        subject=("card", str(card.id)),
        person_id=person_id,
    )
    return card


def _insert_card(session: Session, person_id: uuid.UUID, *, replaces: uuid.UUID | None) -> Card:
    for _ in range(_NUMBER_ATTEMPTS):
        now = clock.now()
        card = Card(
            person_id=person_id,
            number=new_card_number(),
            reference=secrets.token_bytes(CARD_REFERENCE_BYTES),
            created_at=now,
            status_changed_at=now,
            replaces_id=replaces,
        )
        try:
            with session.begin_nested():
                session.add(card)
                session.flush()
        except IntegrityError as exc:
            if "person" in violated_constraint(exc):
                raise Conflict("the person already holds a card", code="card_exists") from None
            continue  # the number (or, astronomically unlikely, the reference) is taken
        return card
    raise Conflict("no free card number was found; try again", code="card_number_exhausted")


# -- changes --------------------------------------------------------------------------------


def suspend(session: Session, card_id: uuid.UUID, *, actor: Actor, reason: str) -> Card:
    """Suspend an active card: verifiers refuse it until it is resumed."""
    card = _lock_card(session, card_id)
    _require_card_status(card, {CardStatus.ACTIVE}, "suspend")
    return _change(session, card, CardStatus.SUSPENDED, CardAction.CARD_SUSPEND, actor, reason)


def resume(
    session: Session, card_id: uuid.UUID, *, actor: Actor, reason: str | None = None
) -> Card:
    """Resume a suspended card; not while its person is suspended (a lost card is reissued)."""
    person, card = _lock_person_and_card(session, card_id)
    _require_card_status(card, {CardStatus.SUSPENDED}, "resume")
    _require_active(person)
    return _change(
        session, card, CardStatus.ACTIVE, CardAction.CARD_RESUME, actor, reason or "resumed"
    )


def report_lost(
    session: Session, card_id: uuid.UUID, *, actor: Actor, reason: str | None = None
) -> Card:
    """Mark the card lost: refused at once, and for good (a reissue replaces it)."""
    card = _lock_card(session, card_id)
    _require_card_status(card, {CardStatus.ACTIVE, CardStatus.SUSPENDED}, "report lost")
    return _change(
        session, card, CardStatus.LOST, CardAction.CARD_REPORT_LOST, actor, reason or "lost"
    )


def reissue(session: Session, card_id: uuid.UUID, *, actor: Actor, reason: str) -> Card:
    """Close the card and issue its successor (new number, new reference), in one transaction.

    An active or lost card can be reissued; a suspended one must be resumed first, so a
    reissue never lifts a suspension. The person must be active.
    """
    person, card = _lock_person_and_card(session, card_id)
    _require_card_status(card, {CardStatus.ACTIVE, CardStatus.LOST}, "reissue")
    _require_active(person)
    reason = _reason(reason)
    previous = card.status
    _set_status(card, CardStatus.CLOSED, f"reissued: {reason}")
    session.add(card)
    session.flush()  # the old card leaves the one-open-card index before the new one enters
    successor = _insert_card(session, card.person_id, replaces=card.id)
    record_many(
        session,
        [
            _event(
                CardAction.CARD_CLOSE,
                card,
                actor,
                {"from": previous, "to": "closed", "reason": reason, "replaced_by": successor.id},
            ),
            _event(
                CardAction.CARD_REISSUE, successor, actor, {"replaces": card.id, "reason": reason}
            ),
        ],
    )
    return successor


def close(session: Session, card_id: uuid.UUID, *, actor: Actor, reason: str) -> Card:
    """Close the card for good (any status but closed)."""
    card = _lock_card(session, card_id)
    _require_card_status(card, {CardStatus.ACTIVE, CardStatus.SUSPENDED, CardStatus.LOST}, "close")
    return _change(session, card, CardStatus.CLOSED, CardAction.CARD_CLOSE, actor, reason)


# -- changes that follow the person's status ------------------------------------------------


def suspend_with_person(
    session: Session, person_id: uuid.UUID, *, actor: Actor, reason: str
) -> Card | None:
    """Suspend the person's active card because the person was suspended; remembered, so
    :func:`resume_with_person` resumes this card and no card suspended for another reason."""
    card = _open_card_locked(session, person_id)
    if card is None or card.status != CardStatus.ACTIVE:
        return None
    return _change(
        session,
        card,
        CardStatus.SUSPENDED,
        CardAction.CARD_SUSPEND,
        actor,
        f"the person is suspended: {reason}",
        cause=_PERSON_SUSPENDED,
    )


def resume_with_person(session: Session, person_id: uuid.UUID, *, actor: Actor) -> Card | None:
    """Resume the person's card if it was suspended only because the person was."""
    card = _open_card_locked(session, person_id)
    if card is None or not card.suspended_with_person:
        return None
    return _change(
        session,
        card,
        CardStatus.ACTIVE,
        CardAction.CARD_RESUME,
        actor,
        "the person is reinstated",
        cause=_PERSON_REINSTATED,
    )


def close_with_person(
    session: Session, person_id: uuid.UUID, *, actor: Actor, reason: str
) -> Card | None:
    """Close the person's open card because the person's record was closed."""
    card = _open_card_locked(session, person_id)
    if card is None:
        return None
    return _change(
        session,
        card,
        CardStatus.CLOSED,
        CardAction.CARD_CLOSE,
        actor,
        f"the person is closed: {reason}",
        cause=_PERSON_CLOSED,
    )


# -- helpers --------------------------------------------------------------------------------


def _lock_card(session: Session, card_id: uuid.UUID) -> Card:
    # populate_existing: a copy the session already holds is refreshed under the lock.
    card = session.exec(
        select(Card)
        .where(Card.id == card_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if card is None:
        raise NotFound("no such card", code="card_not_found")
    return card


def _lock_person_and_card(session: Session, card_id: uuid.UUID) -> tuple[Person, Card]:
    # Person first, then card: the order of a person's status change, whose listener changes
    # the card, so two transactions never wait for each other in a circle.
    person_id = session.exec(select(Card.person_id).where(Card.id == card_id)).one_or_none()
    if person_id is None:
        raise NotFound("no such card", code="card_not_found")
    return _lock_person(session, person_id), _lock_card(session, card_id)


def _open_card_locked(session: Session, person_id: uuid.UUID) -> Card | None:
    return session.exec(
        select(Card)
        .where(Card.person_id == person_id, Card.status != CardStatus.CLOSED)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _lock_person(session: Session, person_id: uuid.UUID) -> Person:
    # Locked, so a suspension of the person committing meanwhile is either seen here or sees
    # the card this transaction makes active (its listener then suspends it).
    person = session.exec(
        select(Person)
        .where(Person.id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if person is None:
        raise NotFound("no such person", code="person_not_found")
    return person


def _require_active(person: Person) -> None:
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidState(f"the person is {person.status}", code="person_not_active")


def _require_card_status(card: Card, allowed: Collection[str], verb: str) -> None:
    if card.status not in allowed:
        raise InvalidState(
            f"cannot {verb} a card that is {card.status}", code="card_status_conflict"
        )


def _reason(reason: str) -> str:
    cleaned = reason.strip() if isinstance(reason, str) else ""
    if not cleaned:
        raise InvalidInput("a reason is required", code="reason_required")
    return cleaned[:_REASON_MAX]


def _set_status(card: Card, target: CardStatus, reason: str) -> None:
    now = clock.now()
    card.status, card.status_reason = target, reason[:_REASON_MAX]
    card.status_changed_at = now
    card.suspended_with_person = False
    if target == CardStatus.CLOSED:
        card.closed_at = now


def _change(
    session: Session,
    card: Card,
    target: CardStatus,
    action: CardAction,
    actor: Actor,
    reason: str,
    *,
    cause: str | None = None,
) -> Card:
    reason = _reason(reason)
    data: dict[str, Any] = {"from": card.status, "to": str(target), "reason": reason}
    if cause is not None:
        data["cause"] = cause
    _set_status(card, target, reason)
    card.suspended_with_person = cause == _PERSON_SUSPENDED
    session.add(card)
    record_many(session, [_event(action, card, actor, data)])
    return card


def _event(action: CardAction, card: Card, actor: Actor, data: dict[str, Any]) -> EventSpec:
    return EventSpec(action, actor, ("card", str(card.id)), card.person_id, data)
