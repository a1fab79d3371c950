"""One-time-use values across every worker: a value may be consumed once until it expires.

Used for ``private_key_jwt`` assertion ``jti`` values now and for QR token ``cti`` values later.
The database decides (a primary-key insert either wins or conflicts), never one process's
memory, so two workers racing on the same value cannot both accept it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import LargeBinary, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, Session, SQLModel

from onecard.core import clock
from onecard.core.db import UTCDateTime


class UsedValue(SQLModel, table=True):
    __tablename__ = "used_value"

    namespace: str = Field(max_length=32, primary_key=True)
    value_hash: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


# Set on a session that consumed a value: the caller must commit it even if the request then
# fails, or a value presented with a failing request could be presented again.
COMMIT_ON_ERROR = "onecard.once.commit_on_error"


def consume(session: Session, namespace: str, value: str, *, until: datetime) -> bool:
    """Record ``value`` as used; False when it was already used (and has not expired).

    A value is spent once presented, whatever happens next: the session is flagged
    :data:`COMMIT_ON_ERROR` for the caller's error handling."""
    session.info[COMMIT_ON_ERROR] = True
    digest = hashlib.sha256(value.encode()).digest()
    existing = session.get(UsedValue, (namespace, digest))
    if existing is not None:
        if existing.expires_at > clock.now():
            return False
        session.delete(existing)
        session.flush()
    try:
        with session.begin_nested():
            session.add(UsedValue(namespace=namespace, value_hash=digest, expires_at=until))
    except IntegrityError:
        return False
    return True


def sweep(session: Session) -> int:
    """Forget values whose expiry has passed; returns how many."""
    result = session.exec(delete(UsedValue).where(UsedValue.expires_at <= clock.now()))  # type: ignore[call-overload]
    return result.rowcount
