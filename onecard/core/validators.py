"""Validators for the national numbers onecard stores (DESIGN.md §4).

This module owns the rules for:

- resident identity numbers, GB 11643-1999 (ISO 7064 MOD 11-2 check character);
- unified social credit codes of enterprises and other organisations, GB 32100-2015;
- bank card numbers (PANs): 16-19 digits with the Luhn check digit, except that older UnionPay
  cards (prefix 62) without a valid Luhn digit are accepted with a recorded warning;
- transit card numbers (T-Union and city cards): 8-20 digits, scoped by an operator slug;
- social-security card numbers (the number printed on the card, not the social-security
  number, which is the identity number): 9-20 capital letters and digits.

Each ``parse_*`` function either returns a frozen dataclass holding the normalised value and
its parts, or raises :class:`InvalidNumber` with a stable ``code`` and a ``reason`` written for
people. A reason never contains the number it rejects, because reasons end up in logs; for the
same reason the dataclasses' reprs show only masked values.

Only the standard library is used, so the API, the CLI and the offline tools can share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from onecard.core import clock
from onecard.core.masking import (
    mask_bank_card_number,
    mask_identity_number,
    mask_transit_card_number,
)

__all__ = [
    "UNIONPAY_WITHOUT_LUHN",
    "BankCardNumber",
    "CreditCode",
    "IdentityNumber",
    "InvalidNumber",
    "SocialSecurityCardNumber",
    "TransitCardNumber",
    "credit_code_check_character",
    "identity_check_character",
    "luhn_valid",
    "parse_bank_card_number",
    "parse_credit_code",
    "parse_identity_number",
    "parse_social_security_card_number",
    "parse_transit_card_number",
]

_DIGITS = frozenset("0123456789")
_CARD_SEPARATORS = str.maketrans("", "", " -")


class InvalidNumber(ValueError):
    """A national number that breaks a rule.

    ``code`` is stable and machine-readable (the API returns it in a 422 problem document);
    ``reason`` is a sentence for people and never repeats the rejected number.
    """

    def __init__(self, code: str, reason: str) -> None:
        # Both in args, so the exception survives pickling (multiprocessing, log handlers).
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


# Birth dates on resident identity cards are China Standard Time dates (UTC+8, no DST).
_CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


def _local_today() -> date:
    """Today in China, from onecard's injectable clock (tests move it)."""
    return clock.now().astimezone(_CHINA_STANDARD_TIME).date()


def _first_non_digit(text: str) -> int | None:
    """1-based position of the first character that is not an ASCII digit, if any."""
    for position, character in enumerate(text, start=1):
        if character not in _DIGITS:
            return position
    return None


# --- Resident identity number, GB 11643-1999 -------------------------------------------------

_IDENTITY_LENGTH = 18
_IDENTITY_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_IDENTITY_CHECK_CHARACTERS = "10X98765432"
_EARLIEST_BIRTH_DATE = date(1900, 1, 1)

# Provinces of GB/T 2260 that appear in resident identity numbers: 11-15 north, 21-23
# north-east, 31-37 east, 41-46 south central, 50-54 south-west, 61-65 north-west, 71 Taiwan,
# 81 Hong Kong and 82 Macau. 83 appears in the residence permits for residents of Hong Kong,
# Macau and Taiwan (State Council regulation of 2018: 810000, 820000, 830000), which carry
# numbers in the same format and are accepted wherever an identity number is.
_IDENTITY_PROVINCES = frozenset(
    f"{code:02d}"
    for first, last in ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65))
    for code in range(first, last + 1)
) | frozenset({"71", "81", "82", "83"})

# A leading 9 marks the 18-digit Foreign Permanent Resident ID Card (2023 edition): 9, the
# province that issued it, a nationality code, then birth date, sequence and the same check
# character. It is a different document from a resident identity number (different issuer,
# its digits 2-6 are no region), so it gets its own code instead of being parsed as one.
_FOREIGN_PERMANENT_RESIDENT_MARK = "9"


@dataclass(frozen=True, slots=True)
class IdentityNumber:
    """A valid resident identity number. Build it with :func:`parse_identity_number`."""

    value: str
    region: str
    birth_date: date
    sequence: str
    sex: Literal["male", "female"]

    def __repr__(self) -> str:
        # region + birth date + sequence would give the number away, so none of them is shown.
        return f"IdentityNumber(value={mask_identity_number(self.value)!r})"


