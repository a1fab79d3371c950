"""Numbers of the virtual card (onecard.card.numbers): format, Luhn check digit, the parser's
codes. The Luhn reference below is a naive transcription of ISO/IEC 7812-1 Annex B, written
apart from the module under test; core's ``luhn_valid`` is the second, independent check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onecard.card.numbers import (
    CARD_NUMBER_LENGTH,
    ISSUER_PREFIX,
    format_card_number,
    luhn_check_digit,
    new_card_number,
    parse_card_number,
)
from onecard.core.validators import InvalidNumber, luhn_valid

DIGITS = "0123456789"


def _reference_check_digit(payload: str) -> str:
    digits = [int(c) for c in payload] + [0]
    total = 0
    for position_from_right, digit in enumerate(reversed(digits)):
        if position_from_right % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _raises(code: str) -> pytest.RaisesExc[InvalidNumber]:
    return pytest.raises(InvalidNumber, check=lambda exc: exc.code == code)


def test_new_numbers_have_the_documented_format() -> None:
    for _ in range(200):
        number = new_card_number()
        assert len(number) == CARD_NUMBER_LENGTH == 16
        assert number.isascii()
        assert number.isdigit()
        assert number.startswith(ISSUER_PREFIX)
        assert luhn_valid(number)
        assert parse_card_number(number) == number


def test_new_numbers_are_random() -> None:
    assert len({new_card_number() for _ in range(1000)}) == 1000


def test_known_answer() -> None:
    # 915601234567890: doubling every second digit from the right gives the sum 64, so the
    # check digit is 6 (worked by hand).
    assert luhn_check_digit("915601234567890") == "6"
    assert parse_card_number("9156 0123 4567 8906") == "9156012345678906"


@given(st.text(alphabet=DIGITS, min_size=1, max_size=30))
def test_check_digit_matches_the_reference(payload: str) -> None:
    digit = luhn_check_digit(payload)
    assert digit == _reference_check_digit(payload)
    assert luhn_valid(payload + digit)


@pytest.mark.parametrize("payload", ["", "12a4", "\uff11\uff12\uff13"])  # full-width digits
def test_check_digit_needs_ascii_digits(payload: str) -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        luhn_check_digit(payload)


def test_separators_are_accepted() -> None:
    number = new_card_number()
    assert parse_card_number(f" {format_card_number(number)} ") == number
    assert parse_card_number("-".join(format_card_number(number).split())) == number


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("9156 0123 4567 890", "card_number_length"),
        ("9156 0123 4567 89070", "card_number_length"),
        ("", "card_number_length"),
        ("9156 0123 4567 890X", "card_number_character"),
        ("\uff11\uff12\uff13\uff14", "card_number_character"),  # full-width digits
        ("4111 1111 1111 1111", "card_number_prefix"),  # a bank PAN is no card number
        ("9156 0123 4567 8907", "card_number_check_digit"),
    ],
)
def test_parse_refusals(text: str, code: str) -> None:
    with _raises(code) as info:
        parse_card_number(text)
    compact = text.replace(" ", "")
    assert not compact or compact not in info.value.reason  # a reason never repeats the number


@given(st.text(alphabet=DIGITS, min_size=11, max_size=11), st.data())
def test_any_single_digit_change_is_caught(random_digits: str, data: st.DataObject) -> None:
    payload = ISSUER_PREFIX + random_digits
    number = payload + _reference_check_digit(payload)
    position = data.draw(st.integers(min_value=len(ISSUER_PREFIX), max_value=15))
    digit = data.draw(st.sampled_from(DIGITS).filter(lambda d: d != number[position]))
    changed = number[:position] + digit + number[position + 1 :]
    with _raises("card_number_check_digit"):
        parse_card_number(changed)


def test_parse_needs_a_str() -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_card_number(9156012345678906)  # type: ignore[arg-type]


def test_format_groups_by_four() -> None:
    assert format_card_number("9156012345678906") == "9156 0123 4567 8906"
