"""Online verification of QR codes at terminals (``POST /v1/cards/verify``), DESIGN.md §6.

The offline checks (:mod:`onecard.card.verify`: encoding, signature, times, purpose) run
against the card keys the keyring publishes now, kept by each process and re-read every few
seconds (at once, at most twice a second, for a kid not seen yet: a key activated by another
worker). What must hold at once on every worker is decided by the database:

- the card's status (a card suspended a moment ago is refused, whatever a trust list says);
- the code's ``cti`` is consumed (:func:`onecard.core.once.consume`, a primary-key insert), so a
  code verifies once across all workers, even when two requests race;
- the verification is recorded, about the card's person, with its audit event, in the same
  transaction.

Then the answer is cut to the terminal's purpose: a transit gate learns that the card is valid
and whether a transit card is linked; a social-security counter the holder's name, masked
identity number, assurance level and whether a social-security card is linked; a bank counter
the masked numbers of the linked bank cards. Nothing else leaves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from onecard.card.actions import CardAction
from onecard.card.cards import card_by_reference, inactive_references
from onecard.card.links import links_of
from onecard.card.models import (
    Card,
    CardStatus,
    CardVerification,
    LinkKind,
    PublishedTrustList,
    Terminal,
)
from onecard.card.purpose import Purpose
from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE, InvalidCard, InvalidCardReason
from onecard.card.trustlist import (
    DEFAULT_LIFETIME,
    TRUST_LIST_KEY_PURPOSE,
    TrustList,
    build_trust_list,
    card_key,
)
from onecard.card.verify import MAX_LEEWAY, OfflineVerifier, VerifiedCard
from onecard.core import clock, once
from onecard.core.audit import Actor, EventSpec, record_many
from onecard.core.db import Database
from onecard.core.keyring import Keyring
from onecard.identity.models import Person

_KEYS_SECONDS = 5.0  # how long a process trusts its copy of the published card keys
_UNKNOWN_KID_SECONDS = 0.5  # the soonest it re-reads them for a kid it does not know
_CTI_NAMESPACE = "card_cti"


@dataclass(frozen=True)
class Disclosure:
    """What a terminal learns about a valid code: only the fields of its purpose are set."""

    purpose: Purpose
    verified_at: datetime
    transit_linked: bool | None = None
    name: str | None = None
    identity_number_masked: str | None = None
    assurance_level: int | None = None
    social_security_linked: bool | None = None
    bank_cards_masked: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Checked:
    """A code that passed every check a read can make (:meth:`OnlineVerifier.check`)."""

    card_id: uuid.UUID
    person_id: uuid.UUID
    cti: bytes
    expires_at: int
    disclosure: Disclosure


class OnlineVerifier:
    """One per process (it lives on the runtime), shared by its threads."""

    def __init__(self, keyring: Keyring, issuer: str) -> None:
        self._keyring, self._issuer = keyring, issuer
        self._lock = threading.Lock()
        self._verifier: OfflineVerifier | None = None
        self._loaded_at = float("-inf")

    def verify(
        self, session: Session, text: str, terminal: Terminal, *, actor: Actor
    ) -> Disclosure:
        """Verify ``text`` for ``terminal`` in one session; raises :class:`InvalidCard`."""
        return self.record(session, self.check(session, text, terminal), terminal, actor=actor)

    def check(self, session: Session, text: str, terminal: Terminal) -> Checked:
        """Everything a read can decide (signature, times, purpose, the card's status) and
        the terminal's answer; in a read session, so on SQLite none of it holds the writer."""
        purpose = Purpose(terminal.purpose)
        verified = self._checked(session, text, purpose)
        card = card_by_reference(session, verified.card_reference)
        if card is None or card.status != CardStatus.ACTIVE:
            raise InvalidCard(InvalidCardReason.CARD_INACTIVE, "the card is not active")
        disclosure = _disclose(session, card.person_id, purpose, clock.now())
        return Checked(card.id, card.person_id, verified.cti, verified.expires_at, disclosure)

    def record(
        self, session: Session, checked: Checked, terminal: Terminal, *, actor: Actor
    ) -> Disclosure:
        """Record one checked code (see :func:`record_verifications`); raises what refused it."""
        outcome = record_verifications(session, [(checked, terminal, actor)])[0]
        if isinstance(outcome, InvalidCard):
            raise outcome
        return outcome

    def _checked(self, session: Session, text: str, purpose: Purpose) -> VerifiedCard:
        verifier = self._current(session, force=False)
        try:
            return verifier.verify(text, purpose=purpose)
        except InvalidCard as exc:
            if exc.reason != InvalidCardReason.UNKNOWN_KID:
                raise
        # A key another worker activated a moment ago: read the keys again, then decide.
        return self._current(session, force=True).verify(text, purpose=purpose)

    def _current(self, session: Session, *, force: bool) -> OfflineVerifier:
        age = time.monotonic() - self._loaded_at
        if self._verifier is not None and age < (_UNKNOWN_KID_SECONDS if force else _KEYS_SECONDS):
            return self._verifier
        keys = {}
        for jwk in self._keyring.jwks(session, (CARD_KEY_PURPOSE,))["keys"]:
            if jwk.get("alg") == CARD_ALG:
                key = card_key(jwk)
                keys[key.cose_kid] = key
        now = clock.now()
        # The card statuses come from the database, so the list of inactive cards stays empty.
        trust_list = TrustList(
            issuer=self._issuer,
            issued_at=now,
            next_update=now + timedelta(seconds=_KEYS_SECONDS),
            keys=keys,
            inactive=frozenset(),
            jws="",
        )
        with self._lock:
            if self._verifier is None:
                self._verifier = OfflineVerifier(trust_list, clock=lambda: clock.now().timestamp())
            else:
                self._verifier.use(trust_list)  # codes already seen stay remembered
            self._loaded_at = time.monotonic()
            return self._verifier


def _disclose(
    session: Session, person_id: uuid.UUID, purpose: Purpose, verified_at: datetime
) -> Disclosure:
    links = links_of(session, person_id)
    kinds = {link.kind for link in links}
    if purpose == Purpose.TRANSIT:
        return Disclosure(purpose, verified_at, transit_linked=LinkKind.TRANSIT in kinds)
    if purpose == Purpose.BANK:
        banks = tuple(link.number_masked for link in links if link.kind == LinkKind.BANK)
        return Disclosure(purpose, verified_at, bank_cards_masked=banks)
    person = session.get_one(Person, person_id)
    return Disclosure(
        purpose,
        verified_at,
        name=person.name,
        identity_number_masked=person.identity_number_masked,
        assurance_level=person.assurance_level,
        social_security_linked=LinkKind.SOCIAL_SECURITY in kinds,
    )


_VERIFICATIONS = CardVerification.__table__  # type: ignore[attr-defined]
Verification = tuple[Checked, Terminal, Actor]


def record_verifications(
    session: Session, batch: Sequence[Verification]
) -> list[Disclosure | InvalidCard]:
    """Record checked codes in the caller's write transaction, one statement per table however
    many there are (concurrent verifications share one write, see
    :mod:`onecard.core.group_commit`): each card must still be active (it may have been
    suspended since its check), each ``cti`` is consumed once for all workers (the primary key
    decides; of two equal codes in one batch the first wins), and each verification is
    recorded with its audit event. A refused code gets its :class:`InvalidCard` in its place
    and writes nothing."""
    session.flush()
    connection = session.connection()
    active = set(
        connection.execute(
            select(Card.id).where(
                Card.id.in_({checked.card_id for checked, _, _ in batch}),  # type: ignore[attr-defined]
                Card.status == CardStatus.ACTIVE,
            )
        ).scalars()
    )
    outcomes: list[Disclosure | InvalidCard | None] = [None] * len(batch)
    wanted: dict[str, datetime] = {}
    for index, (checked, _, _) in enumerate(batch):
        cti = checked.cti.hex()
        if checked.card_id not in active:
            outcomes[index] = InvalidCard(InvalidCardReason.CARD_INACTIVE, "the card is not active")
        elif cti in wanted:
            outcomes[index] = InvalidCard(InvalidCardReason.REPLAYED, "the code was used already")
        else:
            wanted[cti] = datetime.fromtimestamp(checked.expires_at, UTC) + MAX_LEEWAY
    consumed = once.consume_new(connection, _CTI_NAMESPACE, wanted)
    now, rows, events = clock.now(), [], []
    for index, (checked, terminal, actor) in enumerate(batch):
        if outcomes[index] is not None:
            continue
        if checked.cti.hex() not in consumed:
            outcomes[index] = InvalidCard(InvalidCardReason.REPLAYED, "the code was used already")
            continue
        rows.append(
            {
                "id": uuid.uuid4(),
                "card_id": checked.card_id,
                "person_id": checked.person_id,
                "terminal_id": terminal.id,
                "purpose": terminal.purpose,
                "verified_at": now,
            }
        )
        events.append(
            EventSpec(
                CardAction.VERIFICATION_RECORD,
                actor,
                ("card", str(checked.card_id)),
                checked.person_id,
                {"terminal": str(terminal.id), "purpose": terminal.purpose},
            )
        )
        outcomes[index] = dataclasses.replace(checked.disclosure, verified_at=now)
    if rows:
        connection.execute(insert(_VERIFICATIONS), rows)
        record_many(session, events)
    return [outcome for outcome in outcomes if outcome is not None]


class TrustListPublisher:
    """The trust list every worker serves (``GET /v1/cards/trust-list``), DESIGN.md §2.

    It is kept in the database (one ``card_trust_list`` row), not built by each process: every
    worker then answers with the same signed bytes and the same ETag, so a terminal polling
    with ``If-None-Match`` gets 304 from whichever worker it reaches. Each request reads the
    inactive cards and the published keys (a card suspended a moment ago reaches terminals at
    their next poll); the list is signed again only when they changed (its digest) or when half
    its lifetime has passed, by one worker: the others wait on the row's lock, then serve it."""

    def __init__(self, database: Database, keyring: Keyring, issuer: str) -> None:
        self._database, self._keyring, self._issuer = database, keyring, issuer

    def current(self, session: Session) -> str:
        now = clock.now()
        row = session.get(PublishedTrustList, _TRUST_LIST_ROW)
        if _serves(row, self._content(session, now)[0], now):
            assert row is not None
            return row.jws
        try:
            return self._publish(now)
        except IntegrityError:  # two workers published the first list at once: read theirs
            with self._database.read_session() as fresh:
                return fresh.get_one(PublishedTrustList, _TRUST_LIST_ROW).jws

    def _content(self, session: Session, now: datetime) -> tuple[bytes, list[bytes]]:
        """The digest of what the list must say now (all but its times), and the inactive
        card references it lists."""
        inactive = inactive_references(session, now=now)
        content = {
            "iss": self._issuer,
            "keys": self._keyring.jwks(session, (CARD_KEY_PURPOSE,))["keys"],
            "signer": self._keyring.signer(session, TRUST_LIST_KEY_PURPOSE, CARD_ALG).kid,
            "inactive": sorted(reference.hex() for reference in inactive),
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
        return digest, inactive

    def _publish(self, now: datetime) -> str:
        with self._database.session() as session:
            row = session.get(PublishedTrustList, _TRUST_LIST_ROW, with_for_update=True)
            digest, inactive = self._content(session, now)
            if _serves(row, digest, now):  # another worker signed it while this one waited
                assert row is not None
                return row.jws
            jws = build_trust_list(
                session, self._keyring, issuer=self._issuer, inactive=inactive, now=now
            )
            row = row or PublishedTrustList(name=_TRUST_LIST_ROW)
            row.digest, row.jws = digest, jws
            row.issued_at, row.next_update = now, now + DEFAULT_LIFETIME
            session.add(row)
            return jws


_TRUST_LIST_ROW = "current"


def _serves(row: PublishedTrustList | None, digest: bytes, now: datetime) -> bool:
    """Whether the published list still says what it must, and is not yet due for renewal
    (half its lifetime, so a terminal's copy is never close to stale)."""
    if row is None or not hmac.compare_digest(row.digest, digest):
        return False
    return now < row.issued_at + (row.next_update - row.issued_at) / 2
