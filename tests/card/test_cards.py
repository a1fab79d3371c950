"""The virtual card's life cycle (onecard.card.cards): transitions and their refusals, the audit
events written with them, the card following its person's status, the suspended-card list,
and two workers issuing a card to one person at once. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

import onecard.card.listener  # noqa: F401  (registers the card's identity status listener)
from onecard.card import cards
from onecard.card.actions import CardAction
from onecard.card.models import CARD_REFERENCE_BYTES, Card, CardStatus, LinkKind
from onecard.card.numbers import CARD_NUMBER_LENGTH, parse_card_number
from onecard.card.purpose import Purpose
from onecard.card.token import CARD_REFERENCE_LENGTH
from onecard.core.audit import Actor, AuditEvent
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound, OnecardError
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import Person
from onecard.identity.persons import change_status
from tests import factories

OFFICER = Actor.cli("card-officer")


def _raises(kind: type[OnecardError], code: str) -> pytest.RaisesExc[OnecardError]:
    return pytest.raises(kind, check=lambda exc: exc.code == code)


@pytest.fixture
def holder(db, sealer) -> uuid.UUID:
    """An active person without a card."""
    with db.session() as session:
        return factories.person(session, sealer).id


@pytest.fixture
def card(db, holder) -> Card:
    """An active card of ``holder``."""
    with db.session() as session:
        return cards.issue_card(session, holder, actor=OFFICER)


def _card_events(db, card_id: uuid.UUID) -> list[AuditEvent]:
    with db.session() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.subject_type == "card", AuditEvent.subject_id == str(card_id))
                .order_by(AuditEvent.seq)
            )
        )


def _person_card_events(db, person_id: uuid.UUID) -> int:
    with db.session() as session:
        return session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.person_id == person_id, AuditEvent.action.like("card:card:%"))
        ).one()


def _stored(db, card_id: uuid.UUID) -> Card:
    with db.session() as session:
        return session.get_one(Card, card_id)


def _person_status(db, person_id: uuid.UUID, change: StatusChange, reason: str) -> None:
    with db.session() as session:
        person = session.get_one(Person, person_id)
        change_status(session, person, change, actor=OFFICER, reason=reason)


# -- issue ----------------------------------------------------------------------------------


def test_issued_card_is_active_with_a_checked_number_and_a_random_reference(db, holder) -> None:
    with db.session() as session:
        card = cards.issue_card(session, holder, actor=OFFICER)
    assert card.status == CardStatus.ACTIVE
    assert card.person_id == holder
    assert len(card.number) == CARD_NUMBER_LENGTH
    assert parse_card_number(card.number) == card.number
    assert len(card.reference) == 16
    assert card.closed_at is None
    assert card.replaces_id is None
    [event] = _card_events(db, card.id)
    assert event.action == CardAction.CARD_ISSUE
    assert event.person_id == holder
    assert event.actor_kind == "cli"


def test_references_and_numbers_differ_from_card_to_card(db, sealer) -> None:
    issued = []
    with db.session() as session:
        for _ in range(20):
            person = factories.person(session, sealer)
            issued.append(cards.issue_card(session, person.id, actor=OFFICER))
    assert len({c.reference for c in issued}) == 20
    assert len({c.number for c in issued}) == 20


def test_a_second_card_for_the_same_person_is_a_conflict(db, card) -> None:
    with _raises(Conflict, "card_exists"), db.session() as session:
        cards.issue_card(session, card.person_id, actor=OFFICER)
    assert _person_card_events(db, card.person_id) == 1  # the refused issue left no event


def test_an_issue_refused_in_a_savepoint_leaves_the_transaction_usable(db, card) -> None:
    with db.session() as session:
        with _raises(Conflict, "card_exists"):
            cards.issue_card(session, card.person_id, actor=OFFICER)
        cards.suspend(session, card.id, actor=OFFICER, reason="checked after a refused issue")
    assert _stored(db, card.id).status == CardStatus.SUSPENDED


def test_only_an_active_person_gets_a_card(db, holder) -> None:
    _person_status(db, holder, StatusChange.SUSPEND, "identity under review")
    with _raises(InvalidState, "person_not_active"), db.session() as session:
        cards.issue_card(session, holder, actor=OFFICER)


def test_issuing_to_an_unknown_person_is_not_found(db) -> None:
    with _raises(NotFound, "person_not_found"), db.session() as session:
        cards.issue_card(session, uuid.uuid4(), actor=OFFICER)


def test_look_ups(db, card) -> None:
    with db.session() as session:
        assert cards.get_card(session, card.id).number == card.number
        assert cards.card_of_person(session, card.person_id).id == card.id
        assert cards.card_by_reference(session, card.reference).id == card.id
        assert cards.card_by_reference(session, b"\0" * 16) is None
        assert cards.card_of_person(session, uuid.uuid4()) is None
        with _raises(NotFound, "card_not_found"):
            cards.get_card(session, uuid.uuid4())


# -- suspend, resume, report lost -----------------------------------------------------------


def test_suspend_and_resume_are_audited_with_their_reasons(db, card) -> None:
    with db.session() as session:
        suspended = cards.suspend(session, card.id, actor=OFFICER, reason="  fraud check  ")
        assert suspended.status == CardStatus.SUSPENDED
        assert suspended.status_reason == "fraud check"
    with db.session() as session:
        resumed = cards.resume(session, card.id, actor=OFFICER, reason="cleared")
        assert resumed.status == CardStatus.ACTIVE
    events = _card_events(db, card.id)
    assert [e.action for e in events] == [
        CardAction.CARD_ISSUE,
        CardAction.CARD_SUSPEND,
        CardAction.CARD_RESUME,
    ]
    assert events[1].data_dict() == {"from": "active", "to": "suspended", "reason": "fraud check"}
    assert events[2].data_dict() == {"from": "suspended", "to": "active", "reason": "cleared"}


def test_status_changed_at_moves_with_every_change(db, card) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with use_clock(FrozenClock(later)), db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="moved")
    assert _stored(db, card.id).status_changed_at == later


@pytest.mark.parametrize("reason", ["", "   "])
def test_suspending_needs_a_reason(db, card, reason: str) -> None:
    with _raises(InvalidInput, "reason_required"), db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason=reason)
    assert _stored(db, card.id).status == CardStatus.ACTIVE


def test_only_an_active_card_is_suspended_and_only_a_suspended_one_resumed(db, card) -> None:
    with _raises(InvalidState, "card_status_conflict"), db.session() as session:
        cards.resume(session, card.id, actor=OFFICER)
    with db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="first")
    with _raises(InvalidState, "card_status_conflict"), db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="second")
    assert len(_card_events(db, card.id)) == 2  # issue and the one suspension


def test_changing_an_unknown_card_is_not_found(db) -> None:
    for change in (cards.suspend, cards.resume, cards.report_lost, cards.reissue, cards.close):
        with _raises(NotFound, "card_not_found"), db.session() as session:
            change(session, uuid.uuid4(), actor=OFFICER, reason="x")


def test_a_lost_card_is_refused_at_once_and_only_a_reissue_replaces_it(db, card) -> None:
    with db.session() as session:
        lost = cards.report_lost(session, card.id, actor=Actor.person(card.person_id))
        assert lost.status == CardStatus.LOST
        assert lost.status_reason == "lost"
    with _raises(InvalidState, "card_status_conflict"), db.session() as session:
        cards.resume(session, card.id, actor=OFFICER)
    with _raises(InvalidState, "card_status_conflict"), db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="again")
    with db.session() as session:
        successor = cards.reissue(session, card.id, actor=OFFICER, reason="lost on the metro")
    assert successor.status == CardStatus.ACTIVE
    [_, lost_event, *_] = _card_events(db, card.id)
    assert lost_event.action == CardAction.CARD_REPORT_LOST
    assert lost_event.actor_kind == "person"


def test_a_suspended_card_can_be_reported_lost(db, card) -> None:
    with db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="held")
        cards.report_lost(session, card.id, actor=OFFICER, reason="phone stolen")
    stored = _stored(db, card.id)
    assert (stored.status, stored.status_reason) == (CardStatus.LOST, "phone stolen")


# -- reissue and close ----------------------------------------------------------------------


def test_reissue_closes_the_card_and_makes_a_new_number_and_reference(db, card) -> None:
    with db.session() as session:
        successor = cards.reissue(session, card.id, actor=OFFICER, reason="worn out")
    old = _stored(db, card.id)
    assert old.status == CardStatus.CLOSED
    assert old.closed_at is not None
    assert old.status_reason == "reissued: worn out"
    assert successor.replaces_id == card.id
    assert successor.person_id == card.person_id
    assert successor.number != card.number
    assert successor.reference != card.reference
    with db.session() as session:
        assert cards.card_of_person(session, card.person_id).id == successor.id
    [*_, closing] = _card_events(db, card.id)
    assert closing.action == CardAction.CARD_CLOSE
    assert closing.data_dict()["replaced_by"] == str(successor.id)
    [reissued] = _card_events(db, successor.id)
    assert reissued.action == CardAction.CARD_REISSUE
    assert reissued.data_dict() == {"replaces": str(card.id), "reason": "worn out"}
    assert reissued.seq == closing.seq + 1  # one transaction, one append


def test_a_suspended_card_is_not_reissued_so_a_suspension_cannot_be_escaped(db, card) -> None:
    with db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="fraud check")
    with _raises(InvalidState, "card_status_conflict"), db.session() as session:
        cards.reissue(session, card.id, actor=Actor.person(card.person_id), reason="want new")
    with db.session() as session:
        held = session.exec(select(Card.id).where(Card.person_id == card.person_id)).all()
    assert held == [card.id]


def test_a_failed_reissue_leaves_the_old_card_open(db, card) -> None:
    with _raises(InvalidInput, "reason_required"), db.session() as session:
        cards.reissue(session, card.id, actor=OFFICER, reason=" ")
    assert _stored(db, card.id).status == CardStatus.ACTIVE
    assert len(_card_events(db, card.id)) == 1


def test_close_is_final_and_the_person_may_then_get_a_new_card(db, card) -> None:
    with db.session() as session:
        closed = cards.close(session, card.id, actor=OFFICER, reason="moved away")
        assert closed.closed_at is not None
    for change in (cards.suspend, cards.resume, cards.report_lost, cards.reissue, cards.close):
        with _raises(InvalidState, "card_status_conflict"), db.session() as session:
            change(session, card.id, actor=OFFICER, reason="after close")
    with db.session() as session:
        assert cards.card_of_person(session, card.person_id) is None
        fresh = cards.issue_card(session, card.person_id, actor=OFFICER)
    assert fresh.replaces_id is None
    assert fresh.status == CardStatus.ACTIVE


def test_a_change_and_its_event_roll_back_together(db, card) -> None:
    class Abort(Exception):
        pass

    def suspend_then_fail() -> None:
        with db.session() as session:
            cards.suspend(session, card.id, actor=OFFICER, reason="never committed")
            raise Abort

    with pytest.raises(Abort):
        suspend_then_fail()
    assert _stored(db, card.id).status == CardStatus.ACTIVE
    assert [e.action for e in _card_events(db, card.id)] == [CardAction.CARD_ISSUE]


# -- the card follows its person ------------------------------------------------------------


def test_suspending_the_person_suspends_the_card_and_reinstating_resumes_it(db, card) -> None:
    _person_status(db, card.person_id, StatusChange.SUSPEND, "identity under review")
    stored = _stored(db, card.id)
    assert stored.status == CardStatus.SUSPENDED
    assert stored.suspended_with_person
    assert stored.status_reason == "the person is suspended: identity under review"
    with _raises(InvalidState, "person_not_active"), db.session() as session:
        cards.resume(session, card.id, actor=OFFICER)

    _person_status(db, card.person_id, StatusChange.REINSTATE, "review done")
    stored = _stored(db, card.id)
    assert stored.status == CardStatus.ACTIVE
    assert not stored.suspended_with_person
    events = _card_events(db, card.id)
    assert [e.action for e in events[1:]] == [CardAction.CARD_SUSPEND, CardAction.CARD_RESUME]
    assert events[1].data_dict()["cause"] == "person_suspended"
    assert events[2].data_dict()["cause"] == "person_reinstated"


def test_a_card_suspended_by_an_officer_stays_suspended_when_the_person_returns(db, card) -> None:
    with db.session() as session:
        cards.suspend(session, card.id, actor=OFFICER, reason="fraud check")
    _person_status(db, card.person_id, StatusChange.SUSPEND, "identity under review")
    assert _stored(db, card.id).status_reason == "fraud check"  # untouched
    _person_status(db, card.person_id, StatusChange.REINSTATE, "review done")
    stored = _stored(db, card.id)
    assert (stored.status, stored.status_reason) == (CardStatus.SUSPENDED, "fraud check")


def test_a_lost_card_stays_lost_through_the_persons_suspension(db, card) -> None:
    with db.session() as session:
        cards.report_lost(session, card.id, actor=OFFICER)
    _person_status(db, card.person_id, StatusChange.SUSPEND, "review")
    _person_status(db, card.person_id, StatusChange.REINSTATE, "done")
    assert _stored(db, card.id).status == CardStatus.LOST


def test_a_card_suspended_with_its_person_and_then_reported_lost_stays_lost(db, card) -> None:
    _person_status(db, card.person_id, StatusChange.SUSPEND, "review")
    with db.session() as session:
        cards.report_lost(session, card.id, actor=Actor.person(card.person_id))
    _person_status(db, card.person_id, StatusChange.REINSTATE, "done")
    stored = _stored(db, card.id)
    assert (stored.status, stored.suspended_with_person) == (CardStatus.LOST, False)


def test_closing_the_person_closes_the_card(db, card) -> None:
    _person_status(db, card.person_id, StatusChange.CLOSE, "deceased")
    stored = _stored(db, card.id)
    assert stored.status == CardStatus.CLOSED
    assert stored.closed_at is not None
    [*_, closing] = _card_events(db, card.id)
    assert closing.data_dict()["cause"] == "person_closed"


def test_a_person_without_a_card_changes_status_as_before(db, holder) -> None:
    _person_status(db, holder, StatusChange.SUSPEND, "review")
    _person_status(db, holder, StatusChange.REINSTATE, "done")
    _person_status(db, holder, StatusChange.CLOSE, "left")
    assert _person_card_events(db, holder) == 0


# -- the suspended-card list ----------------------------------------------------------------


def test_inactive_references_list_suspended_lost_and_recently_closed_cards(db, sealer) -> None:
    start = datetime.now(UTC)
    clock = FrozenClock(start)
    with use_clock(clock), db.session() as session:
        made = {}
        for name in ("active", "suspended", "lost", "closed_long_ago", "closed_lately"):
            person = factories.person(session, sealer)
            made[name] = cards.issue_card(session, person.id, actor=OFFICER)
        cards.close(session, made["closed_long_ago"].id, actor=OFFICER, reason="old")
    clock.advance(timedelta(days=7, seconds=1))
    with use_clock(clock), db.session() as session:
        cards.suspend(session, made["suspended"].id, actor=OFFICER, reason="s")
        cards.report_lost(session, made["lost"].id, actor=OFFICER)
        cards.close(session, made["closed_lately"].id, actor=OFFICER, reason="c")
        listed = cards.inactive_references(session, now=clock.now())
    assert listed == sorted(listed)
    mine = {name: card.reference in listed for name, card in made.items()}
    assert mine == {
        "active": False,
        "suspended": True,
        "lost": True,
        "closed_long_ago": False,
        "closed_lately": True,
    }


# -- races ----------------------------------------------------------------------------------


def test_two_workers_issuing_to_one_person_at_once_make_exactly_one_card(db, holder) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def issue() -> None:
        barrier.wait()
        try:
            with db.session() as session:
                outcomes.append(cards.issue_card(session, holder, actor=OFFICER).id)
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=issue) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str).count("card_exists") == 1
    [winner] = [o for o in outcomes if isinstance(o, uuid.UUID)]
    with db.session() as session:
        assert [c.id for c in session.exec(select(Card).where(Card.person_id == holder))] == [
            winner
        ]
    assert _person_card_events(db, holder) == 1


def test_link_kinds_and_terminal_purposes_are_the_qr_purposes() -> None:
    assert {k.value for k in LinkKind} == {p.value for p in Purpose}


def test_the_card_reference_is_as_long_as_the_qr_token_expects() -> None:
    assert CARD_REFERENCE_BYTES == CARD_REFERENCE_LENGTH
