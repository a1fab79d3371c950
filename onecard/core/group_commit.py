"""Group commit: concurrent requests' writes of one kind, committed together.

Every write transaction pays a fixed price whatever it holds: taking the write lock (SQLite has
one writer for all workers; on PostgreSQL the audit chain's head row is locked by every audited
write until it commits), a round trip per statement, the commit's flush to disk. When requests
arrive faster than one transaction's worth of that price, a :class:`GroupCommit` has them share
it: each request thread hands its item over and waits; one writer thread per process takes
everything waiting (up to ``limit``) and writes it in one transaction with the ``write``
function, which gives one outcome per item, a result or the error that refused it. Nothing is
held back to fill a batch: a lone request is written at once, and batches grow only while the
previous write is in progress.

Should the shared transaction itself fail (a database error, not a refusal), each of its items
is written again alone, so one item cannot fail the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlmodel import Session

from onecard.core.db import Database

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
Write = Callable[[Session, Sequence[Item]], Sequence[Result | Exception]]


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, database: Database, write: Write[Item, Result], *, name: str, limit: int = 64
    ) -> None:
        self._database, self._write, self._name, self._limit = database, write, name, limit
        self._condition = threading.Condition()
        self._queue: list[tuple[Item, Future[Result]]] = []
        self._writer: threading.Thread | None = None
        self._closed = False

    def submit(self, item: Item) -> Result:
        """Write ``item`` (with whatever else is waiting); its result, or raise its error."""
        future: Future[Result] = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            self._queue.append((item, future))
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._writer.start()
            self._condition.notify()
        return future.result()

    def close(self) -> None:
        """Write what is waiting, then stop the writer thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
            writer = self._writer
        if writer is not None:
            writer.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return
                batch = self._queue[: self._limit]
                del self._queue[: self._limit]
            self._commit(batch)

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            with self._database.session() as session:
                outcomes = self._write(session, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                logger.warning(
                    "%s: a shared write failed (%r); writing its items alone", self._name, exc
                )
                for one in batch:
                    self._commit([one])
                return
            batch[0][1].set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
