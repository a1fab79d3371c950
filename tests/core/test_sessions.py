"""Database sessions on both back ends: a unit of work commits or rolls back as a whole, and a
read session refuses to write (SQLite's query_only; PostgreSQL's read-only default)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from onecard.core.db import Database


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
