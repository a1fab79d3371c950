"""Fixed-window attempt counters shared by every worker (sign-in throttling per account and
per address).

A bucket counts failures in the current window; once it reaches the limit, attempts are
refused until the window ends, so a lockout always expires by itself and nobody can lock a
citizen out for good. Bucket keys are HMACs (of the login, of the address), never the values.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import LargeBinary, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, Session, SQLModel

from onecard.core import clock
from onecard.core.db import UTCDateTime
from onecard.core.sealing import Sealer


class RateBucket(SQLModel, table=True):
    __tablename__ = "rate_bucket"

    key: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    window_start: datetime = Field(sa_type=UTCDateTime)
    count: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


def bucket_key(sealer: Sealer, kind: str, value: str) -> bytes:
    """The bucket of ``value`` (a login, an address): an HMAC, so the table holds neither."""
    key = sealer.derive_key("rate-limit")
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()


def retry_after(session: Session, key: bytes, *, limit: int) -> int | None:
    """Seconds until attempts are allowed again, or None when they are allowed now."""
    bucket = session.get(RateBucket, key)
    now = clock.now()
    if bucket is None or bucket.expires_at <= now or bucket.count < limit:
        return None
    return max(1, int((bucket.expires_at - now).total_seconds()) + 1)


def count_failure(session: Session, key: bytes, *, window: timedelta) -> int:
    """Count one failure in the current window (locking the bucket); returns the count."""
    now = clock.now()
    bucket = session.get(RateBucket, key, with_for_update=True)
    if bucket is None:
        try:
            with session.begin_nested():
                bucket = RateBucket(key=key, window_start=now, count=0, expires_at=now + window)
                session.add(bucket)
        except IntegrityError:  # another worker created it first
            bucket = session.get(RateBucket, key, with_for_update=True, populate_existing=True)
            assert bucket is not None
    if bucket.expires_at <= now:
        bucket.window_start, bucket.count, bucket.expires_at = now, 0, now + window
    bucket.count += 1
    session.add(bucket)
    return bucket.count


def clear(session: Session, key: bytes) -> None:
    bucket = session.get(RateBucket, key)
    if bucket is not None:
        session.delete(bucket)


def sweep(session: Session) -> int:
    result = session.exec(delete(RateBucket).where(RateBucket.expires_at <= clock.now()))  # type: ignore[call-overload]
    return result.rowcount


def _register() -> None:
    from onecard.core.jobs import register_housekeeping

    register_housekeeping("rate_buckets", 600, sweep)


_register()
