"""Numbers of the virtual card: how they are made and checked.

Format: 16 ASCII digits, ``9156`` + 11 random digits + 1 Luhn check digit (ISO/IEC 7812-1),
printed in groups of four (``9156 0123 4567 8903``).

- ``9`` is the ISO/IEC 7812 major industry identifier for national assignment, so a card number
  never looks like a bank card's PAN (those start with 2-6) and the linked-card validators can
  never mistake one for the other; ``156`` is China's ISO 3166-1 numeric code.
- The 11 digits come from :mod:`secrets`: numbers are not sequential and say nothing about the
  person or the order of issue. 10^11 numbers leave room for every citizen many times over;
  issuance draws again when a number is taken (the unique constraint decides).
- The Luhn digit catches a mistyped digit and most swapped neighbours at a counter.

The card number identifies the card to people (it is shown to the citizen and typed at a
counter); the QR token never carries it, only the card's random reference.
"""

from __future__ import annotations

import secrets

from onecard.core.validators import InvalidNumber, luhn_valid

__all__ = [
    "CARD_NUMBER_LENGTH",
    "ISSUER_PREFIX",
    "format_card_number",
    "luhn_check_digit",
    "new_card_number",
    "parse_card_number",
]

ISSUER_PREFIX = "9156"
CARD_NUMBER_LENGTH = 16
_RANDOM_DIGITS = CARD_NUMBER_LENGTH - len(ISSUER_PREFIX) - 1
_SEPARATORS = str.maketrans("", "", " -")
_DIGITS = frozenset("0123456789")


def luhn_check_digit(payload: str) -> str:
    """The Luhn digit that makes ``payload + digit`` valid; ``payload`` is ASCII digits."""
    if not payload or any(character not in _DIGITS for character in payload):
        raise ValueError("payload must be ASCII digits")
    total = 0
    # The check digit will sit rightmost, so the payload's rightmost digit is doubled.
    for index, character in enumerate(reversed(payload)):
        digit = int(character)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str(-total % 10)


def new_card_number() -> str:
    """A fresh random card number (its uniqueness is checked by the database)."""
    payload = ISSUER_PREFIX + "".join(secrets.choice("0123456789") for _ in range(_RANDOM_DIGITS))
    return payload + luhn_check_digit(payload)


def parse_card_number(text: str) -> str:
    """The 16 digits of a card number as typed (spaces and hyphens allowed between digits).

    Raises :class:`~onecard.core.validators.InvalidNumber` with one of the codes
    ``card_number_character``, ``card_number_length``, ``card_number_prefix``,
    ``card_number_check_digit``; the reason never repeats the number. Raises ``TypeError``
    when ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    value = text.strip().translate(_SEPARATORS)
    for position, character in enumerate(value, start=1):
        if character not in _DIGITS:
            raise InvalidNumber(
                "card_number_character",
                f"character {position} is not a digit (only spaces and hyphens may separate "
                "the digits)",
            )
    if len(value) != CARD_NUMBER_LENGTH:
        raise InvalidNumber(
            "card_number_length",
            f"a card number has {CARD_NUMBER_LENGTH} digits, got {len(value)}",
        )
    if not value.startswith(ISSUER_PREFIX):
        raise InvalidNumber("card_number_prefix", f"a card number starts with {ISSUER_PREFIX}")
    if not luhn_valid(value):
        raise InvalidNumber("card_number_check_digit", "the check digit (the last digit) is wrong")
    return value


def format_card_number(number: str) -> str:
    """``9156012345678903`` → ``9156 0123 4567 8903``, as printed on the card."""
    return " ".join(number[start : start + 4] for start in range(0, len(number), 4))
