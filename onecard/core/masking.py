"""Masked forms of personal numbers for API responses, pages and logs (DESIGN.md §3).

Pure functions, one per kind of number. Each one keeps the conventional visible part when the
input has the expected shape, and otherwise still returns something: on short or odd inputs it
shows fewer characters (down to none), so a mask never gives away most of a value. None of
these functions validates its input; they mask whatever string they are given.
"""

from __future__ import annotations

__all__ = [
    "mask_bank_card_number",
    "mask_email",
    "mask_identity_number",
    "mask_phone",
    "mask_transit_card_number",
]

MASK = "*"
_CARD_SEPARATORS = str.maketrans("", "", " -")
_EMAIL_LOCAL_MASK = MASK * 3


def _require_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"value must be a str, not {type(value).__name__}")
    return value


def _visible(length: int, head: int, tail: int, min_hidden: int) -> tuple[int, int]:
    """Shrink ``head`` and ``tail`` until at least ``min_hidden`` characters stay masked."""
    while head + tail > 0 and length - head - tail < min_hidden:
        if head >= tail:
            head -= 1
        else:
            tail -= 1
    return head, tail


def _half_hidden(length: int) -> int:
    # At least four characters, and at least half of the value, are always masked.
    return max(4, (length + 1) // 2)


def _mask_middle(value: str, head: int, tail: int, min_hidden: int) -> str:
    head, tail = _visible(len(value), head, tail, min_hidden)
    hidden = len(value) - head - tail
    return value[:head] + MASK * hidden + value[len(value) - tail :]


def mask_identity_number(value: str) -> str:
    """``11010519491231002X`` → ``1101**********002X``: first four and last four kept."""
    value = _require_str(value)
    return _mask_middle(value, 4, 4, _half_hidden(len(value)))


def mask_bank_card_number(value: str) -> str:
    """``6222021234567890`` → ``6222 **** **** 7890``.

    Spaces and hyphens in the input are ignored. The first four and last four characters stay
    visible, the masked middle is written in groups of four (the last group may be shorter), so
    the number of ``*`` still tells how long the card number is.
    """
    compact = _require_str(value).translate(_CARD_SEPARATORS)
    head, tail = _visible(len(compact), 4, 4, _half_hidden(len(compact)))
    hidden = len(compact) - head - tail
    groups = [MASK * min(4, hidden - start) for start in range(0, hidden, 4)]
    parts = [compact[:head], *groups, compact[len(compact) - tail :]]
    return " ".join(part for part in parts if part)


def mask_transit_card_number(value: str) -> str:
    """``31042400123456`` → ``**********3456``: only the last four kept."""
    value = _require_str(value)
    return _mask_middle(value, 0, 4, _half_hidden(len(value)))


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``; ``+8613812345678`` → ``+86138****5678``.

    A Chinese mobile number (11 digits starting with 1, optionally after ``+86``) keeps its
    first three and last four digits, as printed on Chinese receipts. Any other value keeps its
    first three and last two characters, with at least four characters masked.
    """
    value = _require_str(value)
    prefix, national = ("+86", value[3:]) if value.startswith("+86") else ("", value)
    if len(national) == 11 and national.isascii() and national.isdigit() and national[0] == "1":
        return prefix + _mask_middle(national, 3, 4, 4)
    return _mask_middle(value, 3, 2, 4)


def mask_email(value: str) -> str:
    """``zhang.san@example.cn`` → ``z***@example.cn``.

    The local part is replaced by its first character and a fixed ``***`` (so its length does
    not show); a one-character local part is masked entirely. The domain stays visible. A value
    without ``@`` is masked entirely.
    """
    local, at, domain = _require_str(value).rpartition("@")
    if not at:
        return _EMAIL_LOCAL_MASK
    first = local[0] if len(local) > 1 else ""
    return first + _EMAIL_LOCAL_MASK + "@" + domain
