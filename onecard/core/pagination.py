"""Keyset pagination: stable pages under concurrent inserts, opaque cursors.

A cursor encodes the ``(created_at, id)`` of the last item served; the next page starts strictly
after it. Cursors are opaque to clients (base64url JSON) and checked on the way in.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, or_
from sqlmodel.sql.expression import SelectOfScalar

from onecard.core.errors import InvalidInput

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        at, row = datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("the cursor is not one this service issued", code="bad_cursor") from exc
    if at.tzinfo is None:
        raise InvalidInput("the cursor is not one this service issued", code="bad_cursor")
    return at, row


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", code="bad_limit")
    return limit


def paginate(
    session: Any,
    stmt: SelectOfScalar[T],
    model: Any,
    *,
    limit: int,
    cursor: str | None,
    time_column: Any = None,
) -> Page[T]:
    """Run ``stmt`` ordered by ``(time_column, model.id)`` from ``cursor``, one page.

    ``time_column`` defaults to ``model.created_at``.
    """
    check_limit(limit)
    column = model.created_at if time_column is None else time_column
    if cursor:
        at, row_id = decode_cursor(cursor)
        stmt = stmt.where(or_(column > at, and_(column == at, model.id > row_id)))
    rows = list(session.exec(stmt.order_by(column, model.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(getattr(rows[-1], column.key), rows[-1].id)
    return Page(rows, next_cursor)
