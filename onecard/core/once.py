"""One-time-use values across every worker: a value may be consumed once until it expires.

Used for ``private_key_jwt`` assertion ``jti`` values now and for QR token ``cti`` values later.
The database decides (a primary-key insert either wins or conflicts), never one process's
memory, so two workers racing on the same value cannot both accept it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, LargeBinary, delete
from sqlalchemy.dialects import postgresql, sqlite
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


def consume_new(connection: Connection, namespace: str, values: dict[str, datetime]) -> set[str]:
    """Record many values as used (each until its expiry) in one statement; the ones this
    call consumed. A value already recorded is not consumed again, expired or not: for values
    that are never reused once expired (QR ``cti``, drawn at random) that is the same answer
    as :func:`consume` gives, without a round trip per value."""
    if not values:
        return set()
    digests = {hashlib.sha256(value.encode()).digest(): value for value in values}
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    table = UsedValue.__table__  # type: ignore[attr-defined]
    rows = [
        {"namespace": namespace, "value_hash": digest, "expires_at": values[value]}
        for digest, value in digests.items()
    ]
    taken = connection.execute(
        insert(table).on_conflict_do_nothing().returning(table.c.value_hash), rows
    ).scalars()
    return {digests[digest] for digest in taken}


def sweep(session: Session) -> int:
    """Forget values whose expiry has passed; returns how many."""
    result = session.exec(delete(UsedValue).where(UsedValue.expires_at <= clock.now()))  # type: ignore[call-overload]
    return result.rowcount
