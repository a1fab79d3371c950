"""Database sessions on both back ends: a unit of work commits or rolls back as a whole, a read
session refuses to write (SQLite's query_only; PostgreSQL's read-only default), pipelined
statements land or fail with their transaction, and a pooled PostgreSQL connection lost while
idle is replaced before use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from onecard.core import db as db_module
from onecard.core.db import Database, pipelined


@pytest.fixture
def scratch(db: Database) -> Iterator[Table]:
    """A table of its own, dropped afterwards."""
    metadata = MetaData()
    table = Table(
        f"scratch_{uuid.uuid4().hex[:12]}", metadata, Column("id", Integer, primary_key=True)
    )
    with db.session() as session:
        metadata.create_all(session.connection())
    yield table
    with db.session() as session:
        metadata.drop_all(session.connection())


def _count(session: Session, table: Table) -> int:
    return session.execute(select(func.count()).select_from(table)).scalar_one()


def _committed(db: Database, table: Table) -> int:
    with db.read_session() as session:
        return _count(session, table)


def test_a_read_session_refuses_to_write(db: Database, scratch: Table) -> None:
    with db.read_session() as session, pytest.raises(DBAPIError):
        session.execute(insert(scratch).values(id=1))
    assert _committed(db, scratch) == 0


def test_a_read_session_sees_what_was_committed_before_each_statement(
    db: Database, scratch: Table
) -> None:
    with db.read_session() as reader:
        before = _count(reader, scratch)
        with db.session() as writer:
            writer.execute(insert(scratch).values(id=1))
        after = _count(reader, scratch)
    assert before == 0
    # PostgreSQL reads statement by statement (READ COMMITTED, autocommit); SQLite's WAL reader
    # keeps the snapshot its transaction began with.
    assert after == (1 if db.backend == "postgresql" else 0)


def test_a_session_that_fails_writes_nothing(db: Database, scratch: Table) -> None:
    def change_then_fail() -> None:
        with db.session() as session:
            session.execute(insert(scratch).values(id=1))
            raise RuntimeError("the change and its audit event land together or not at all")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert _committed(db, scratch) == 0


def test_pipelined_statements_land_together(db: Database, scratch: Table) -> None:
    with db.session() as session:
        connection = session.connection()
        with pipelined(connection):
            connection.execute(insert(scratch), [{"id": 1}, {"id": 2}])
            connection.execute(update(scratch).where(scratch.c.id == 2).values(id=3))
        assert _count(session, scratch) == 2
    with db.read_session() as session:
        assert set(session.execute(select(scratch.c.id)).scalars()) == {1, 3}


def test_a_failed_pipelined_statement_fails_the_whole_write(db: Database, scratch: Table) -> None:
    def write() -> None:
        with db.session() as session:
            connection = session.connection()
            connection.execute(insert(scratch).values(id=1))
            with pipelined(connection):
                connection.execute(insert(scratch).values(id=2))
                connection.execute(insert(scratch).values(id=1))  # the primary key refuses it

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        write()
    assert _committed(db, scratch) == 0


@pytest.fixture
def postgresql_db(db: Database) -> Database:
    if db.backend != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite connection has no server to lose")
    return db


def _lose_pooled_connection(database: Database) -> None:
    """Have the server end the one connection the pool holds, as a restart would."""
    with database.session() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    other = Database(database.url)
    try:
        with other.session() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()


def test_a_connection_that_sat_idle_is_checked_and_replaced(
    postgresql_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(postgresql_db.url)
    try:
        _lose_pooled_connection(database)
        monkeypatch.setattr(db_module, "_PING_AFTER_IDLE", 0.0)
        with database.session() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_a_busy_connection_lost_fails_one_statement_and_the_pool_recovers(
    postgresql_db: Database,
) -> None:
    database = Database(postgresql_db.url)
    try:
        _lose_pooled_connection(database)  # used a moment ago: not pinged
        with pytest.raises(DBAPIError), database.session() as session:
            session.execute(text("SELECT 1"))
        with database.session() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()
