"""Background work as rows: an outbox of jobs that workers lease, run, retry and finish.

DESIGN.md §2: a job is inserted in the same transaction as the change that calls for it, so
it exists exactly when the change does. Workers lease due jobs (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite has a single writer), run them outside any transaction and record the
outcome; a crash mid-job leaves the lease to expire and the job to be retried.

- A lease is ``leased_until`` on the row. Its value is also the fencing token: an outcome is
  recorded only where ``leased_until`` still holds the value this worker set, so a worker
  whose lease ran out (a handler slower than the lease) can never overwrite the job's state
  once another worker holds it.
- ``attempts`` counts failures and crashes: a job found with an expired lease is charged an
  attempt when it is leased again, so a job that kills its worker fails after
  ``max_attempts`` instead of looping forever.
- Delivery is at least once. Under normal operation the lease makes it exactly once; a
  handler that outlives its lease may run twice, so handlers must be safe to repeat.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import JSON, CheckConstraint, Column, Index, delete, or_, update
from sqlmodel import Field, Session, SQLModel, col, select

from onecard.core import clock
from onecard.core.db import UTCDateTime

if TYPE_CHECKING:
    from onecard.core.db import Database
    from onecard.core.keyring import Keyring
    from onecard.core.sealing import Sealer
    from onecard.core.settings import Settings


class JobStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up after max_attempts


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
        Index("ix_job_due", "status", "run_after"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=JobStatus.PENDING, max_length=16)
    attempts: int = 0
    max_attempts: int = 8
    run_after: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# -- the outbox ---------------------------------------------------------------------------

log = logging.getLogger(__name__)

_FIRST_RETRY_SECONDS = 5.0
_MAX_RETRY_SECONDS = 3600.0
_ERROR_LENGTH = 500
_Outcome = Literal["done", "retried", "failed"]
_LEASE_EXPIRED = "the lease ran out before the job finished (worker stopped or too slow)"


@dataclass(frozen=True)
class JobContext:
    """What handlers may use. Handlers open their own short sessions from ``database``."""

    database: Database
    keyring: Keyring
    sealer: Sealer
    settings: Settings

    @classmethod
    def from_runtime(cls, runtime: Any) -> JobContext:
        """The context of a process's runtime (anything with these four attributes)."""
        return cls(runtime.database, runtime.keyring, runtime.sealer, runtime.settings)