def identity_check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an identity number.

    Raises ``ValueError`` unless ``first17`` is exactly 17 ASCII digits.
    """
    if len(_require_str("first17", first17)) != 17 or _first_non_digit(first17) is not None:
        raise ValueError("first17 must be 17 ASCII digits")
    total = sum(
        int(digit) * weight for digit, weight in zip(first17, _IDENTITY_WEIGHTS, strict=True)
    )
    return _IDENTITY_CHECK_CHARACTERS[total % 11]


def parse_identity_number(text: str, *, today: date | None = None) -> IdentityNumber:
    """Parse and check a GB 11643-1999 resident identity number.

    Surrounding whitespace is ignored and a lowercase ``x`` is accepted; the value returned is
    upper case. ``today`` (default: the system's local date) bounds the birth date.

    Raises :class:`InvalidNumber` with one of the codes ``identity_number_length``,
    ``identity_number_character``, ``identity_number_check_character``,
    ``identity_number_foreign_permanent_resident``, ``identity_number_province``,
    ``identity_number_birth_date``, ``identity_number_birth_date_in_future``,
    ``identity_number_birth_date_too_early``; raises ``TypeError`` for arguments of the wrong
    type.
    """
    value = _require_str("text", text).strip().upper()
    if today is None:
        today = _local_today()
    elif not isinstance(today, date) or isinstance(today, datetime):
        raise TypeError(f"today must be a datetime.date, not {type(today).__name__}")

    _check_identity_characters(value)
    first17, check = value[:17], value[17]
    expected = identity_check_character(first17)
    if check != expected:
        raise InvalidNumber(
            "identity_number_check_character",
            f"check character should be {expected}, got {check}",
        )
    _check_identity_province(value[:2])
    birth_date = _identity_birth_date(value[6:14], today)
    sequence = value[14:17]
    return IdentityNumber(
        value=value,
        region=value[:6],
        birth_date=birth_date,
        sequence=sequence,
        sex="male" if int(sequence) % 2 else "female",
    )


def _check_identity_characters(value: str) -> None:
    if len(value) != _IDENTITY_LENGTH:
        raise InvalidNumber(
            "identity_number_length",
            f"an identity number has {_IDENTITY_LENGTH} characters, got {len(value)}",
        )
    position = _first_non_digit(value[:17])
    if position is not None:
        raise InvalidNumber(
            "identity_number_character",
            f"character {position} is not a digit (only the last character may be X)",
        )
    if value[17] not in _DIGITS and value[17] != "X":
        raise InvalidNumber(
            "identity_number_character",
            "character 18 must be a digit or X",
        )


def _check_identity_province(province: str) -> None:
    if province.startswith(_FOREIGN_PERMANENT_RESIDENT_MARK):
        raise InvalidNumber(
            "identity_number_foreign_permanent_resident",
            "this is the number of a Foreign Permanent Resident ID Card (it starts with 9), "
            "not a resident identity number",
        )
    if province not in _IDENTITY_PROVINCES:
        raise InvalidNumber(
            "identity_number_province",
            f"province code {province} (the first two digits) is not assigned",
        )


def _identity_birth_date(digits: str, today: date) -> date:
    try:
        birth_date = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InvalidNumber(
            "identity_number_birth_date",
            "birth date (characters 7-14) is not a calendar date",
        ) from None
    if birth_date > today:
        raise InvalidNumber(
            "identity_number_birth_date_in_future",
            "birth date (characters 7-14) is in the future",
        )
    if birth_date < _EARLIEST_BIRTH_DATE:
        raise InvalidNumber(
            "identity_number_birth_date_too_early",
            f"birth date (characters 7-14) is before {_EARLIEST_BIRTH_DATE.isoformat()}",
        )
    return birth_date


# --- Unified social credit code, GB 32100-2015 -----------------------------------------------

_CREDIT_CODE_LENGTH = 18
_CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE_VALUES = {character: index for index, character in enumerate(_CREDIT_CODE_ALPHABET)}
_CREDIT_CODE_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_CREDIT_CODE_EXCLUDED = frozenset("IOZSV")


@dataclass(frozen=True, slots=True)
class CreditCode:
    """A valid unified social credit code. Build it with :func:`parse_credit_code`.

    A credit code identifies an organisation, not a person, and is public (it is printed on
    the business licence), so its repr is not masked.
    """

    value: str
    registration_authority: str
    organization_type: str
    region: str
    organization_code: str


def credit_code_check_character(first17: str) -> str:
    """GB 32100-2015 check character (MOD 31) of the first 17 characters of a credit code.

    Raises ``ValueError`` unless ``first17`` is exactly 17 characters of the code alphabet.
    """
    _require_str("first17", first17)
    if len(first17) != 17 or not all(character in _CREDIT_CODE_VALUES for character in first17):
        raise ValueError("first17 must be 17 characters of the credit code alphabet")
    total = sum(
        _CREDIT_CODE_VALUES[character] * weight
        for character, weight in zip(first17, _CREDIT_CODE_WEIGHTS, strict=True)
    )
    return _CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def parse_credit_code(text: str) -> CreditCode:
    """Parse and check a GB 32100-2015 unified social credit code.

    Surrounding whitespace is ignored and letters are upper-cased. The registration authority
    and organisation type (characters 1-2) are not checked against the code lists of the
    standard, which the registries extend from time to time; the check character covers typos.

    Raises :class:`InvalidNumber` with one of the codes ``credit_code_length``,
    ``credit_code_character``, ``credit_code_region``, ``credit_code_check_character``; raises
    ``TypeError`` when ``text`` is not a str.
    """
    value = _require_str("text", text).strip().upper()
    if len(value) != _CREDIT_CODE_LENGTH:
        raise InvalidNumber(
            "credit_code_length",
            f"a unified social credit code has {_CREDIT_CODE_LENGTH} characters, got {len(value)}",
        )
    for position, character in enumerate(value, start=1):
        if character not in _CREDIT_CODE_VALUES:
            raise InvalidNumber(
                "credit_code_character", _credit_code_character_reason(position, character)
            )
    region = value[2:8]
    if _first_non_digit(region) is not None:
        raise InvalidNumber(
            "credit_code_region",
            "the region code (characters 3-8) must be 6 digits",
        )
    expected = credit_code_check_character(value[:17])
    if value[17] != expected:
        raise InvalidNumber(
            "credit_code_check_character",
            f"check character should be {expected}, got {value[17]}",
        )
    return CreditCode(
        value=value,
        registration_authority=value[0],
        organization_type=value[1],
        region=region,
        organization_code=value[8:17],
    )


def _credit_code_character_reason(position: int, character: str) -> str:
    if character in _CREDIT_CODE_EXCLUDED:
        return f"character {position} is not allowed (I, O, Z, S, V never appear)"
    return (
        f"character {position} is not allowed (only digits and the capital letters "
        "other than I, O, Z, S, V appear)"
    )


# --- Bank card number (PAN) ------------------------------------------------------------------

_BANK_CARD_MIN_LENGTH = 16
_BANK_CARD_MAX_LENGTH = 19
_UNIONPAY_PREFIX = "62"
UNIONPAY_WITHOUT_LUHN = "unionpay_without_luhn"


@dataclass(frozen=True, slots=True)
class BankCardNumber:
    """A bank card number accepted by :func:`parse_bank_card_number`.

    ``warning`` is ``None`` for a Luhn-valid number, or a code-like string saying why an
    exception was made (``"unionpay_without_luhn"``); callers record it with the linked card.
    """

    value: str
    luhn_valid: bool
    warning: str | None = None

    def __repr__(self) -> str:
        return (
            f"BankCardNumber(value={mask_bank_card_number(self.value)!r}, "
            f"luhn_valid={self.luhn_valid!r}, warning={self.warning!r})"
        )


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits ends with a correct Luhn (ISO/IEC 7812-1) check digit.

    Returns ``False`` for an empty string or one containing anything but ASCII digits.
    """
    if not _require_str("digits", digits) or _first_non_digit(digits) is not None:
        return False
    total = 0
    for index, character in enumerate(reversed(digits)):
        digit = int(character)
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def parse_bank_card_number(text: str) -> BankCardNumber:
    """Parse and check a bank card number (PAN).

    Spaces and hyphens are separators and are removed. Raises :class:`InvalidNumber` with one
    of the codes ``bank_card_number_character``, ``bank_card_number_length``,
    ``bank_card_number_luhn``; raises ``TypeError`` when ``text`` is not a str.
    """
    value = _require_str("text", text).strip().translate(_CARD_SEPARATORS)
    position = _first_non_digit(value)
    if position is not None:
        raise InvalidNumber(
            "bank_card_number_character",
            f"character {position} is not a digit (only spaces and hyphens may separate "
            "the digits)",
        )
    if not _BANK_CARD_MIN_LENGTH <= len(value) <= _BANK_CARD_MAX_LENGTH:
        raise InvalidNumber(
            "bank_card_number_length",
            f"a bank card number has {_BANK_CARD_MIN_LENGTH} to {_BANK_CARD_MAX_LENGTH} "
            f"digits, got {len(value)}",
        )
    if luhn_valid(value):
        return BankCardNumber(value=value, luhn_valid=True, warning=None)
    if value.startswith(_UNIONPAY_PREFIX):
        # Some older UnionPay cards were issued without a Luhn check digit (DESIGN.md §4).
        return BankCardNumber(value=value, luhn_valid=False, warning=UNIONPAY_WITHOUT_LUHN)
    raise InvalidNumber(
        "bank_card_number_luhn",
        "the check digit (the last digit) is wrong",
    )


# --- Transit card number ---------------------------------------------------------------------

_TRANSIT_MIN_LENGTH = 8
_TRANSIT_MAX_LENGTH = 20
_OPERATOR_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True, slots=True)
class TransitCardNumber:
    """A transit card number and the operator whose numbering it belongs to.

    Transit numbers have no published national format, so two operators may issue the same
    digits: a transit card is identified by the pair.
    """

    operator: str
    value: str

    def __repr__(self) -> str:
        return (
            f"TransitCardNumber(operator={self.operator!r}, "
            f"value={mask_transit_card_number(self.value)!r})"
        )


