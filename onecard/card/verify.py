"""The offline verifier: what a gate or counter runs to accept or refuse a card QR code with
nothing but a trust list (DESIGN.md §6). No server, no database, no session.

:meth:`OfflineVerifier.verify` takes the QR text apart (:mod:`onecard.card.token`), checks the
COSE signature (RFC 9052 §4.4) with the card key the trust list names by ``kid``, then the
claims: issuer, time (``iat``/``exp`` with at most 5 s of leeway, RFC 8392 §3.1.4, §3.1.6),
the card's status (the trust list's inactive set), the purpose, and replay (a ``cti`` already
seen by this verifier). It returns a :class:`VerifiedCard` or raises :class:`InvalidCard` with
a precise :class:`InvalidCardReason`, and never raises anything else for any text.

The order matters: nothing the code says is believed before its signature is checked, and a
code is remembered as seen only once everything else passed. Public keys are parsed when the
trust list loads, so verifying costs little more than the ECDSA verification itself.

Replay protection here is per verifier (one gate refuses the same code twice); the online
verify endpoint consumes ``cti`` in the database for all terminals at once.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from onecard.card.purpose import Purpose
from onecard.card.token import (
    CardClaims,
    InvalidCard,
    InvalidCardReason,
    parse_claims,
    parse_token,
    sig_structure,
)
from onecard.card.trustlist import TrustList

__all__ = ["InvalidCard", "InvalidCardReason", "OfflineVerifier", "VerifiedCard"]

MAX_LEEWAY = timedelta(seconds=5)
DEFAULT_SEEN_MEMORY = 10_000
_ES256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class VerifiedCard:
    """A code that passed every check: which card, for what, and which key signed it."""

    claims: CardClaims
    kid: str  # the keyring kid (RFC 7638 thumbprint) of the card key that signed it

    @property
    def card_reference(self) -> bytes:
        return self.claims.card_reference

    @property
    def purpose(self) -> Purpose:
        return self.claims.purpose

    @property
    def issued_at(self) -> int:
        return self.claims.issued_at

    @property
    def expires_at(self) -> int:
        return self.claims.expires_at

    @property
    def cti(self) -> bytes:
        return self.claims.cti


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\0") or b"\0"  # minimal: no leading zero octets...
    if value[0] & 0x80:  # ...but one where the value would otherwise read as negative
        value = b"\0" + value
    return b"\x02" + bytes((len(value),)) + value


def der_signature(signature: bytes) -> bytes:
    """An ES256 signature as COSE carries it (RFC 9053 §2.1: ``r || s``, 32 bytes each) in
    the DER form cryptography verifies (``SEQUENCE { INTEGER r, INTEGER s }``).

    Built from the bytes directly: converting through Python integers and
    ``encode_dss_signature`` costs the offline verifier about a microsecond a code."""
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return b"\x30" + bytes((len(body),)) + body


class SeenCodes:
    """The ``cti`` values a verifier accepted, each kept until its code expires.

    Bounded: when full, forgotten first are the codes that expired, then the ones closest to
    expiring (a replay of those is refused by time within seconds anyway).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the memory of seen codes needs room for at least one")
        self._capacity = capacity
        self._forget_at: dict[bytes, float] = {}
        self._queue: list[tuple[float, bytes]] = []  # (forget_at, cti), a min-heap
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._forget_at)

    def add(self, cti: bytes, forget_at: float, now: float) -> bool:
        """Remember ``cti`` until ``forget_at``; False if it is remembered already."""
        with self._lock:
            queue, forget = self._queue, self._forget_at
            while queue and queue[0][0] <= now:
                del forget[heapq.heappop(queue)[1]]
            if cti in forget:
                return False
            if len(forget) >= self._capacity:
                del forget[heapq.heappop(queue)[1]]
            forget[cti] = forget_at
            heapq.heappush(queue, (forget_at, cti))
            return True


class OfflineVerifier:
    """Verifies card codes against one trust list; :meth:`use` swaps in a newer list."""

    def __init__(
        self,
        trust_list: TrustList,
        *,
        leeway: timedelta = MAX_LEEWAY,
        clock: Callable[[], float] = time.time,
        seen_memory: int = DEFAULT_SEEN_MEMORY,
    ) -> None:
        """``clock`` returns seconds since the epoch (``time.time`` unless a test moves it)."""
        if not timedelta(0) <= leeway <= MAX_LEEWAY:
            raise ValueError("the leeway is 0 to 5 seconds")
        self._leeway = leeway.total_seconds()
        self._clock = clock
        self._seen = SeenCodes(seen_memory)
        self.use(trust_list)

    @property
    def trust_list(self) -> TrustList:
        return self._trust_list

    def use(self, trust_list: TrustList) -> None:
        """Verify with ``trust_list`` from now on; the codes already seen stay remembered."""
        self._trust_list = trust_list
        self._keys = dict(trust_list.keys)
        self._inactive = trust_list.inactive
        self._issuer = trust_list.issuer

    def verify(self, text: str, *, purpose: Purpose) -> VerifiedCard:
        token = parse_token(text)
        key = self._keys.get(token.kid)
        if key is None:
            raise InvalidCard(InvalidCardReason.UNKNOWN_KID, "no card key in the trust list")
        der = der_signature(token.signature)
        try:
            key.public_key.verify(der, sig_structure(token.protected, token.payload), _ES256)
        except InvalidSignature:
            raise InvalidCard(InvalidCardReason.BAD_SIGNATURE, "bad signature") from None
        claims = parse_claims(token.payload)
        if claims.issuer != self._issuer:
            raise InvalidCard(InvalidCardReason.WRONG_ISSUER, "issued by another service")
        now, leeway = self._clock(), self._leeway
        if now >= claims.expires_at + leeway:
            raise InvalidCard(InvalidCardReason.EXPIRED, "the code has expired")
        if claims.issued_at - leeway > now:
            raise InvalidCard(InvalidCardReason.NOT_YET_VALID, "the code is issued in the future")
        if claims.card_reference in self._inactive:
            raise InvalidCard(InvalidCardReason.CARD_INACTIVE, "the card is not active")
        if claims.purpose != purpose:
            raise InvalidCard(InvalidCardReason.WRONG_PURPOSE, f"the code is for {claims.purpose}")
        if not self._seen.add(claims.cti, claims.expires_at + leeway, now):
            raise InvalidCard(InvalidCardReason.REPLAYED, "the code was used already")
        return VerifiedCard(claims, key.kid)