Handler = Callable[[JobContext, dict[str, Any]], None]
"""Runs one job outside any transaction; returns on success, raises on failure.

A job may run more than once (a worker that loses its lease mid-job), so a handler must be
safe to repeat. Exception messages end up in ``job.last_error``: they must hold no secret.
"""


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help (a malformed payload): fail at once."""


@dataclass(frozen=True)
class RunReport:
    """What one :func:`run_due` call did. Jobs handed back unrun, or whose lease another
    worker took over, are in none of the counts."""

    done: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.done + self.retried + self.failed


_HANDLERS: dict[str, Handler] = {}


def register_handler(kind: str, handler: Handler) -> None:
    """Make ``handler`` run the jobs of ``kind``; modules register theirs at import."""
    _check_kind(kind)
    current = _HANDLERS.get(kind)
    if current is not None and current is not handler:
        raise ValueError(f"job kind {kind!r} already has a handler")
    _HANDLERS[kind] = handler


def handlers() -> Mapping[str, Handler]:
    """The registered handlers by kind (read-only)."""
    return MappingProxyType(_HANDLERS)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    max_attempts: int = 8,
) -> Job:
    """Add a job in the caller's transaction: it exists exactly when the caller's change does.

    ``payload`` is stored in clear and shown to operators: identifiers only, never a secret or
    a personal number (a handler re-reads what it needs when it runs).
    """
    _check_kind(kind)
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if run_after is not None and run_after.tzinfo is None:
        raise ValueError("naive datetime: use onecard.core.clock.now()")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job payload must be plain JSON: {exc}") from None
    now = clock.now()
    job = Job(
        kind=kind,
        payload=payload,
        run_after=run_after or now,
        max_attempts=max_attempts,
        created_at=now,
    )
    session.add(job)
    return job


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failure: 5 s doubling, at most an hour.

    The jitter (the upper fifth of each step is random) spreads retries of jobs that failed
    together, e.g. when one portal went down, without ever making a later wait shorter.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    step = min(_FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 30), _MAX_RETRY_SECONDS)
    return timedelta(seconds=step * random.uniform(0.8, 1.0))  # noqa: S311 (jitter, not a secret)


@dataclass(frozen=True)
class _Lease:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    until: datetime  # also the fencing token: each new lease of a job sets a later time


def run_due(
    context: JobContext,
    *,
    limit: int = 20,
    lease_seconds: float = 60,
    stop: threading.Event | None = None,
) -> RunReport:
    """Lease up to ``limit`` due jobs, run each outside any transaction, record each outcome.

    Jobs run one after another; a handler must finish well within ``lease_seconds``. Jobs of
    the batch whose turn comes after half the lease has gone, or after ``stop`` was set, are
    handed back unrun (no attempt charged), so no job starts on a lease that might run out
    under it and a stopping worker waits for one job at most.
    """
    if limit < 1 or lease_seconds <= 0:
        raise ValueError("limit and lease_seconds must be positive")
    leases, abandoned = _lease_due(context.database, limit, lease_seconds)
    outcomes: Counter[_Outcome | None] = Counter({"failed": abandoned})
    deadline = time.monotonic() + lease_seconds / 2
    for position, lease in enumerate(leases):
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            _release(context.database, leases[position:])
            break
        outcomes[_finish(context.database, lease, _run(context, lease))] += 1
    return RunReport(outcomes["done"], outcomes["retried"], outcomes["failed"])


def _lease_due(database: Database, limit: int, lease_seconds: float) -> tuple[list[_Lease], int]:
    """Take the due jobs in one short transaction; returns the leases and how many jobs were
    failed because a lease ran out on their last allowed attempt."""
    now = clock.now()
    until = now + timedelta(seconds=lease_seconds)
    leases: list[_Lease] = []
    abandoned = 0
    with database.session() as session:
        due = session.exec(
            select(Job)
            .where(
                Job.status == JobStatus.PENDING,
                Job.run_after <= now,
                or_(col(Job.leased_until).is_(None), col(Job.leased_until) < now),
            )
            .order_by(col(Job.run_after))
            .limit(limit)
            # PostgreSQL: concurrent workers skip each other's rows. SQLite ignores the clause;
            # BEGIN IMMEDIATE already makes this transaction the only writer.
            .with_for_update(skip_locked=True)
        ).all()
        for job in due:
            if job.leased_until is not None:
                # Leased before and never finished: the worker died mid-job. That counts as
                # an attempt, so a job that kills its worker cannot be retried forever.
                job.attempts += 1
                job.last_error = _LEASE_EXPIRED
                if job.attempts >= job.max_attempts:
                    job.status, job.finished_at, job.leased_until = JobStatus.FAILED, now, None
                    abandoned += 1
                    log.error("job %s (%s) failed: %s", job.id, job.kind, _LEASE_EXPIRED)
                    continue
            job.leased_until = until
            leases.append(
                _Lease(job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts, until)
            )
    return leases, abandoned


def _run(context: JobContext, lease: _Lease) -> BaseException | None:
    """Run the job's handler; the exception it raised, or None on success."""
    handler = _HANDLERS.get(lease.kind)
    if handler is None:
        return PermanentJobError(f"no handler is registered for job kind {lease.kind!r}")
    try:
        handler(context, dict(lease.payload))
    except Exception as exc:
        return exc
    return None


def _finish(database: Database, lease: _Lease, error: BaseException | None) -> _Outcome | None:
    """Record the outcome if the lease is still ours; the outcome, or None if it was lost."""
    now = clock.now()
    values: dict[str, Any] = {"leased_until": None}
    outcome: _Outcome
    if error is None:
        outcome = "done"
        values.update(status=JobStatus.DONE, finished_at=now)
    else:
        attempts = lease.attempts + 1
        message = _describe(error)
        values.update(attempts=attempts, last_error=message)
        if isinstance(error, PermanentJobError) or attempts >= lease.max_attempts:
            outcome = "failed"
            values.update(status=JobStatus.FAILED, finished_at=now)
            log.error("job %s (%s) failed for good: %s", lease.id, lease.kind, message)
        else:
            outcome = "retried"
            values.update(run_after=now + backoff(attempts))
            log.warning(
                "job %s (%s) attempt %d failed: %s", lease.id, lease.kind, attempts, message
            )
    with database.session() as session:
        result = session.exec(  # type: ignore[call-overload]
            update(Job)
            .where(
                col(Job.id) == lease.id,
                col(Job.status) == JobStatus.PENDING,
                col(Job.leased_until) == lease.until,
            )
            .values(**values)
        )
    if result.rowcount != 1:
        # Another worker took the job over after our lease ran out; its outcome counts.
        log.warning("job %s (%s): lease lost before the outcome was recorded", lease.id, lease.kind)
        return None
    return outcome


