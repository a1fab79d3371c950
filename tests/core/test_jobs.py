"""The outbox: jobs added in the caller's transaction, leased by one worker at a time, retried
with growing backoff, failed after their last attempt, and retried after a worker crash."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from onecard.core.clock import FrozenClock, use_clock
from onecard.core.db import Database
from onecard.core.jobs import (
    Job,
    JobContext,
    PermanentJobError,
    RunReport,
    Worker,
    _lease_due,
    backoff,
    enqueue,
    handlers,
    register_handler,
    run_due,
    sweep_finished,
)


class Crash(BaseException):
    """Stands for the process dying mid-job: nothing below the handler catches it."""


@pytest.fixture
def context(fresh_db, runtime) -> JobContext:
    """A context on an empty job table (other tests' jobs never run here)."""
    return JobContext(fresh_db(), runtime.keyring, runtime.sealer, runtime.settings)


@pytest.fixture
def frozen() -> FrozenClock:
    with use_clock(FrozenClock(datetime(2030, 5, 1, 8, 0, tzinfo=UTC))) as clock:
        yield clock  # type: ignore[misc]


def new_kind(handler: Callable[[JobContext, dict], None]) -> str:
    """Register ``handler`` under a kind of its own."""
    kind = f"test.{uuid.uuid4().hex[:12]}"
    register_handler(kind, handler)
    return kind


def add_job(database: Database, kind: str, payload: dict | None = None, **options) -> uuid.UUID:
    with database.session() as session:
        return enqueue(session, kind, payload or {}, **options).id


def load(database: Database, job_id: uuid.UUID) -> Job:
    with database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


class Calls:
    """A handler that records the payloads it ran, from any thread."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.payloads: list[dict] = []
        self._fail = fail
        self._error = error or RuntimeError("portal down")
        self._lock = threading.Lock()

    def __call__(self, _context: JobContext, payload: dict) -> None:
        with self._lock:
            self.payloads.append(payload)
            failing = len(self.payloads) <= self._fail
        if failing:
            raise self._error


# -- enqueue ------------------------------------------------------------------------------


def test_a_job_exists_only_if_the_callers_transaction_commits(context: JobContext) -> None:
    kind = new_kind(Calls())

    def change_that_fails() -> None:
        with context.database.session() as session:
            enqueue(session, kind, {"n": 1})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert run_due(context) == RunReport()

    job_id = add_job(context.database, kind, {"n": 2})
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.payload, job.leased_until) == (
        "pending",
        0,
        {"n": 2},
        None,
    )


def test_enqueue_refuses_what_it_cannot_store(context: JobContext) -> None:
    with context.database.session() as session:
        with pytest.raises(TypeError):
            enqueue(session, "test.bad", {"when": datetime.now(UTC)})
        with pytest.raises(ValueError, match="kind"):
            enqueue(session, "", {})
        with pytest.raises(ValueError, match="kind"):
            enqueue(session, "k" * 65, {})
        with pytest.raises(ValueError, match="max_attempts"):
            enqueue(session, "test.bad", {}, max_attempts=0)
        with pytest.raises(ValueError, match="naive"):
            enqueue(session, "test.bad", {}, run_after=datetime(2030, 1, 1))


def test_a_kind_has_one_handler() -> None:
    handler = Calls()
    kind = new_kind(handler)
    register_handler(kind, handler)  # the same one again (a module imported twice) is fine
    with pytest.raises(ValueError, match="already"):
        register_handler(kind, Calls())
    assert handlers()[kind] is handler
    with pytest.raises(TypeError):
        handlers()[kind] = Calls()  # type: ignore[index]


# -- running ------------------------------------------------------------------------------


def test_a_due_job_runs_once_and_is_done(context: JobContext, frozen: FrozenClock) -> None:
    calls = Calls()
    job_id = add_job(context.database, new_kind(calls), {"n": 1})

    assert run_due(context) == RunReport(done=1)
    assert run_due(context) == RunReport()
    assert calls.payloads == [{"n": 1}]
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.leased_until) == ("done", 0, None)
    assert job.finished_at == frozen.now()


def test_a_job_waits_for_its_run_after(context: JobContext, frozen: FrozenClock) -> None:
    calls = Calls()
    add_job(context.database, new_kind(calls), run_after=frozen.now() + timedelta(minutes=10))

    assert run_due(context) == RunReport()
    frozen.advance(timedelta(minutes=10))
    assert run_due(context) == RunReport(done=1)
    assert len(calls.payloads) == 1


def test_a_failing_job_is_retried_later_and_then_done(
    context: JobContext, frozen: FrozenClock
) -> None:
    calls = Calls(fail=1, error=ConnectionError("portal down"))
    job_id = add_job(context.database, new_kind(calls))

    assert run_due(context) == RunReport(retried=1)
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.leased_until) == ("pending", 1, None)
    assert job.last_error == "ConnectionError: portal down"
    assert timedelta(seconds=4) <= job.run_after - frozen.now() <= timedelta(seconds=5)

    assert run_due(context) == RunReport()  # not due yet
    frozen.set(job.run_after)
    assert run_due(context) == RunReport(done=1)
    assert load(context.database, job_id).status == "done"
    assert len(calls.payloads) == 2


def test_backoff_grows_and_the_job_fails_after_max_attempts(
    context: JobContext, frozen: FrozenClock
) -> None:
    calls = Calls(fail=100)
    job_id = add_job(context.database, new_kind(calls), max_attempts=5)
    delays = []
    for attempt in range(1, 5):
        assert run_due(context) == RunReport(retried=1)
        job = load(context.database, job_id)
        assert job.attempts == attempt
        delays.append(job.run_after - frozen.now())
        frozen.set(job.run_after)
    assert run_due(context) == RunReport(failed=1)

    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.finished_at) == ("failed", 5, frozen.now())
    assert job.last_error == "RuntimeError: portal down"
    frozen.advance(timedelta(days=1))
    assert run_due(context) == RunReport()
    assert len(calls.payloads) == 5


def test_backoff_starts_near_five_seconds_doubles_and_stops_at_an_hour() -> None:
    for attempts in range(1, 12):
        step = min(5 * 2 ** (attempts - 1), 3600)
        for _ in range(20):
            assert 0.8 * step <= backoff(attempts).total_seconds() <= step
    assert backoff(10_000) <= timedelta(hours=1)
    assert len({backoff(3) for _ in range(20)}) > 1  # jittered
    with pytest.raises(ValueError, match="attempts"):
        backoff(0)


def test_last_error_is_one_short_line(context: JobContext) -> None:
    kind = new_kind(Calls(fail=1, error=ValueError("bad\nanswer " + "x" * 2000)))
    job_id = add_job(context.database, kind)
    run_due(context)
    error = load(context.database, job_id).last_error
    assert error is not None
    assert error.startswith("ValueError: bad answer xxx")
    assert len(error) == 500
    assert "\n" not in error


def test_a_job_of_unknown_kind_fails_with_a_clear_error(context: JobContext) -> None:
    job_id = add_job(context.database, "test.nobody-handles-this")
    assert run_due(context) == RunReport(failed=1)
    job = load(context.database, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "no handler" in job.last_error
    assert "test.nobody-handles-this" in job.last_error


def test_a_permanent_error_fails_the_job_at_once(context: JobContext) -> None:
    job_id = add_job(context.database, new_kind(Calls(fail=1, error=PermanentJobError("bad"))))
    assert run_due(context) == RunReport(failed=1)
    job = load(context.database, job_id)
    assert (job.status, job.attempts) == ("failed", 1)


def test_handlers_run_outside_any_transaction(context: JobContext) -> None:
    """A handler can write through its own session while the job is leased: no lock is held
    (on SQLite, a held write lock would make this wait for the busy timeout and fail)."""
    seen: list[str] = []

    def handler(ctx: JobContext, _payload: dict) -> None:
        started = time.monotonic()
        with ctx.database.session() as session:
            job = session.exec(select(Job).where(Job.kind == kind)).one()
            seen.append(job.status)
        assert time.monotonic() - started < 1

    kind = new_kind(handler)
    add_job(context.database, kind)
    assert run_due(context) == RunReport(done=1)
    assert seen == ["pending"]


def test_a_batch_takes_at_most_limit_jobs(context: JobContext) -> None:
    calls = Calls()
    kind = new_kind(calls)
    for n in range(5):
        add_job(context.database, kind, {"n": n})
    assert run_due(context, limit=2) == RunReport(done=2)
    assert run_due(context, limit=10) == RunReport(done=3)
    assert sorted(p["n"] for p in calls.payloads) == [0, 1, 2, 3, 4]


# -- leases -------------------------------------------------------------------------------


def test_a_job_whose_worker_crashed_is_retried_once_the_lease_expires(
    context: JobContext, frozen: FrozenClock
) -> None:
    runs: list[int] = []

    def crashes_once(_ctx: JobContext, _payload: dict) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise Crash

    job_id = add_job(context.database, new_kind(crashes_once))
    with pytest.raises(Crash):
        run_due(context, lease_seconds=60)
    job = load(context.database, job_id)
    assert (job.status, job.leased_until) == ("pending", frozen.now() + timedelta(seconds=60))

    frozen.advance(59)
    assert run_due(context) == RunReport()  # still leased by the dead worker
    frozen.advance(2)
    assert run_due(context) == RunReport(done=1)
    job = load(context.database, job_id)
    assert (job.status, job.attempts) == ("done", 1)  # the crash counted as an attempt
    assert len(runs) == 2


def test_a_job_that_keeps_crashing_its_worker_fails_after_max_attempts(
    context: JobContext, frozen: FrozenClock
) -> None:
    def always_crashes(_ctx: JobContext, _payload: dict) -> None:
        raise Crash

    job_id = add_job(context.database, new_kind(always_crashes), max_attempts=2)
    for _ in range(2):
        with pytest.raises(Crash):
            run_due(context, lease_seconds=60)
        frozen.advance(61)
    assert run_due(context) == RunReport(failed=1)
    job = load(context.database, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.last_error is not None
    assert "lease ran out" in job.last_error


def test_a_worker_that_lost_its_lease_leaves_the_new_holder_alone(
    context: JobContext, frozen: FrozenClock
) -> None:
    """Worker A's job outlives its lease and worker B takes it over. While B still runs it,
    A's late failure must not clear B's lease (a third worker would run it again)."""
    leases: list[datetime] = []

    def outlives_its_lease(ctx: JobContext, _payload: dict) -> None:
        frozen.advance(61)
        (lease,), _ = _lease_due(ctx.database, 10, 60)  # B takes the job, still running
        leases.append(lease.until)
        raise TimeoutError("A gave up")

    job_id = add_job(context.database, new_kind(outlives_its_lease))
    assert run_due(context, lease_seconds=60) == RunReport()  # A records nothing
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.leased_until) == ("pending", 1, leases[0])
    assert job.last_error is not None
    assert "lease ran out" in job.last_error
    assert run_due(context) == RunReport()  # nobody else may take it while B holds it


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_outcome(
    context: JobContext, frozen: FrozenClock
) -> None:
    """Worker A's job outlives its lease; worker B takes it over and finishes it. A's late
    failure must not turn B's success back into a retry."""
    reports: list[RunReport] = []
    runs: list[str] = []

    def slow_then_fine(ctx: JobContext, _payload: dict) -> None:
        runs.append("A" if not runs else "B")
        if runs[-1] == "B":
            return
        frozen.advance(61)
        reports.append(run_due(ctx, lease_seconds=60))
        raise TimeoutError("A gave up")

    job_id = add_job(context.database, new_kind(slow_then_fine))
    assert run_due(context, lease_seconds=60) == RunReport()  # A records nothing
    assert reports == [RunReport(done=1)]
    assert runs == ["A", "B"]
    job = load(context.database, job_id)
    assert (job.status, job.attempts, job.leased_until) == ("done", 1, None)


def test_jobs_left_when_half_the_lease_is_gone_are_handed_back_unrun(
    context: JobContext,
) -> None:
    def slow(_ctx: JobContext, _payload: dict) -> None:
        time.sleep(0.3)

    kind = new_kind(slow)
    ids = [add_job(context.database, kind, {"n": n}) for n in range(3)]
    assert run_due(context, lease_seconds=0.4) == RunReport(done=1)
    jobs = [load(context.database, job_id) for job_id in ids]
    assert sorted(job.status for job in jobs) == ["done", "pending", "pending"]
    assert all(job.leased_until is None and job.attempts == 0 for job in jobs)
    assert run_due(context, lease_seconds=10) == RunReport(done=2)


def test_a_stopping_worker_hands_the_rest_of_its_batch_back(context: JobContext) -> None:
    stop = threading.Event()
    calls = Calls()

    def first_one_stops_the_worker(ctx: JobContext, payload: dict) -> None:
        calls(ctx, payload)
        stop.set()

    kind = new_kind(first_one_stops_the_worker)
    ids = [add_job(context.database, kind, {"n": n}) for n in range(3)]
    assert run_due(context, stop=stop) == RunReport(done=1)
    assert len(calls.payloads) == 1
    jobs = [load(context.database, job_id) for job_id in ids]
    assert sorted(job.status for job in jobs) == ["done", "pending", "pending"]
    assert all(job.leased_until is None and job.attempts == 0 for job in jobs)


def test_concurrent_workers_never_run_the_same_job_twice(context: JobContext) -> None:
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(_ctx: JobContext, payload: dict) -> None:
        with lock:
            runs[payload["n"]] += 1
        time.sleep(0.005)

    kind = new_kind(handler)
    with context.database.session() as session:
        for n in range(60):
            enqueue(session, kind, {"n": n})

    start = threading.Barrier(4)
    reports: list[RunReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(runs.values()) < 60:
                report = run_due(context, limit=3)
                with lock:
                    reports.append(report)
                if report.total == 0:
                    time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)

    assert not errors
    assert runs == Counter(range(60))  # every job exactly once
    assert sum(r.done for r in reports) == 60
    assert sum(1 for r in reports if r.done) > 4  # the work really was shared out in batches
    with context.database.session() as session:
        statuses = session.exec(select(Job.status).where(Job.kind == kind)).all()
    assert statuses == ["done"] * 60


# -- sweeping -----------------------------------------------------------------------------


def test_sweep_deletes_old_done_jobs_and_keeps_failed_ones(
    context: JobContext, frozen: FrozenClock
) -> None:
    database = context.database
    done_old = add_job(database, new_kind(Calls()))
    failed_old = add_job(database, new_kind(Calls(fail=1, error=PermanentJobError("x"))))
    assert run_due(context) == RunReport(done=1, failed=1)
    frozen.advance(timedelta(days=8))
    done_new = add_job(database, new_kind(Calls()))
    pending = add_job(database, "test.later", run_after=frozen.now() + timedelta(days=1))
    assert run_due(context) == RunReport(done=1)

    with database.session() as session:
        assert sweep_finished(session, timedelta(days=7)) == 1
    with database.session() as session:
        left = set(session.exec(select(Job.id)).all())
    assert left == {failed_old, done_new, pending}
    assert done_old not in left


# -- the loop -----------------------------------------------------------------------------


def test_the_worker_thread_runs_jobs_and_stops_promptly(context: JobContext) -> None:
    ran = threading.Event()
    kind = new_kind(lambda _ctx, _payload: ran.set())
    worker = Worker(context, poll_seconds=0.05).start()
    try:
        add_job(context.database, kind)
        assert ran.wait(10)
    finally:
        worker.stop()
    assert not worker.running

    idle = Worker(context, poll_seconds=30).start()
    time.sleep(0.1)  # now waiting out its long poll
    started = time.monotonic()
    idle.stop()
    assert time.monotonic() - started < 1
    assert not idle.running


def test_the_worker_logs_errors_and_keeps_going(
    tmp_path, runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # No tables: every run_due fails, as when the database is unreachable.
    broken = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    context = JobContext(broken, runtime.keyring, runtime.sealer, runtime.settings)
    with caplog.at_level(logging.ERROR, logger="onecard.core.jobs"):
        worker = Worker(context, poll_seconds=0.01).start()
        try:
            deadline = time.monotonic() + 10
            while len(caplog.records) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert worker.running
        finally:
            worker.stop()
            broken.dispose()
    assert len(caplog.records) >= 3
    assert all(record.exc_info for record in caplog.records)
