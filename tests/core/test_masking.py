"""Masked forms of personal numbers (onecard.core.masking, DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onecard.core.masking import (
    mask_bank_card_number,
    mask_email,
    mask_identity_number,
    mask_phone,
    mask_transit_card_number,
)

DIGITS = "0123456789"
MASKS: list[Callable[[str], str]] = [
    mask_bank_card_number,
    mask_email,
    mask_identity_number,
    mask_phone,
    mask_transit_card_number,
]


def _shown(masked: str) -> int:
    """How many characters of the original a mask shows (separators excluded)."""
    return sum(1 for character in masked if character not in "* ")


# --- identity numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("11010519491231002X", "1101**********002X"),
        ("32010219900101123X", "3201**********123X"),
        ("110105491231002", "110********1002"),  # a 15-digit number from before 1999
        ("1234567890", "12*****890"),
        ("12345678", "12****78"),
        ("1234", "****"),
        ("12", "**"),
        ("", ""),
    ],
)
def test_mask_identity_number(value: str, masked: str) -> None:
    assert mask_identity_number(value) == masked


@given(st.text(alphabet=DIGITS, min_size=18, max_size=18))
def test_identity_mask_never_contains_the_middle(value: str) -> None:
    masked = mask_identity_number(value)
    assert masked == value[:4] + "*" * 10 + value[14:]


# --- bank card numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("6222021234561234", "6222 **** **** 1234"),
        ("6222 0212 3456 1234", "6222 **** **** 1234"),
        ("6222-0212-3456-1234", "6222 **** **** 1234"),
        ("62220212345612345", "6222 **** **** * 2345"),
        ("622202123456123456", "6222 **** **** ** 3456"),
        ("6222021234561234567", "6222 **** **** *** 4567"),
        ("622202123456", "622 **** ** 456"),
        ("1234", "****"),
        ("", ""),
    ],
)
def test_mask_bank_card_number(value: str, masked: str) -> None:
    assert mask_bank_card_number(value) == masked


@given(st.text(alphabet=DIGITS, min_size=16, max_size=19))
def test_bank_card_mask_keeps_four_and_four_and_shows_the_length(value: str) -> None:
    masked = mask_bank_card_number(value)
    assert masked.startswith(value[:4] + " ")
    assert masked.endswith(" " + value[-4:])
    middle = masked[5:-5]
    assert set(middle) <= {"*", " "}
    assert middle.count("*") == len(value) - 8
    assert all(len(group) <= 4 for group in middle.split(" "))


# --- transit card numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("3104240012345678", "************5678"),
        ("12345678", "****5678"),
        ("1234567", "****567"),
        ("123", "***"),
        ("", ""),
    ],
)
def test_mask_transit_card_number(value: str, masked: str) -> None:
    assert mask_transit_card_number(value) == masked


@given(st.text(alphabet=DIGITS, min_size=8, max_size=20))
def test_transit_mask_shows_only_the_last_four(value: str) -> None:
    assert mask_transit_card_number(value) == "*" * (len(value) - 4) + value[-4:]


# --- phones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+8613812345678", "+86138****5678"),
        ("02588889999", "025******99"),  # 11 digits but a landline: not a mobile
        ("+4915112345678", "+49*********78"),
        ("88889999", "88****99"),
        ("123456789", "123****89"),
        ("1234", "****"),
        ("", ""),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@given(st.sampled_from("3456789"), st.text(alphabet=DIGITS, min_size=9, max_size=9))
def test_chinese_mobile_mask_hides_the_middle_four(second: str, rest: str) -> None:
    value = "1" + second + rest
    assert mask_phone(value) == value[:3] + "****" + value[7:]


# --- e-mail addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("zhang.san@example.cn", "z***@example.cn"),
        ("zs@example.cn", "z***@example.cn"),
        ("z@example.cn", "***@example.cn"),
        ("@example.cn", "***@example.cn"),
        ('"a@b"@example.cn', '"***@example.cn'),
        ("not-an-address", "***"),
        ("", "***"),
    ],
)
def test_mask_email(value: str, masked: str) -> None:
    assert mask_email(value) == masked


@given(st.emails())
def test_email_mask_hides_the_local_part_and_its_length(value: str) -> None:
    domain = value.rpartition("@")[2]
    masked = mask_email(value)
    assert masked.endswith("***@" + domain)
    assert len(masked) <= len(domain) + 5


# --- every mask ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("value", [None, 13812345678, b"13812345678"])
def test_masks_take_only_str(mask: Callable[[str], str], value: object) -> None:
    with pytest.raises(TypeError, match="value must be a str"):
        mask(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mask", [mask_identity_number, mask_bank_card_number, mask_transit_card_number]
)
@given(value=st.text(alphabet=DIGITS + "X", max_size=40))
def test_number_masks_never_show_more_than_half(mask: Callable[[str], str], value: str) -> None:
    masked = mask(value)
    assert _shown(masked) <= len(value) // 2
    assert masked.count("*") >= min(len(value), 4)


@pytest.mark.parametrize("mask", MASKS)
@given(value=st.text(max_size=40))
def test_masks_never_raise(mask: Callable[[str], str], value: str) -> None:
    assert isinstance(mask(value), str)