def _release(database: Database, leases: list[_Lease]) -> None:
    """Hand back leased jobs that were not started, without charging an attempt."""
    with database.session() as session:
        for lease in leases:
            session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(col(Job.id) == lease.id, col(Job.leased_until) == lease.until)
                .values(leased_until=None)
            )


def _describe(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= _ERROR_LENGTH else text[: _ERROR_LENGTH - 1] + "…"


def sweep_finished(session: Session, older_than: timedelta) -> int:
    """Delete done jobs that finished more than ``older_than`` ago; failed ones stay for
    inspection. Returns how many were deleted."""
    cutoff = clock.now() - older_than
    result = session.exec(  # type: ignore[call-overload]
        delete(Job).where(col(Job.status) == JobStatus.DONE, col(Job.finished_at) < cutoff)
    )
    return result.rowcount


# -- the loop -----------------------------------------------------------------------------

_MAX_ERROR_PAUSE_SECONDS = 30.0

# Housekeeping the loop runs every so often: forgetting expired rate buckets, used values,
# codes and finished jobs. Each task is an idempotent delete, so two workers running it at
# once do no harm; a failure is logged and tried again next time.
Housekeeping = Callable[[Session], int]
_housekeeping: dict[str, tuple[float, Housekeeping]] = {}


def register_housekeeping(name: str, every_seconds: float, task: Housekeeping) -> None:
    _housekeeping[name] = (every_seconds, task)


def run_housekeeping(context: JobContext, last_run: dict[str, float]) -> None:
    now = time.monotonic()
    for name, (every, task) in list(_housekeeping.items()):
        if now - last_run.get(name, -every) < every:
            continue
        last_run[name] = now
        try:
            with context.database.session() as session:
                removed = task(session)
            if removed:
                log.info("housekeeping %s removed %d rows", name, removed)
        except Exception:
            log.exception("housekeeping %s failed", name)


def run_forever(
    context: JobContext,
    stop_event: threading.Event,
    *,
    poll_seconds: float = 1.0,
    limit: int = 20,
    lease_seconds: float = 60,
) -> None:
    """Run due jobs until ``stop_event`` is set: at once again after a full batch, else every
    ``poll_seconds``. Errors (the database going away) are logged and waited out, never fatal.
    """
    failures = 0
    housekeeping_runs: dict[str, float] = {}
    while not stop_event.is_set():
        run_housekeeping(context, housekeeping_runs)
        try:
            report = run_due(context, limit=limit, lease_seconds=lease_seconds, stop=stop_event)
        except Exception:
            failures += 1
            log.exception("the job loop failed (%d in a row)", failures)
            pause = min(poll_seconds * 2**failures, _MAX_ERROR_PAUSE_SECONDS)
            stop_event.wait(max(pause, poll_seconds))
            continue
        failures = 0
        if report.total < limit:
            stop_event.wait(poll_seconds)


class Worker:
    """The job loop in a daemon thread, so every web worker process can also run jobs."""

    def __init__(
        self,
        context: JobContext,
        *,
        poll_seconds: float = 1.0,
        limit: int = 20,
        lease_seconds: float = 60,
        name: str = "onecard-jobs",
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_forever,
            args=(context, self._stop),
            kwargs={"poll_seconds": poll_seconds, "limit": limit, "lease_seconds": lease_seconds},
            name=name,
            daemon=True,
        )

    def start(self) -> Worker:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the loop to stop and wait for it: the running job finishes, the rest of its
        batch is handed back for another worker."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _check_kind(kind: str) -> None:
    if not kind or len(kind) > 64:
        raise ValueError("a job kind is 1 to 64 characters")


register_housekeeping(
    "finished_jobs", 3600, lambda session: sweep_finished(session, timedelta(days=7))
)
