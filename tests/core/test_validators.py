"""Validators for national numbers (onecard.core.validators, DESIGN.md §4).

Known-answer vectors come from tests/vectors/ (origins in its README). The property-based
tests compare against the ``_reference_*`` helpers below: deliberately naive transcriptions of
the published algorithms, written without looking at the module under test.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from onecard.core import validators
from onecard.core.validators import (
    BankCardNumber,
    CreditCode,
    IdentityNumber,
    InvalidNumber,
    SocialSecurityCardNumber,
    TransitCardNumber,
    credit_code_check_character,
    identity_check_character,
    luhn_valid,
    parse_bank_card_number,
    parse_credit_code,
    parse_identity_number,
    parse_social_security_card_number,
    parse_transit_card_number,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
TODAY = date(2025, 6, 30)  # the date the identity-number vectors are checked against
VALID_ID = "11010519491231002X"

PROVINCES = [
    *(f"{n}" for n in range(11, 16)),
    *(f"{n}" for n in range(21, 24)),
    *(f"{n}" for n in range(31, 38)),
    *(f"{n}" for n in range(41, 47)),
    *(f"{n}" for n in range(50, 55)),
    *(f"{n}" for n in range(61, 66)),
    "71",
    "81",
    "82",
    "83",
]
UNASSIGNED_PROVINCES = [f"{n:02d}" for n in range(90) if f"{n:02d}" not in PROVINCES]
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DIGITS = "0123456789"
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + n) for n in range(1, 9))  # "12345678", full width


# --- reference implementations of the published algorithms ----------------------------------


def _reference_identity_check(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = 0
    for i in range(17):
        total += int(first17[i]) * weights[i]
    return "10X98765432"[total % 11]


def _reference_credit_check(first17: str) -> str:
    total = 0
    for i in range(17):
        total += CREDIT_ALPHABET.index(first17[i]) * (3**i % 31)
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def _reference_luhn_check_digit(payload: str) -> str:
    total = 0
    for i, character in enumerate(reversed(payload)):
        digit = int(character)
        if i % 2 == 0:  # doubled: the check digit will sit to the right of this one
            digit = digit * 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return str((10 - total % 10) % 10)


def _read_vectors(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (VECTORS / name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        value, label = line.rsplit(maxsplit=1)
        rows.append((value, label))
    return rows


def _failure(call: Callable[[], object]) -> InvalidNumber | None:
    """The InvalidNumber raised by ``call``, or None when it succeeds."""
    try:
        call()
    except InvalidNumber as exc:
        return exc
    return None


def _raises(code: str) -> pytest.RaisesExc[InvalidNumber]:
    return pytest.raises(InvalidNumber, check=lambda exc: exc.code == code)


# --- strategies ------------------------------------------------------------------------------


@st.composite
def identity_numbers(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(PROVINCES))
    rest_of_region = draw(st.text(alphabet=DIGITS, min_size=4, max_size=4))
    birth = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    sequence = draw(st.text(alphabet=DIGITS, min_size=3, max_size=3))
    first17 = province + rest_of_region + birth.strftime("%Y%m%d") + sequence
    return first17 + _reference_identity_check(first17)


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    head = draw(st.text(alphabet=CREDIT_ALPHABET, min_size=2, max_size=2))
    region = draw(st.text(alphabet=DIGITS, min_size=6, max_size=6))
    organization = draw(st.text(alphabet=CREDIT_ALPHABET, min_size=9, max_size=9))
    first17 = head + region + organization
    return first17 + _reference_credit_check(first17)


@st.composite
def luhn_numbers(draw: st.DrawFn, min_size: int = 1, max_size: int = 30) -> str:
    payload = draw(st.text(alphabet=DIGITS, min_size=min_size - 1, max_size=max_size - 1))
    return payload + _reference_luhn_check_digit(payload)


# --- InvalidNumber ---------------------------------------------------------------------------


def test_invalid_number_is_a_value_error_whose_str_is_the_reason() -> None:
    exc = InvalidNumber("identity_number_length", "an identity number has 18 characters, got 3")
    assert isinstance(exc, ValueError)
    assert exc.code == "identity_number_length"
    assert exc.reason == "an identity number has 18 characters, got 3"
    assert str(exc) == exc.reason


def test_invalid_number_survives_pickling() -> None:
    pickled = pickle.dumps(InvalidNumber("credit_code_length", "too short"))
    exc = pickle.loads(pickled)  # noqa: S301 - bytes this test just made
    assert (exc.code, exc.reason, str(exc)) == ("credit_code_length", "too short", "too short")


# --- identity numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "label"), _read_vectors("identity_numbers.txt"))
def test_identity_number_vectors(text: str, label: str) -> None:
    if label == "valid":
        assert parse_identity_number(text, today=TODAY).value == text.upper()
    else:
        with _raises(label.removeprefix("invalid:")):
            parse_identity_number(text, today=TODAY)


def test_design_example_identity_number_parts() -> None:
    parsed = parse_identity_number(VALID_ID, today=TODAY)
    assert parsed == IdentityNumber(
        value=VALID_ID,
        region="110105",
        birth_date=date(1949, 12, 31),
        sequence="002",
        sex="female",
    )


def test_identity_number_odd_sequence_is_male() -> None:
    assert parse_identity_number("320102199001011232", today=TODAY).sex == "male"


def test_identity_number_is_stripped_and_upper_cased() -> None:
    assert parse_identity_number(" \t11010519491231002x\n", today=TODAY).value == VALID_ID


def test_identity_number_inner_space_is_rejected() -> None:
    with _raises("identity_number_length"):
        parse_identity_number("110105 19491231002X", today=TODAY)


def test_identity_number_with_non_ascii_digits_is_rejected() -> None:
    # ARABIC-INDIC DIGIT ONE: str.isdigit() accepts it, the standard does not.
    with _raises("identity_number_character"):
        parse_identity_number("\u0661" + VALID_ID[1:], today=TODAY)


def test_birth_date_today_is_accepted_and_tomorrow_is_not() -> None:
    born_today = "650102202506300014"
    assert parse_identity_number(born_today, today=TODAY).birth_date == TODAY
    with _raises("identity_number_birth_date_in_future"):
        parse_identity_number(born_today, today=date(2025, 6, 29))


def test_today_defaults_to_the_local_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validators, "_local_today", lambda: date(2025, 6, 29))
    with _raises("identity_number_birth_date_in_future"):
        parse_identity_number("650102202506300014")
    monkeypatch.setattr(validators, "_local_today", lambda: TODAY)
    assert parse_identity_number("650102202506300014").birth_date == TODAY


@pytest.mark.parametrize("province", UNASSIGNED_PROVINCES)
def test_unassigned_province_is_rejected(province: str) -> None:
    first17 = province + "0000" + "19800101" + "001"
    with _raises("identity_number_province"):
        parse_identity_number(first17 + _reference_identity_check(first17), today=TODAY)


@pytest.mark.parametrize("province", [f"9{n}" for n in range(10)])
def test_foreign_permanent_resident_number_is_not_a_resident_identity_number(
    province: str,
) -> None:
    first17 = province + "0156" + "19800101" + "001"
    with _raises("identity_number_foreign_permanent_resident"):
        parse_identity_number(first17 + _reference_identity_check(first17), today=TODAY)


def test_check_character_reason_names_expected_and_actual_only() -> None:
    with pytest.raises(InvalidNumber) as caught:
        parse_identity_number("110105194912310025", today=TODAY)
    assert caught.value.reason == "check character should be X, got 5"


def test_identity_number_repr_is_masked() -> None:
    parsed = parse_identity_number(VALID_ID, today=TODAY)
    assert repr(parsed) == "IdentityNumber(value='1101**********002X')"
    for secret in (VALID_ID, "19491231", "0519491231"):
        assert secret not in repr(parsed)
        assert secret not in str(parsed)


def test_identity_number_is_frozen() -> None:
    parsed = parse_identity_number(VALID_ID, today=TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.value = "110105194912310038"  # type: ignore[misc]


@pytest.mark.parametrize("text", [None, 11010519491231002, b"11010519491231002X", ["1"]])
def test_identity_number_text_must_be_str(text: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_identity_number(text, today=TODAY)  # type: ignore[arg-type]


@pytest.mark.parametrize("today", ["2025-06-30", 20250630, datetime(2025, 6, 30, 12, 0)])
def test_identity_number_today_must_be_a_date(today: object) -> None:
    with pytest.raises(TypeError, match=r"today must be a datetime\.date"):
        parse_identity_number(VALID_ID, today=today)  # type: ignore[arg-type]


def test_identity_number_today_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        parse_identity_number(VALID_ID, TODAY)  # type: ignore[misc]


@given(identity_numbers())
def test_generated_identity_numbers_parse_into_their_parts(number: str) -> None:
    parsed = parse_identity_number(number, today=TODAY)
    assert parsed.value == number
    assert parsed.region == number[:6]
    assert parsed.birth_date.strftime("%Y%m%d") == number[6:14]
    assert parsed.sequence == number[14:17]
    assert parsed.sex == ("male" if int(number[16]) % 2 else "female")
    assert parse_identity_number(number.lower(), today=TODAY) == parsed


@given(identity_numbers(), st.integers(min_value=0, max_value=17), st.sampled_from(DIGITS + "X"))
def test_any_single_character_change_is_caught_by_the_check_character(
    number: str, position: int, replacement: str
) -> None:
    assume(replacement != number[position])
    assume(position == 17 or replacement != "X")
    changed = number[:position] + replacement + number[position + 1 :]
    with _raises("identity_number_check_character"):
        parse_identity_number(changed, today=TODAY)


@given(identity_numbers(), st.integers(min_value=0, max_value=15))
def test_any_swap_of_adjacent_digits_is_caught_by_the_check_character(
    number: str, position: int
) -> None:
    assume(number[position] != number[position + 1])
    swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
    with _raises("identity_number_check_character"):
        parse_identity_number(swapped, today=TODAY)


@given(st.text(max_size=40))
def test_identity_number_never_fails_otherwise_and_never_echoes_the_input(text: str) -> None:
    exc = _failure(lambda: parse_identity_number(text, today=TODAY))
    if exc is not None:
        assert exc.code.startswith("identity_number_")
        assert len(text.strip()) < 8 or text.strip() not in exc.reason


@given(
    identity_numbers(),
    st.integers(min_value=0, max_value=17),
    st.sampled_from(DIGITS + "XA "),
    st.dates(),
)
def test_reasons_never_contain_the_number_or_its_birth_date(
    number: str, position: int, replacement: str, today: date
) -> None:
    changed = number[:position] + replacement + number[position + 1 :]
    exc = _failure(lambda: parse_identity_number(changed, today=today))
    if exc is not None:
        for secret in (number, changed, number[6:14], changed[6:14], number[:6] + number[14:]):
            assert secret not in exc.reason


@given(identity_numbers())
def test_identity_check_character_matches_the_reference(number: str) -> None:
    assert identity_check_character(number[:17]) == number[17]


@pytest.mark.parametrize(
    "first17",
    [
        "",
        "1101051949123100",
        "110105194912310021",
        "1101O519491231002",
        "\uff11" + "1010519491231002",
    ],
)
def test_identity_check_character_needs_17_ascii_digits(first17: str) -> None:
    with pytest.raises(ValueError, match="first17 must be 17 ASCII digits"):
        identity_check_character(first17)


def test_identity_check_character_needs_a_str() -> None:
    with pytest.raises(TypeError, match="first17 must be a str"):
        identity_check_character(11010519491231002)  # type: ignore[arg-type]


# --- unified social credit codes -------------------------------------------------------------


@pytest.mark.parametrize(("text", "label"), _read_vectors("credit_codes.txt"))
def test_credit_code_vectors(text: str, label: str) -> None:
    if label == "valid":
        assert parse_credit_code(text).value == text.upper()
    else:
        with _raises(label.removeprefix("invalid:")):
            parse_credit_code(text)


def test_design_example_credit_code_parts() -> None:
    assert parse_credit_code("91350100M000100Y43") == CreditCode(
        value="91350100M000100Y43",
        registration_authority="9",
        organization_type="1",
        region="350100",
        organization_code="M000100Y4",
    )


def test_credit_code_is_stripped_and_upper_cased() -> None:
    assert parse_credit_code("  91350100m000100y43 ").value == "91350100M000100Y43"


@pytest.mark.parametrize("letter", "IOZSV")
@pytest.mark.parametrize("position", [1, 5, 12, 18])
def test_forbidden_letter_reason_names_its_position(letter: str, position: int) -> None:
    code = "91110000600037341L"
    with pytest.raises(InvalidNumber) as caught:
        parse_credit_code(code[: position - 1] + letter + code[position:])
    assert caught.value.code == "credit_code_character"
    assert caught.value.reason == (
        f"character {position} is not allowed (I, O, Z, S, V never appear)"
    )


@pytest.mark.parametrize("text", [None, 91110000600037341, b"91110000600037341L"])
def test_credit_code_text_must_be_str(text: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_credit_code(text)  # type: ignore[arg-type]


@given(credit_codes())
def test_generated_credit_codes_round_trip(code: str) -> None:
    parsed = parse_credit_code(code)
    assert parsed.value == code
    assert (
        parsed.registration_authority
        + parsed.organization_type
        + parsed.region
        + parsed.organization_code
        == code[:17]
    )
    assert parse_credit_code(code.lower()) == parsed


@given(credit_codes(), st.integers(min_value=0, max_value=17), st.sampled_from(CREDIT_ALPHABET))
def test_any_single_character_change_of_a_credit_code_is_caught(
    code: str, position: int, replacement: str
) -> None:
    assume(replacement != code[position])
    changed = code[:position] + replacement + code[position + 1 :]
    in_region = 2 <= position <= 7 and replacement not in DIGITS
    with _raises("credit_code_region" if in_region else "credit_code_check_character"):
        parse_credit_code(changed)


@given(st.text(max_size=40))
def test_credit_code_never_fails_otherwise(text: str) -> None:
    exc = _failure(lambda: parse_credit_code(text))
    if exc is not None:
        assert exc.code.startswith("credit_code_")


@given(credit_codes())
def test_credit_code_check_character_matches_the_reference(code: str) -> None:
    assert credit_code_check_character(code[:17]) == code[17]


@pytest.mark.parametrize(
    "first17", ["", "9111000060003734", "91110000600037341L", "9111000060003734I"]
)
def test_credit_code_check_character_needs_17_alphabet_characters(first17: str) -> None:
    with pytest.raises(ValueError, match="first17 must be 17 characters"):
        credit_code_check_character(first17)


def test_credit_code_check_character_needs_a_str() -> None:
    with pytest.raises(TypeError, match="first17 must be a str"):
        credit_code_check_character(None)  # type: ignore[arg-type]


# --- Luhn ------------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", ["0", "18", "79927398713", "4111111111111111"])
def test_luhn_known_valid(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize(
    "digits", ["", "1", "79927398710", "4111111111111112", "4111 1111 1111 1111", "\uff14\uff11"]
)
def test_luhn_known_invalid(digits: str) -> None:
    assert not luhn_valid(digits)


@pytest.mark.parametrize("digits", [None, 4111111111111111, b"18"])
def test_luhn_digits_must_be_str(digits: object) -> None:
    with pytest.raises(TypeError, match="digits must be a str"):
        luhn_valid(digits)  # type: ignore[arg-type]


@given(st.text(alphabet=DIGITS, max_size=30))
def test_exactly_one_appended_digit_is_luhn_valid(payload: str) -> None:
    valid = [d for d in DIGITS if luhn_valid(payload + d)]
    assert valid == [_reference_luhn_check_digit(payload)]


@given(luhn_numbers(min_size=2), st.data())
def test_any_single_digit_change_breaks_luhn(number: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    replacement = data.draw(st.sampled_from(DIGITS).filter(lambda d: d != number[position]))
    assert luhn_valid(number)
    assert not luhn_valid(number[:position] + replacement + number[position + 1 :])


# --- bank card numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "label"), _read_vectors("bank_card_numbers.txt"))
def test_bank_card_number_vectors(text: str, label: str) -> None:
    kind, _, detail = label.partition(":")
    if kind == "valid":
        parsed = parse_bank_card_number(text)
        assert parsed.value == text.replace(" ", "").replace("-", "")
        assert parsed.warning == (detail or None)
        assert parsed.luhn_valid is (not detail)
    else:
        with _raises(detail):
            parse_bank_card_number(text)


def test_unionpay_card_failing_luhn_is_accepted_with_a_warning() -> None:
    assert parse_bank_card_number("6222 0212 3456 7890") == BankCardNumber(
        value="6222021234567890", luhn_valid=False, warning="unionpay_without_luhn"
    )


def test_bank_card_number_repr_is_masked() -> None:
    parsed = parse_bank_card_number("4111-1111-1111-1111")
    assert repr(parsed) == (
        "BankCardNumber(value='4111 **** **** 1111', luhn_valid=True, warning=None)"
    )
    assert "4111111111111111" not in str(parsed)


@pytest.mark.parametrize("text", [None, 4111111111111111, b"4111111111111111"])
def test_bank_card_number_text_must_be_str(text: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_bank_card_number(text)  # type: ignore[arg-type]


@given(luhn_numbers(min_size=16, max_size=19), st.data())
def test_bank_card_numbers_accept_any_spaces_and_hyphens(number: str, data: st.DataObject) -> None:
    separators = st.text(alphabet=" -", max_size=2)
    written = "".join(data.draw(separators) + digit for digit in number)
    parsed = parse_bank_card_number(written)
    assert parsed.value == number
    assert parsed.luhn_valid


@given(luhn_numbers(min_size=16, max_size=19), st.data())
def test_single_digit_change_of_a_pan_is_rejected_unless_unionpay(
    number: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    replacement = data.draw(st.sampled_from(DIGITS).filter(lambda d: d != number[position]))
    changed = number[:position] + replacement + number[position + 1 :]
    if changed.startswith("62"):
        assert parse_bank_card_number(changed).warning == "unionpay_without_luhn"
    else:
        with _raises("bank_card_number_luhn"):
            parse_bank_card_number(changed)


@given(st.text(max_size=40))
def test_bank_card_number_never_fails_otherwise_and_never_echoes(text: str) -> None:
    exc = _failure(lambda: parse_bank_card_number(text))
    if exc is not None:
        assert exc.code.startswith("bank_card_number_")
        assert len(text.strip()) < 8 or text.strip() not in exc.reason


# --- transit card numbers --------------------------------------------------------------------


def test_transit_card_number_is_compacted_and_operator_lowered() -> None:
    assert parse_transit_card_number(" 3104 2400-1234 5678 ", "T-Union") == TransitCardNumber(
        operator="t-union", value="3104240012345678"
    )


@pytest.mark.parametrize("number", ["12345678", "1" * 20])
def test_transit_card_number_length_bounds_are_inclusive(number: str) -> None:
    assert parse_transit_card_number(number, "tunion").value == number


@pytest.mark.parametrize("number", ["1234567", "1" * 21, ""])
def test_transit_card_number_length_outside_bounds(number: str) -> None:
    with _raises("transit_card_number_length"):
        parse_transit_card_number(number, "tunion")


@pytest.mark.parametrize("number", ["1234567A", "1234.5678", FULLWIDTH_DIGITS])
def test_transit_card_number_must_be_ascii_digits(number: str) -> None:
    with _raises("transit_card_number_character"):
        parse_transit_card_number(number, "tunion")


@pytest.mark.parametrize("operator", ["tunion", "city-metro", "0", "a_b", "x" * 40, "CITY-METRO"])
def test_transit_operator_slugs_accepted(operator: str) -> None:
    assert parse_transit_card_number("12345678", operator).operator == operator.lower()


@pytest.mark.parametrize(
    "operator", ["", "   ", "-metro", "_metro", "city metro", "city.metro", "x" * 41, "地铁"]
)
def test_transit_operator_must_be_a_slug(operator: str) -> None:
    with _raises("transit_card_operator"):
        parse_transit_card_number("12345678", operator)


@pytest.mark.parametrize("text", [None, 12345678, b"12345678"])
def test_transit_card_number_text_must_be_str(text: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_transit_card_number(text, "tunion")  # type: ignore[arg-type]


@pytest.mark.parametrize("operator", [None, 1, b"tunion"])
def test_transit_operator_must_be_str(operator: object) -> None:
    with pytest.raises(TypeError, match="operator must be a str"):
        parse_transit_card_number("12345678", operator)  # type: ignore[arg-type]


def test_transit_card_number_repr_is_masked() -> None:
    parsed = parse_transit_card_number("3104240012345678", "tunion")
    assert repr(parsed) == "TransitCardNumber(operator='tunion', value='************5678')"


@given(st.text(alphabet=DIGITS, min_size=8, max_size=20))
def test_any_8_to_20_digits_are_a_transit_card_number(number: str) -> None:
    assert parse_transit_card_number(number, "tunion").value == number


def test_today_is_the_china_date_of_the_injectable_clock() -> None:
    from datetime import UTC, datetime

    from onecard.core.clock import FrozenClock, use_clock

    # 2026-01-01 16:30 UTC is already 2 January in China (UTC+8).
    with use_clock(FrozenClock(datetime(2026, 1, 1, 16, 30, tzinfo=UTC))):
        assert validators._local_today() == date(2026, 1, 2)


# --- social-security card numbers ------------------------------------------------------------

ALPHANUMERIC = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_social_security_card_number_is_compacted_and_upper_cased() -> None:
    assert parse_social_security_card_number(" a12 345 678 ") == SocialSecurityCardNumber(
        value="A12345678"
    )


@pytest.mark.parametrize("number", ["123456789", "A" * 20, "h01234567X"])
def test_social_security_card_number_length_bounds_are_inclusive(number: str) -> None:
    assert parse_social_security_card_number(number).value == number.upper()


@pytest.mark.parametrize("number", ["12345678", "A" * 21, "", "   "])
def test_social_security_card_number_length_outside_bounds(number: str) -> None:
    with _raises("social_security_card_number_length"):
        parse_social_security_card_number(number)


@pytest.mark.parametrize(
    ("number", "position"),
    [
        ("A1234-5678", 6),  # hyphens are refused, not dropped
        ("A1234.5678", 6),
        ("A1234\u30005678", 6),  # an ideographic space inside is not a space we remove
        (FULLWIDTH_DIGITS + "9", 1),
        ("\u0131" + "12345678", 1),  # dotless i would upper-case to an ASCII I
        ("\u00df" + "12345678", 1),  # sharp s would upper-case to two letters
    ],
)
def test_social_security_card_number_characters(number: str, position: int) -> None:
    with _raises("social_security_card_number_character") as info:
        parse_social_security_card_number(number)
    assert info.value.reason == f"character {position} is not a letter A-Z or a digit"


@pytest.mark.parametrize("text", [None, 123456789, b"123456789"])
def test_social_security_card_number_text_must_be_str(text: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        parse_social_security_card_number(text)  # type: ignore[arg-type]


def test_social_security_card_number_repr_is_masked() -> None:
    parsed = parse_social_security_card_number("A12345678")
    assert repr(parsed) == "SocialSecurityCardNumber(value='*****5678')"


@given(st.text(alphabet=ALPHANUMERIC + ALPHANUMERIC.lower(), min_size=9, max_size=20))
def test_any_9_to_20_letters_and_digits_are_a_social_security_card_number(number: str) -> None:
    assert parse_social_security_card_number(number).value == number.upper()


@given(st.text(max_size=40))
def test_social_security_card_number_never_fails_otherwise_and_never_echoes(text: str) -> None:
    failure = _failure(lambda: parse_social_security_card_number(text))
    if failure is not None:
        assert failure.code in {
            "social_security_card_number_character",
            "social_security_card_number_length",
        }
        # Space-free runs of the reasons that hold a digit are at most two characters long,
        # so a value of four or more with a digit inside would only appear by being echoed.
        compact = text.strip().replace(" ", "")
        if len(compact) >= 4 and any(c in DIGITS for c in compact):
            assert compact not in failure.reason