def parse_transit_card_number(text: str, operator: str) -> TransitCardNumber:
    """Parse a transit card number of 8-20 digits issued by ``operator``.

    Spaces and hyphens in the number are removed. ``operator`` is a slug such as ``tunion`` or
    ``city-metro`` (lower-cased; 1-40 characters of ``a-z 0-9 _ -``, starting with a letter or
    digit). Raises :class:`InvalidNumber` with one of the codes ``transit_card_operator``,
    ``transit_card_number_character``, ``transit_card_number_length``; raises ``TypeError``
    for arguments of the wrong type.
    """
    value = _require_str("text", text).strip().translate(_CARD_SEPARATORS)
    slug = _require_str("operator", operator).strip().lower()
    if _OPERATOR_SLUG.fullmatch(slug) is None:
        raise InvalidNumber(
            "transit_card_operator",
            "the operator must be 1-40 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    position = _first_non_digit(value)
    if position is not None:
        raise InvalidNumber(
            "transit_card_number_character",
            f"character {position} is not a digit (only spaces and hyphens may separate "
            "the digits)",
        )
    if not _TRANSIT_MIN_LENGTH <= len(value) <= _TRANSIT_MAX_LENGTH:
        raise InvalidNumber(
            "transit_card_number_length",
            f"a transit card number has {_TRANSIT_MIN_LENGTH} to {_TRANSIT_MAX_LENGTH} "
            f"digits, got {len(value)}",
        )
    return TransitCardNumber(operator=slug, value=value)


# --- Social-security card number -------------------------------------------------------------

_SOCIAL_SECURITY_CARD_MIN_LENGTH = 9
_SOCIAL_SECURITY_CARD_MAX_LENGTH = 20
_ASCII_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Lower case accepted on input, compared before upper-casing: str.upper() maps some
# non-ASCII letters onto ASCII ones (dotless i -> "I") or onto two ("ß" -> "SS").
_SOCIAL_SECURITY_CARD_CHARACTERS = frozenset("0123456789" + _ASCII_LETTERS + _ASCII_LETTERS.lower())


@dataclass(frozen=True, slots=True)
class SocialSecurityCardNumber:
    """The card number printed on a social-security card.

    Build it with :func:`parse_social_security_card_number`. It is not the social-security
    number: that is the holder's resident identity number (Social Insurance Law art. 58), and
    it stays the same when the card is reissued, while this number changes.
    """

    value: str

    def __repr__(self) -> str:
        return f"SocialSecurityCardNumber(value={mask_transit_card_number(self.value)!r})"


def parse_social_security_card_number(text: str) -> SocialSecurityCardNumber:
    """Parse the card number printed on a social-security card.

    No national format for this number is published, and cards of different provinces and
    generations differ, so the rule is deliberately broad: after removing spaces (people copy
    the number in groups) and upper-casing, 9-20 ASCII capital letters and digits.
    Hyphens and other punctuation are refused rather than dropped, because nothing printed
    on the cards uses them and silently dropping them could merge two different typings.
    There is no check character to verify.

    Raises :class:`InvalidNumber` with one of the codes
    ``social_security_card_number_character``, ``social_security_card_number_length``;
    raises ``TypeError`` when ``text`` is not a str.
    """
    compact = _require_str("text", text).strip().replace(" ", "")
    for position, character in enumerate(compact, start=1):
        if character not in _SOCIAL_SECURITY_CARD_CHARACTERS:
            raise InvalidNumber(
                "social_security_card_number_character",
                f"character {position} is not a letter A-Z or a digit",
            )
    if not _SOCIAL_SECURITY_CARD_MIN_LENGTH <= len(compact) <= _SOCIAL_SECURITY_CARD_MAX_LENGTH:
        raise InvalidNumber(
            "social_security_card_number_length",
            f"a social-security card number has {_SOCIAL_SECURITY_CARD_MIN_LENGTH} to "
            f"{_SOCIAL_SECURITY_CARD_MAX_LENGTH} characters, got {len(compact)}",
        )
    return SocialSecurityCardNumber(value=compact.upper())
