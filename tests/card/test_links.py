"""Linked cards (onecard.card.links): validation per kind with the validators' codes, the bank
card's assurance level, sealing and blind indexes, masking everywhere a number could show, the
uniqueness rules, unlinking, and two people linking one bank card at once. Runs on SQLite and
on PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func
from sqlmodel import select

from onecard.card import cards, links
from onecard.card.actions import CardAction
from onecard.card.models import LinkedCard, LinkKind
from onecard.card.numbers import luhn_check_digit
from onecard.core.audit import Actor, AuditEvent
from onecard.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidState,
    NotFound,
    OnecardError,
)
from onecard.core.sealing import SealedValueError
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import AssuranceLevel, Person
from onecard.identity.persons import change_status
from tests import factories

OFFICER = Actor.cli("card-officer")
# Luhn-valid PANs; 6222021234567890 is a UnionPay number whose last digit fails Luhn.
VISA = "4111111111111111"
UNIONPAY_WITHOUT_LUHN = "6222021234567890"
TRANSIT = "31042400123456"
SOCIAL_SECURITY = "a12345678"


def _raises(kind: type[OnecardError], code: str) -> pytest.RaisesExc[OnecardError]:
    return pytest.raises(kind, check=lambda exc: exc.code == code)


def _bank_number() -> str:
    """A random Luhn-valid 16-digit PAN (Visa test range), unique per call in practice."""
    body = "4" + str(uuid.uuid4().int)[:14]
    return body + luhn_check_digit(body)


def _digits(count: int) -> str:
    return str(uuid.uuid4().int)[:count]


@pytest.fixture
def new_person(db, sealer):
    """``new_person(level=2)`` -> the id of a new active person."""

    def make(level: int = 2) -> uuid.UUID:
        with db.session() as session:
            return factories.person(session, sealer, level=AssuranceLevel(level)).id

    return make


@pytest.fixture
def do_link(db, sealer):
    """``do_link(person_id, kind, number, operator=None, level=2)`` in its own transaction."""

    def run(
        person_id: uuid.UUID,
        kind: str,
        number: str,
        *,
        operator: str | None = None,
        level: int = 2,
    ) -> links.LinkedCardView:
        with db.session() as session:
            return links.link(
                session,
                sealer,
                person_id,
                kind,
                number,
                operator=operator,
                actor=Actor.person(person_id),
                level=level,
            )

    return run


def _row(db, link_id: uuid.UUID) -> LinkedCard:
    with db.session() as session:
        return session.get_one(LinkedCard, link_id)


def _link_events(db, person_id: uuid.UUID) -> list[AuditEvent]:
    with db.session() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.person_id == person_id, AuditEvent.action.like("card:link:%"))
                .order_by(AuditEvent.seq)
            )
        )


# -- bank cards -----------------------------------------------------------------------------


def test_a_bank_card_is_sealed_indexed_and_masked(db, sealer, new_person, do_link) -> None:
    holder = new_person()
    number = _bank_number()
    view = do_link(holder, "bank", f"{number[:4]} {number[4:8]}-{number[8:]}")
    assert view.kind == LinkKind.BANK
    assert view.number_masked == f"{number[:4]} **** **** {number[-4:]}"
    assert view.warning is None
    row = _row(db, view.id)
    assert number.encode() not in row.number_sealed
    assert links.open_number(sealer, row) == number  # separators removed before sealing
    assert row.number_index == sealer.blind_index(number, purpose="card_link.bank")
    [event] = _link_events(db, holder)
    assert event.action == CardAction.LINK_CREATE
    assert event.data_dict() == {
        "kind": "bank",
        "operator": None,
        "number": view.number_masked,
        "warning": None,
    }


def test_a_sealed_number_opens_only_in_its_own_row(db, sealer, new_person, do_link) -> None:
    view = do_link(new_person(), "bank", _bank_number())
    row = _row(db, view.id)
    moved = LinkedCard(**{**row.model_dump(), "id": uuid.uuid4()})
    with pytest.raises(SealedValueError):
        links.open_number(sealer, moved)


def test_a_unionpay_card_failing_luhn_is_linked_with_a_warning(db, new_person, do_link) -> None:
    holder = new_person()
    view = do_link(holder, "bank", UNIONPAY_WITHOUT_LUHN)
    assert view.warning == "unionpay_without_luhn"
    assert _row(db, view.id).warning == "unionpay_without_luhn"
    [event] = _link_events(db, holder)
    assert event.data_dict()["warning"] == "unionpay_without_luhn"


def test_another_pan_failing_luhn_is_refused_with_the_validators_code(new_person, do_link) -> None:
    with _raises(InvalidInput, "bank_card_number_luhn") as info:
        do_link(new_person(), "bank", "4111111111111112")
    assert "4111111111111112" not in str(info.value)
    assert "4111111111111112" not in info.value.detail


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4111 1111 1111 111", "bank_card_number_length"),
        ("4111x11111111111", "bank_card_number_character"),
    ],
)
def test_malformed_pans_are_invalid_input(new_person, do_link, number: str, code: str) -> None:
    with _raises(InvalidInput, code):
        do_link(new_person(), "bank", number)


@pytest.mark.parametrize("level", [AssuranceLevel.LOW, 1])
def test_a_bank_card_needs_assurance_level_2(db, new_person, do_link, level: int) -> None:
    holder = new_person(level=1)
    with _raises(Forbidden, "assurance_level_too_low"):
        do_link(holder, "bank", VISA, level=level)
    assert _link_events(db, holder) == []


def test_other_cards_need_no_higher_level(new_person, do_link) -> None:
    holder = new_person(level=1)
    assert do_link(holder, "transit", _digits(12), operator="tunion", level=1)
    assert do_link(holder, "social_security", _digits(10), level=1)


def test_a_person_may_link_several_bank_cards_but_each_card_once(new_person, do_link) -> None:
    holder = new_person()
    first, second = _bank_number(), _bank_number()
    do_link(holder, "bank", first)
    do_link(holder, "bank", second, operator="中国工商银行")
    with _raises(Conflict, "card_already_linked"):
        do_link(holder, "bank", first)


def test_the_bank_may_be_named(db, new_person, do_link) -> None:
    view = do_link(new_person(), "bank", _bank_number(), operator="  中国银行 ")
    assert view.operator == "中国银行"
    with _raises(InvalidInput, "bank_issuer_length"):
        do_link(new_person(), "bank", _bank_number(), operator="银" * 101)


# -- transit cards --------------------------------------------------------------------------


def test_a_transit_card_is_scoped_by_its_operator(db, sealer, new_person, do_link) -> None:
    number = _digits(14)
    alice, bob = new_person(), new_person()
    view = do_link(alice, "transit", number, operator="T-Union")
    assert (view.operator, view.number_masked) == ("t-union", "*" * 10 + number[-4:])
    row = _row(db, view.id)
    assert row.number_index == sealer.blind_index(f"t-union:{number}", purpose="card_link.transit")
    assert links.open_number(sealer, row) == number  # the operator is not sealed with it
    # The same digits from another operator are another physical card.
    assert do_link(bob, "transit", number, operator="city-metro")
    with _raises(Conflict, "card_already_linked"):
        do_link(bob, "transit", number, operator="t-union")


def test_one_transit_card_per_operator_per_person(new_person, do_link) -> None:
    holder = new_person()
    do_link(holder, "transit", _digits(12), operator="tunion")
    do_link(holder, "transit", _digits(12), operator="city-metro")
    with _raises(Conflict, "link_kind_taken"):
        do_link(holder, "transit", _digits(12), operator="tunion")


@pytest.mark.parametrize(
    ("number", "operator", "code"),
    [
        (TRANSIT, None, "transit_card_operator"),
        (TRANSIT, "city metro", "transit_card_operator"),
        ("1234567", "tunion", "transit_card_number_length"),
        ("1234567A", "tunion", "transit_card_number_character"),
    ],
)
def test_malformed_transit_cards_are_invalid_input(
    new_person, do_link, number: str, operator: str | None, code: str
) -> None:
    with _raises(InvalidInput, code):
        do_link(new_person(), "transit", number, operator=operator)


# -- social-security cards ------------------------------------------------------------------


def test_a_social_security_link_stores_only_the_card_number(
    db, sealer, new_person, do_link
) -> None:
    holder = new_person()
    number = "a" + _digits(8)
    view = do_link(holder, "social_security", f" {number[:3]} {number[3:]} ")
    assert view.operator is None
    assert view.number_masked == "*****" + number[-4:]
    row = _row(db, view.id)
    assert links.open_number(sealer, row) == number.upper()
    # The social-security number is the identity number, sealed once, on the person.
    with db.session() as session:
        person = session.get_one(Person, holder)
        identity = sealer.open_text(
            person.identity_number_sealed, table="person", column="identity_number", row_id=holder
        )
    assert identity not in links.open_number(sealer, row)


def test_one_social_security_card_per_person(new_person, do_link) -> None:
    holder = new_person()
    do_link(holder, "social_security", _digits(10))
    with _raises(Conflict, "link_kind_taken"):
        do_link(holder, "social_security", _digits(10))


def test_a_social_security_card_has_no_operator(new_person, do_link) -> None:
    with _raises(InvalidInput, "operator_not_allowed"):
        do_link(new_person(), "social_security", SOCIAL_SECURITY, operator="hrss")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("12345678", "social_security_card_number_length"),
        ("A1234-5678", "social_security_card_number_character"),
    ],
)
def test_malformed_social_security_cards_are_invalid_input(
    new_person, do_link, number: str, code: str
) -> None:
    with _raises(InvalidInput, code):
        do_link(new_person(), "social_security", number)


# -- who may link ---------------------------------------------------------------------------


def test_an_unknown_kind_is_invalid_input(new_person, do_link) -> None:
    with _raises(InvalidInput, "link_kind_invalid"):
        do_link(new_person(), "library", "12345678")


def test_only_an_active_person_links_cards(db, new_person, do_link) -> None:
    holder = new_person()
    with db.session() as session:
        person = session.get_one(Person, holder)
        change_status(session, person, StatusChange.SUSPEND, actor=OFFICER, reason="review")
    with _raises(InvalidState, "person_not_active"):
        do_link(holder, "transit", TRANSIT, operator="tunion")
    with _raises(NotFound, "person_not_found"):
        do_link(uuid.uuid4(), "transit", TRANSIT, operator="tunion")


# -- views, unlinking and the card's reissue ------------------------------------------------


def test_links_of_lists_current_links_masked_and_never_a_number(
    db, sealer, new_person, do_link
) -> None:
    holder = new_person()
    numbers = [_bank_number(), _digits(14), "B" + _digits(9)]
    do_link(holder, "bank", numbers[0])
    do_link(holder, "transit", numbers[1], operator="tunion")
    do_link(holder, "social_security", numbers[2])
    with db.session() as session:
        views = links.links_of(session, holder)
    assert [v.kind for v in views] == [LinkKind.BANK, LinkKind.TRANSIT, LinkKind.SOCIAL_SECURITY]
    shown = repr(views) + "".join(e.data for e in _link_events(db, holder))
    for number in numbers:
        assert number not in shown
        assert number[:-4] not in shown


def test_unlink_keeps_history_and_frees_the_card_for_another_person(
    db, new_person, do_link
) -> None:
    alice, bob = new_person(), new_person()
    number = _bank_number()
    view = do_link(alice, "bank", number)
    with db.session() as session:
        removed = links.unlink(
            session, view.id, actor=Actor.person(alice), reason=" card cancelled ", person_id=alice
        )
    assert removed.unlinked_at is not None
    assert _row(db, view.id).unlinked_reason == "card cancelled"
    with db.session() as session:
        assert links.links_of(session, alice) == []
    assert do_link(bob, "bank", number).person_id == bob
    removal = _link_events(db, alice)[-1]
    assert removal.action == CardAction.LINK_REMOVE
    assert removal.data_dict() == {
        "kind": "bank",
        "number": view.number_masked,
        "reason": "card cancelled",
    }


def test_unlink_refusals(db, new_person, do_link) -> None:
    alice, bob = new_person(), new_person()
    view = do_link(alice, "transit", _digits(12), operator="tunion")
    with _raises(InvalidInput, "reason_required"), db.session() as session:
        links.unlink(session, view.id, actor=OFFICER, reason="  ")
    with _raises(NotFound, "link_not_found"), db.session() as session:
        links.unlink(session, view.id, actor=Actor.person(bob), reason="mine?", person_id=bob)
    with _raises(NotFound, "link_not_found"), db.session() as session:
        links.unlink(session, uuid.uuid4(), actor=OFFICER, reason="x")
    with db.session() as session:
        links.unlink(session, view.id, actor=OFFICER, reason="closed by the operator")
    with _raises(InvalidState, "link_already_removed"), db.session() as session:
        links.unlink(session, view.id, actor=OFFICER, reason="again")
    assert [e.action for e in _link_events(db, alice)] == [
        CardAction.LINK_CREATE,
        CardAction.LINK_REMOVE,
    ]


def test_links_survive_a_reissue_of_the_virtual_card(db, new_person, do_link) -> None:
    holder = new_person()
    view = do_link(holder, "transit", _digits(12), operator="tunion")
    with db.session() as session:
        card = cards.issue_card(session, holder, actor=OFFICER)
        cards.reissue(session, card.id, actor=OFFICER, reason="worn")
        assert links.links_of(session, holder) == [view]


def test_a_refused_link_leaves_no_row_and_no_event(db, new_person, do_link) -> None:
    alice, bob = new_person(), new_person()
    number = _bank_number()
    do_link(alice, "bank", number)
    with _raises(Conflict, "card_already_linked"):
        do_link(bob, "bank", number)
    assert _link_events(db, bob) == []
    with db.session() as session:
        assert links.links_of(session, bob) == []


def test_get_link(db, new_person, do_link) -> None:
    view = do_link(new_person(), "social_security", _digits(11))
    with db.session() as session:
        assert links.get_link(session, view.id).number_masked == view.number_masked
        with _raises(NotFound, "link_not_found"):
            links.get_link(session, uuid.uuid4())


# -- races ----------------------------------------------------------------------------------


def test_two_people_linking_one_bank_card_at_once_exactly_one_wins(db, new_person, do_link) -> None:
    people = [new_person(), new_person()]
    number = _bank_number()
    barrier = threading.Barrier(2)
    outcomes: dict[uuid.UUID, object] = {}

    def attempt(person_id: uuid.UUID) -> None:
        barrier.wait()
        try:
            outcomes[person_id] = do_link(person_id, "bank", number)
        except Conflict as exc:
            outcomes[person_id] = exc.code

    threads = [threading.Thread(target=attempt, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [o for o in outcomes.values() if isinstance(o, str)]
    winners = [o for o in outcomes.values() if isinstance(o, links.LinkedCardView)]
    assert codes == ["card_already_linked"]
    assert len(winners) == 1
    with db.session() as session:
        current = session.exec(
            select(func.count())
            .select_from(LinkedCard)
            .where(
                LinkedCard.person_id.in_(people),  # type: ignore[attr-defined]
                LinkedCard.unlinked_at.is_(None),  # type: ignore[union-attr]
            )
        ).one()
    assert current == 1
    assert sum(len(_link_events(db, p)) for p in people) == 1
