"""Idempotency keys for retried writes (DESIGN.md §8).

A client that may retry a create sends ``Idempotency-Key``; the first request's response is
stored in the same transaction as the change, keyed by (caller, key). A retry with the same
body gets the stored response and changes nothing; the same key with a different body is
refused. Two racing first requests meet the unique constraint: one commits, the other rolls back
whole. Records expire after 24 hours.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint, delete
from sqlmodel import Field, Session, SQLModel, select

from onecard.core import clock
from onecard.core.db import UTCDateTime, unique_or_conflict
from onecard.core.errors import Conflict, InvalidInput

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("caller", "key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    caller: str = Field(max_length=80)
    key: str = Field(max_length=MAX_KEY_LENGTH)
    fingerprint: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    status_code: int
    response: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


def fingerprint(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1-255 printable characters", code="bad_idempotency_key"
        )
    return key


def find(session: Session, caller: str, key: str, print_: bytes) -> IdempotencyRecord | None:
    """The stored outcome for (caller, key), or ``None``; a different request is refused."""
    existing = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at > clock.now(),
        )
    ).one_or_none()
    if existing is not None and existing.fingerprint != print_:
        raise InvalidInput(
            "this Idempotency-Key was used for a different request", code="idempotency_key_reused"
        )
    return existing


def remember(
    session: Session, caller: str, key: str, print_: bytes, status_code: int, response: str
) -> None:
    session.exec(  # type: ignore[call-overload]
        delete(IdempotencyRecord).where(
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at <= clock.now(),
        )
    )
    in_use = Conflict(
        "a request with this Idempotency-Key is in progress", code="idempotency_key_in_use"
    )
    with unique_or_conflict(session, lambda _: in_use):
        session.add(
            IdempotencyRecord(
                caller=caller,
                key=key,
                fingerprint=print_,
                status_code=status_code,
                response=response,
                expires_at=clock.now() + TTL,
            )
        )
