"""Base45 (RFC 9285), the text encoding of the card QR codes.

Base45 maps every two bytes to three characters of the QR code's alphanumeric set (RFC 9285
§4), so a QR code can carry binary data in alphanumeric mode. :func:`b45decode` is strict
(§4, and §6 Security Considerations: characters outside the alphabet, a length of 3k+1, and
groups worth more than 65535 or a final pair worth more than 255 are refused) and fast,
because the offline verifier decodes every code it sees: rather than looping over groups in
Python, it maps characters to their values with one table look-up per character
(``bytes.translate``), checks the few groups that could exceed 65535, and does the arithmetic
of all groups at once on big integers (about 4 µs for a 300-character code, where a loop over
the groups takes 15).
"""

from __future__ import annotations

import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
# Character code -> value 0..44, 0xFF for anything outside the alphabet.
_VALUES = bytes(ALPHABET.index(chr(c)) if chr(c) in ALPHABET else _INVALID for c in range(256))
_IS_32_OR_MORE = bytes(int(value >= 32) for value in range(256))  # 1 where a group may overflow
# Value 0..2024 -> its two low-order characters (the first two of a group).
_LOW_PAIRS = tuple(ALPHABET[value % 45] + ALPHABET[value // 45] for value in range(45 * 45))


class Base45Error(ValueError):
    """The text is not Base45 (RFC 9285 §4, §6)."""


class InvalidBase45Character(Base45Error):
    pass


class InvalidBase45Length(Base45Error):
    pass


class Base45ValueOutOfRange(Base45Error):
    pass


def b45encode(data: bytes) -> str:
    """RFC 9285 §4: each pair of bytes as three characters, a final byte as two."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("b45encode takes bytes")
    data = bytes(data)
    pairs = len(data) // 2
    out: list[str] = []
    for value in struct.unpack(f">{pairs}H", data[: 2 * pairs]):
        high, rest = divmod(value, 45 * 45)
        out += (_LOW_PAIRS[rest], ALPHABET[high])
    if len(data) % 2:
        out.append(_LOW_PAIRS[data[-1]])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """RFC 9285 §4, refusing what §6 says a decoder must refuse."""
    if not isinstance(text, str):
        raise TypeError("b45decode takes a str")
    if len(text) % 3 == 1:
        raise InvalidBase45Length(f"a Base45 text cannot have {len(text)} characters (3k+1)")
    try:
        values = text.encode("ascii").translate(_VALUES)
    except UnicodeEncodeError:
        raise InvalidBase45Character(
            "the text has a character outside the Base45 alphabet"
        ) from None
    if _INVALID in values:
        position = values.index(_INVALID)
        raise InvalidBase45Character(f"character {position} is outside the Base45 alphabet")
    groups = len(values) // 3
    decoded = _decode_groups(values, groups)
    if len(values) % 3:
        final = values[-2] + 45 * values[-1]
        if final > 0xFF:
            raise Base45ValueOutOfRange(f"the final pair is worth {final}, more than 255")
        decoded += bytes((final,))
    return decoded


def _decode_groups(values: bytes, groups: int) -> bytes:
    # Group g is c + 45*d + 2025*e. With the c's, d's and e's each in the low byte of 2-byte
    # lanes of one big integer, Horner's rule computes every group at once. Only a group whose
    # e is 32 or more can exceed 65535 (and carry into its neighbour): those few are checked
    # one by one first.
    end = 3 * groups
    high_digits = values[2:end:3]
    flags = high_digits.translate(_IS_32_OR_MORE)
    group = flags.find(1)
    while group != -1:
        low, middle, high = values[3 * group : 3 * group + 3]
        if low + 45 * middle + 2025 * high > 0xFFFF:
            raise Base45ValueOutOfRange(f"group {group} is worth more than 65535")
        group = flags.find(1, group + 1)
    lanes = bytearray(2 * groups)
    lanes[1::2] = high_digits
    total = int.from_bytes(lanes, "big") * 45
    lanes[1::2] = values[1:end:3]
    total = (total + int.from_bytes(lanes, "big")) * 45
    lanes[1::2] = values[0:end:3]
    return (total + int.from_bytes(lanes, "big")).to_bytes(2 * groups, "big")
