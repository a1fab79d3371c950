"""Base45 (RFC 9285): the RFC's examples, strict decoding of everything §4.4 refuses, and
agreement with a plain group-by-group reference decoder on any text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onecard.card.base45 import (
    ALPHABET,
    Base45Error,
    Base45ValueOutOfRange,
    InvalidBase45Character,
    InvalidBase45Length,
    b45decode,
    b45encode,
)

# RFC 9285 §4.3 and §4.4 examples.
RFC9285_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


def _reference_decode(text: str) -> bytes:
    """RFC 9285 §4.3 as written: one group at a time."""
    if len(text) % 3 == 1:
        raise InvalidBase45Length(text)
    digits = []
    for char in text:
        if char not in ALPHABET:
            raise InvalidBase45Character(char)
        digits.append(ALPHABET.index(char))
    out = bytearray()
    for start in range(0, len(digits), 3):
        group = digits[start : start + 3]
        value = sum(digit * 45**i for i, digit in enumerate(group))
        if value > (0xFFFF if len(group) == 3 else 0xFF):
            raise Base45ValueOutOfRange(text)
        out += value.to_bytes(2 if len(group) == 3 else 1, "big")
    return bytes(out)


@pytest.mark.parametrize(("data", "text"), RFC9285_EXAMPLES)
def test_rfc9285_examples_encode_and_decode(data: bytes, text: str) -> None:
    assert b45encode(data) == text
    assert b45decode(text) == data


def test_rfc9285_invalid_example_ggw_is_out_of_range() -> None:
    with pytest.raises(Base45ValueOutOfRange):
        b45decode("GGW")  # 65536


def test_largest_values_decode_and_one_more_is_refused() -> None:
    assert b45decode("FGW") == b"\xff\xff"
    assert b45decode("U5") == b"\xff"
    with pytest.raises(Base45ValueOutOfRange, match="final pair"):
        b45decode("V5")  # 256
    with pytest.raises(Base45ValueOutOfRange, match="group 2"):
        b45decode("FGW" + "000" + "GGW" + "000")


@pytest.mark.parametrize("text", ["A", "BB8A", "%69 VD92EX"])
def test_length_of_3k_plus_1_is_refused(text: str) -> None:
    with pytest.raises(InvalidBase45Length):
        b45decode(text)


@pytest.mark.parametrize("text", ["bb8", "BB!", "BB8\n00", "BB€", "=BB"])
def test_characters_outside_the_alphabet_are_refused(text: str) -> None:
    with pytest.raises(InvalidBase45Character):
        b45decode(text)


def test_errors_are_value_errors_and_wrong_types_are_type_errors() -> None:
    assert issubclass(Base45Error, ValueError)
    with pytest.raises(TypeError):
        b45decode(b"BB8")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        b45encode("AB")  # type: ignore[arg-type]


def test_empty_input() -> None:
    assert b45encode(b"") == ""
    assert b45decode("") == b""


@given(st.binary(max_size=700))
def test_round_trip(data: bytes) -> None:
    text = b45encode(data)
    assert set(text) <= set(ALPHABET)
    assert len(text) == len(data) // 2 * 3 + len(data) % 2 * 2
    assert b45decode(text) == data


@given(
    st.text(alphabet=ALPHABET, max_size=400)
    | st.text(alphabet="UVWXYZ $%*+-./:", max_size=60)  # high digits: groups near 65535
    | st.text(max_size=60)
)
def test_decoding_agrees_with_the_reference_decoder(text: str) -> None:
    try:
        expected: bytes | type[Base45Error] = _reference_decode(text)
    except Base45Error as exc:
        expected = type(exc)
    if isinstance(expected, bytes):
        assert b45decode(text) == expected
        assert b45encode(expected) == text  # one text per byte string
    else:
        with pytest.raises(expected):
            b45decode(text)
