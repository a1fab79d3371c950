"""Online verification (onecard.card.online) and terminals (onecard.card.terminals): what each
purpose discloses, refusals that record nothing, a code verifying once even when two workers
race, and disabled terminals. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func
from sqlmodel import select

from onecard.card import cards, links, terminals
from onecard.card.models import CardVerification, LinkKind, Terminal
from onecard.card.numbers import luhn_check_digit
from onecard.card.online import OnlineVerifier, record_verifications
from onecard.card.purpose import Purpose
from onecard.card.token import (
    CARD_ALG,
    CARD_KEY_PURPOSE,
    InvalidCard,
    InvalidCardReason,
    issue_token,
)
from onecard.core import clock
from onecard.core.audit import Actor
from onecard.core.errors import Forbidden, InvalidInput
from onecard.identity.models import AssuranceLevel
from tests import factories

ADMIN = Actor.cli("admin")
TRANSIT_OPERATOR = "Metro"


@pytest.fixture
def holder(runtime):  # type: ignore[no-untyped-def]
    """A level-2 citizen with an active card and one linked card of each kind."""
    with runtime.database.session() as session:
        person = factories.person(session, runtime.sealer, level=AssuranceLevel.SUBSTANTIAL)
        card = cards.issue_card(session, person.id, actor=ADMIN)
        unique = str(card.id.int)[:10]
        for kind, number, operator in (
            (LinkKind.TRANSIT, "31" + unique, TRANSIT_OPERATOR),
            (LinkKind.BANK, "411111" + unique[:9] + luhn_check_digit("411111" + unique[:9]), None),
            (LinkKind.SOCIAL_SECURITY, "A" + unique[:8], None),
        ):
            links.link(
                session,
                runtime.sealer,
                person.id,
                kind,
                number,
                operator=operator,
                actor=ADMIN,
                level=AssuranceLevel.SUBSTANTIAL,
            )
        return person, card


def _terminal(runtime, purpose: Purpose) -> Terminal:  # type: ignore[no-untyped-def]
    spec = terminals.TerminalSpec("Gate 3", "Line 1, People's Square", "City Metro", purpose)
    with runtime.database.session() as session:
        return terminals.create_terminal(session, spec, actor=ADMIN).terminal


def _code(runtime, card, purpose: Purpose) -> str:  # type: ignore[no-untyped-def]
    with runtime.database.read_session() as session:
        signer = runtime.keyring.signer(session, CARD_KEY_PURPOSE, CARD_ALG)
    return issue_token(
        signer,
        issuer=runtime.provider.issuer,
        card_reference=card.reference,
        purpose=purpose,
        now=clock.now(),
    )


def _verify(runtime, verifier: OnlineVerifier, code: str, terminal: Terminal):  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        return verifier.verify(session, code, terminal, actor=Actor("client", "terminal"))


def _verifications(runtime, card) -> int:  # type: ignore[no-untyped-def]
    with runtime.database.read_session() as session:
        return session.exec(
            select(func.count())
            .select_from(CardVerification)
            .where(CardVerification.card_id == card.id)
        ).one()


@pytest.fixture
def verifier(runtime) -> OnlineVerifier:  # type: ignore[no-untyped-def]
    return OnlineVerifier(runtime.keyring, runtime.provider.issuer)


def test_a_transit_gate_learns_only_validity_and_the_transit_link(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    disclosure = _verify(
        runtime,
        verifier,
        _code(runtime, card, Purpose.TRANSIT),
        _terminal(runtime, Purpose.TRANSIT),
    )
    assert disclosure.transit_linked is True
    assert disclosure.name is None
    assert disclosure.identity_number_masked is None
    assert disclosure.bank_cards_masked is None
    assert _verifications(runtime, card) == 1


def test_a_social_security_counter_learns_name_masked_number_and_level(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    person, card = holder
    terminal = _terminal(runtime, Purpose.SOCIAL_SECURITY)
    disclosure = _verify(runtime, verifier, _code(runtime, card, Purpose.SOCIAL_SECURITY), terminal)
    assert disclosure.name == person.name
    assert disclosure.identity_number_masked == person.identity_number_masked
    assert "*" in disclosure.identity_number_masked
    assert disclosure.assurance_level == AssuranceLevel.SUBSTANTIAL
    assert disclosure.social_security_linked is True
    assert disclosure.transit_linked is None
    assert disclosure.bank_cards_masked is None


def test_a_bank_counter_learns_only_the_masked_bank_card(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    terminal = _terminal(runtime, Purpose.BANK)
    disclosure = _verify(runtime, verifier, _code(runtime, card, Purpose.BANK), terminal)
    assert disclosure.bank_cards_masked is not None
    assert len(disclosure.bank_cards_masked) == 1
    assert "*" in disclosure.bank_cards_masked[0]
    assert disclosure.name is None
    assert disclosure.transit_linked is None


def test_a_code_verifies_once(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    code = _code(runtime, card, Purpose.TRANSIT)
    _verify(runtime, verifier, code, terminal)
    other_worker = OnlineVerifier(runtime.keyring, runtime.provider.issuer)
    with pytest.raises(InvalidCard) as refused:
        _verify(runtime, other_worker, code, terminal)
    assert refused.value.reason == InvalidCardReason.REPLAYED
    assert _verifications(runtime, card) == 1


def test_two_workers_racing_on_one_code_verify_it_once(runtime, holder):  # type: ignore[no-untyped-def]
    _, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    code = _code(runtime, card, Purpose.TRANSIT)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        verifier = OnlineVerifier(runtime.keyring, runtime.provider.issuer)  # one per process
        start.wait()
        try:
            _verify(runtime, verifier, code, terminal)
            outcomes.append("verified")
        except InvalidCard as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted(["verified", InvalidCardReason.REPLAYED])
    assert _verifications(runtime, card) == 1


def test_a_card_suspended_a_moment_ago_is_refused_and_nothing_recorded(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    code = _code(runtime, card, Purpose.TRANSIT)
    with runtime.database.session() as session:
        cards.suspend(session, card.id, actor=ADMIN, reason="reported at the counter")
    with pytest.raises(InvalidCard) as refused:
        _verify(runtime, verifier, code, terminal)
    assert refused.value.reason == InvalidCardReason.CARD_INACTIVE
    assert _verifications(runtime, card) == 0


def test_a_code_for_another_purpose_is_refused(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    with pytest.raises(InvalidCard) as refused:
        _verify(
            runtime,
            verifier,
            _code(runtime, card, Purpose.TRANSIT),
            _terminal(runtime, Purpose.BANK),
        )
    assert refused.value.reason == InvalidCardReason.WRONG_PURPOSE
    assert _verifications(runtime, card) == 0


def test_a_disabled_terminal_is_refused_with_its_client(runtime) -> None:  # type: ignore[no-untyped-def]
    spec = terminals.TerminalSpec("Counter 1", "Civic Centre", "Social Security Bureau", "bank")
    with runtime.database.session() as session:
        made = terminals.create_terminal(session, spec, actor=ADMIN)
    with runtime.database.session() as session:
        assert terminals.terminal_of_client(session, made.client_id).id == made.terminal.id
        terminals.disable_terminal(session, made.terminal.id, actor=ADMIN)
    with runtime.database.session() as session, pytest.raises(Forbidden) as refused:
        terminals.terminal_of_client(session, made.client_id)
    assert refused.value.code == "terminal_disabled"


def test_a_terminal_needs_a_known_purpose_and_a_name() -> None:
    with pytest.raises(InvalidInput) as refused:
        terminals.TerminalSpec("Gate", "Here", "Metro", "parking")  # type: ignore[arg-type]
    assert refused.value.code == "terminal_purpose_invalid"
    with pytest.raises(InvalidInput) as refused:
        terminals.TerminalSpec("  ", "Here", "Metro", Purpose.TRANSIT)
    assert refused.value.code == "terminal_name_invalid"


def test_the_citizen_sees_who_verified_their_card(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    person, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    _verify(runtime, verifier, _code(runtime, card, Purpose.TRANSIT), terminal)
    with runtime.database.read_session() as session:
        page = terminals.verifications_of(session, person.id, limit=10)
    assert [(v.terminal_name, v.purpose) for v in page.items] == [("Gate 3", Purpose.TRANSIT)]


def test_a_card_suspended_between_the_check_and_the_record_is_refused(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    _, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    code = _code(runtime, card, Purpose.TRANSIT)
    with runtime.database.read_session() as session:
        checked = verifier.check(session, code, terminal)
    with runtime.database.session() as session:
        cards.suspend(session, card.id, actor=ADMIN, reason="suspended meanwhile")
    with runtime.database.session() as session, pytest.raises(InvalidCard) as refused:
        verifier.record(session, checked, terminal, actor=Actor("client", "terminal"))
    assert refused.value.reason == InvalidCardReason.CARD_INACTIVE
    assert _verifications(runtime, card) == 0


def test_a_batch_records_what_passes_and_refuses_the_rest(runtime, holder, verifier):  # type: ignore[no-untyped-def]
    """Several workers' verifications share one write: each gets its own outcome."""
    _, card = holder
    terminal = _terminal(runtime, Purpose.TRANSIT)
    codes = [_code(runtime, card, Purpose.TRANSIT) for _ in range(3)]
    with runtime.database.read_session() as session:
        first, second, used = (verifier.check(session, code, terminal) for code in codes)
    _verify(runtime, OnlineVerifier(runtime.keyring, runtime.provider.issuer), codes[2], terminal)
    actor = Actor("client", "terminal")
    batch = [(first, terminal, actor), (first, terminal, actor), (second, terminal, actor)]
    batch.append((used, terminal, actor))
    with runtime.database.session() as session:
        outcomes = record_verifications(session, batch)
    assert [getattr(o, "reason", "verified") for o in outcomes] == [
        "verified",
        InvalidCardReason.REPLAYED,  # the same code twice in one batch: the first wins
        "verified",
        InvalidCardReason.REPLAYED,  # consumed by an earlier write
    ]
    assert _verifications(runtime, card) == 3
