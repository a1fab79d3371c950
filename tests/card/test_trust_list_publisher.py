"""The published trust list is one document for every worker: the same bytes (and so the same
ETag) whichever process answers, signed again only when what it says changes or when half its
lifetime has passed."""

from __future__ import annotations

from datetime import timedelta

from onecard.card import cards
from onecard.card.online import TrustListPublisher
from onecard.card.trustlist import TrustList, card_reference_text, trust_list_etag
from onecard.core import clock
from onecard.core.audit import Actor
from onecard.core.clock import FrozenClock, use_clock
from tests import factories


def _workers(runtime, count: int = 2) -> list[TrustListPublisher]:  # type: ignore[no-untyped-def]
    """Publishers as separate worker processes would hold them (nothing shared but the
    database)."""
    return [
        TrustListPublisher(runtime.database, runtime.keyring, runtime.provider.issuer)
        for _ in range(count)
    ]


def _served(runtime, worker: TrustListPublisher) -> str:  # type: ignore[no-untyped-def]
    with runtime.database.read_session() as session:
        return worker.current(session)


def _loaded(runtime, jws: str) -> TrustList:  # type: ignore[no-untyped-def]
    with runtime.database.read_session() as session:
        jwks = runtime.keyring.jwks(session)
    return TrustList.from_jws(jws, jwks, now=clock.now())


def _card(runtime):  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        member = factories.person(session, runtime.sealer)
        return cards.issue_card(session, member.id, actor=Actor.system())


def test_every_worker_serves_the_same_bytes(runtime) -> None:  # type: ignore[no-untyped-def]
    first, second = _workers(runtime)
    with use_clock(FrozenClock(clock.now())):
        served = _served(runtime, first)
        assert _served(runtime, second) == served
        assert trust_list_etag(_served(runtime, first)) == trust_list_etag(served)


def test_a_lost_card_reaches_every_worker_at_once_in_one_new_list(runtime) -> None:  # type: ignore[no-untyped-def]
    first, second = _workers(runtime)
    card = _card(runtime)
    with use_clock(FrozenClock(clock.now())):
        before = _served(runtime, first)
        with runtime.database.session() as session:
            cards.report_lost(session, card.id, actor=Actor.system())
        after = _served(runtime, second)
        assert after != before
        assert _served(runtime, first) == after
        assert card.reference in _loaded(runtime, after).inactive
        assert card_reference_text(card.reference) not in before


def test_an_unchanged_list_is_signed_again_after_half_its_lifetime(runtime) -> None:  # type: ignore[no-untyped-def]
    (worker,) = _workers(runtime, 1)
    frozen = FrozenClock(clock.now())
    with use_clock(frozen):
        first = _served(runtime, worker)
        issued = _loaded(runtime, first).issued_at
        lifetime = _loaded(runtime, first).next_update - issued
        frozen.advance(lifetime / 2 - (frozen.now() - issued) - timedelta(seconds=1))
        assert _served(runtime, worker) == first
        frozen.advance(timedelta(seconds=2))
        renewed = _served(runtime, worker)
        assert renewed != first
        assert _loaded(runtime, renewed).issued_at > issued


def test_a_new_card_key_is_listed_at_once(runtime) -> None:  # type: ignore[no-untyped-def]
    (worker,) = _workers(runtime, 1)
    with use_clock(FrozenClock(clock.now())):
        before = _loaded(runtime, _served(runtime, worker))
        with runtime.database.session() as session:
            runtime.keyring.rotate(session, Actor.system(), purpose="card")
        after = _loaded(runtime, _served(runtime, worker))
        assert set(after.keys) > set(before.keys)
