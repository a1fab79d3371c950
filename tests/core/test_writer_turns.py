"""SQLite writers take turns through a lock file, across processes (here: two Database objects
on one file, each with its own lock-file handle, as two workers have)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from onecard.core.db import Database


@pytest.fixture
def sqlite_db(db: Database) -> Database:
    if db.backend != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has row locks, not one writer")
    return db


def test_a_second_worker_writes_only_after_the_first_commits(sqlite_db: Database) -> None:
    other = Database(sqlite_db.url)
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with sqlite_db.session() as session:
            session.execute(text("SELECT 1"))
            holding.set()
            time.sleep(0.3)
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    try:
        with other.session() as session:
            order.append("second writes")
            session.execute(text("SELECT 1"))
    finally:
        thread.join(5)
        other.dispose()
    assert order == ["first commits", "second writes"]


def test_a_session_opened_inside_another_does_not_wait_for_itself(sqlite_db: Database) -> None:
    done = threading.Event()

    def nested() -> None:
        with sqlite_db.session(), sqlite_db.session() as inner:
            inner.execute(text("SELECT 1"))
        done.set()

    threading.Thread(target=nested, daemon=True).start()
    assert done.wait(5)
