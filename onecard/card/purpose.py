"""What a terminal is for, and what a card QR code is presented for (DESIGN.md §6).

One name per concept: a gate or counter verifies codes for one purpose, and a code made for
one purpose is refused by a terminal of another, so a code shown at a transit gate cannot be
replayed at a bank counter.
"""

from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    TRANSIT = "transit"
    SOCIAL_SECURITY = "social_security"
    BANK = "bank"
