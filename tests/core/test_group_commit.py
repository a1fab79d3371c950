"""Group commit: concurrent items share one transaction, each gets its own outcome, and a
shared transaction that fails is retried item by item."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlmodel import Session

from onecard.core.db import Database
from onecard.core.group_commit import GroupCommit


class Refused(Exception):
    pass


def test_concurrent_items_share_a_write_and_each_gets_its_outcome(db: Database) -> None:
    batches: list[list[int]] = []
    first_write = threading.Event()

    def write(session: Session, items: Sequence[int]) -> list[int | Exception]:
        session.execute(text("SELECT 1"))
        batches.append(list(items))
        if len(batches) == 1:
            first_write.set()
            time.sleep(0.3)  # the others arrive while the first batch is being written
        return [Refused(i) if i % 5 == 0 else i * 10 for i in items]

    group = GroupCommit(db, write, name="test")
    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = group.submit(item)
        except Refused as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=submit, args=(1,))]
    threads[0].start()
    first_write.wait(5)
    threads += [threading.Thread(target=submit, args=(i,)) for i in range(2, 21)]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    group.close()

    assert batches[0] == [1]
    assert len(batches) < 20, "the waiting items were not written together"
    assert sorted(i for batch in batches for i in batch) == list(range(1, 21))
    for item in range(1, 21):
        if item % 5 == 0:
            assert isinstance(outcomes[item], Refused)
        else:
            assert outcomes[item] == item * 10


def test_a_failed_shared_write_is_retried_item_by_item(db: Database) -> None:
    attempts: list[list[str]] = []
    started = threading.Event()

    def write(session: Session, items: Sequence[str]) -> list[str | Exception]:
        attempts.append(list(items))
        if not started.is_set():
            started.set()
            time.sleep(0.2)
        if "poison" in items:
            raise RuntimeError("the database refused the whole transaction")
        return [item.upper() for item in items]

    group = GroupCommit(db, write, name="test")
    results: dict[str, object] = {}

    def submit(item: str) -> None:
        try:
            results[item] = group.submit(item)
        except RuntimeError as exc:
            results[item] = exc

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=submit, args=(i,)) for i in ("a", "poison", "b")]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(10)
    group.close()

    assert results["first"] == "FIRST"
    assert results["a"] == "A"
    assert results["b"] == "B"
    assert isinstance(results["poison"], RuntimeError)
    assert ["poison"] in attempts  # retried alone after the shared write failed


def test_a_closed_group_refuses_new_items(db: Database) -> None:
    group = GroupCommit(db, lambda session, items: list(items), name="test")
    assert group.submit(7) == 7
    group.close()
    with pytest.raises(RuntimeError, match="closed"):
        group.submit(8)
