"""Sample contexts of the card page and the counter page, as their routers pass them, for the
tests that render every template in every locale and every state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from onecard.card.online import Disclosure
from onecard.card.purpose import Purpose

CSRF = "csrf-token-value"
_AT = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
TERMINAL = SimpleNamespace(
    id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
    name="Counter 2",
    location="Huangpu service hall",
    organisation="City social security",
    purpose="social_security",
)
DISCLOSURES = {
    Purpose.TRANSIT: Disclosure(Purpose.TRANSIT, _AT, transit_linked=True),
    Purpose.SOCIAL_SECURITY: Disclosure(
        Purpose.SOCIAL_SECURITY,
        _AT,
        name="张三",
        identity_number_masked="1101**********002X",
        assurance_level=2,
        social_security_linked=False,
    ),
    Purpose.BANK: Disclosure(Purpose.BANK, _AT, bank_cards_masked=("6222 **** **** 1234",)),
}


def card_page_context(status: str | None = "active", **overrides: Any) -> dict[str, Any]:
    """The card page of a card in ``status`` (``None``: no card yet)."""
    card = None if status is None else SimpleNamespace(number="9156000012345678", status=status)
    code = None
    if status == "active":
        code = {
            "token": "OC1:6BF+CYM0",
            "purpose": "transit",
            "expires_at": 1_900_000_060,
            "now": 1_900_000_000,
            "image": "data:image/svg+xml;base64,PHN2Zy8+",
        }
    context: dict[str, Any] = {
        "card": card,
        "code": code,
        "purpose": "transit",
        "purposes": [str(p) for p in Purpose],
        "lifetime": 60,
        "reload_after": 50,
        "refresh_before": 10,
        "links": [
            SimpleNamespace(kind="bank", operator=None, number_masked="6222 **** **** 1234"),
            SimpleNamespace(kind="transit", operator="T-Union", number_masked="3101 **** 5678"),
            SimpleNamespace(kind="social_security", operator=None, number_masked="A1****789"),
        ],
        "verifications": [
            SimpleNamespace(
                verified_at=_AT,
                terminal_name="Gate 3",
                location="People's Square",
                organisation="City Metro",
                purpose="transit",
            )
        ],
        "csrf_token": CSRF,
        "logout_url": "/oauth2/logout?client_id=onecard-portal",
    }
    return context | overrides


def counter_page_context(**overrides: Any) -> dict[str, Any]:
    """The counter page showing a valid social-security disclosure."""
    context: dict[str, Any] = {
        "terminals": [TERMINAL],
        "chosen": str(TERMINAL.id),
        "outcome": SimpleNamespace(
            terminal=TERMINAL, disclosure=DISCLOSURES[Purpose.SOCIAL_SECURITY], refused=None
        ),
        "error": None,
        "csrf_token": CSRF,
        "logout_url": "/oauth2/logout?client_id=onecard-portal",
        "max_length": 1024,
    }
    return context | overrides
