"""Database engine and sessions for SQLite (embedded default) and PostgreSQL (production).

- One column type for datetimes, :class:`UTCDateTime`, that round-trips timezone-aware UTC on
  both back ends (SQLite has no time zones; PostgreSQL stores ``timestamptz``).
- SQLite runs in WAL mode with foreign keys on and a busy timeout, and every transaction starts
  with ``BEGIN IMMEDIATE``: SQLite allows one writer, and a deferred transaction that reads and
  then writes fails outright (``SQLITE_BUSY``) when another worker wrote in between, instead of
  waiting its turn. Readers are never blocked by WAL.
- SQLite writers take turns through a lock file (``flock``) before they ``BEGIN IMMEDIATE``.
  SQLite's own wait for its write lock polls, sleeping longer after each miss (up to 100 ms):
  a worker that writes back to back keeps winning, and one that waits can starve. Measured
  with two workers recording certificates: one wrote every batch, the other's writer waited
  for seconds. A blocked ``flock`` is woken as soon as the lock is released.
- :meth:`Database.session` is the unit of work: it commits when the block ends and rolls back
  on any exception, so a change, its audit event and any outbox row land together or not at all.
- :meth:`Database.read_session` reads through a second engine whose connections refuse writes
  (SQLite ``query_only``; PostgreSQL ``default_transaction_read_only``, in autocommit).
- PostgreSQL round trips are counted: each costs a wake-up of a PostgreSQL backend and of the
  waiting thread, which on busy cores measured 2-5 ms per statement in the issuance writer.
  A pooled connection is pinged before use only after it sat idle (a busy one is in use every
  few milliseconds), and :func:`pipelined` sends statements that return nothing together.
- Statement parameters are never written to logs or error messages (``hide_parameters``):
  they carry personal data.
- Schema changes go through Alembic only (:meth:`Database.upgrade`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the turns are kept within a process only
    fcntl = None  # type: ignore[assignment]

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Engine, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Stable constraint names so migrations can name what they alter on both back ends.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every back end; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use onecard.core.clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        hide_parameters=True,
        # Readers run each statement on its own (no BEGIN and ROLLBACK round trips). Under
        # PostgreSQL's READ COMMITTED every statement sees its own snapshot anyway, so a
        # transaction would add no consistency to reads.
        **({"isolation_level": "AUTOCOMMIT"} if read_only else {}),
    )
    if read_only:

        @event.listens_for(engine, "connect")
        def _refuse_writes(dbapi_connection: Any, _record: Any) -> None:
            # A reader's connection refuses writes, as query_only does on SQLite.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET default_transaction_read_only = on")
            dbapi_connection.commit()

    _ping_after_idle(engine)
    return engine


_PING_AFTER_IDLE = 2.0  # seconds


def _ping_after_idle(engine: Engine) -> None:
    """Check that a pooled connection still works before using it, when it sat idle for a
    while. SQLAlchemy's ``pool_pre_ping`` pings before every use, a round trip per session;
    under load connections come back within milliseconds. Should the server go away under
    load all the same, the statement that finds out fails, and SQLAlchemy then discards
    every connection the pool held before it."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool then opens a new connection in its place.
            raise DisconnectionError("a pooled connection no longer works") from exc


@contextlib.contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Send the block's statements together, in one round trip at its end (PostgreSQL
    pipeline mode); on SQLite they run as they come. Only statements whose results nobody
    reads belong here (inserts, updates): SQLAlchemy reads a result as soon as it executes,
    before the pipeline has any. An error surfaces when the block ends, as the driver's."""
    if connection.dialect.name != "postgresql":
        yield
        return
    with connection.connection.driver_connection.pipeline():
        yield


_SQLITE_POOL_SIZE = 48


def _sqlite_engine(url: str, *, read_only: bool = False) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("onecard needs a SQLite file, not an in-memory database")
    Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,
        # A SQLite connection costs only memory, and opening one runs the pragmas below: keep
        # one for each thread that may hold a session (the thread pool has 40), so none is
        # opened and closed per request under load.
        pool_size=_SQLITE_POOL_SIZE,
        max_overflow=_SQLITE_POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite's BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            # A reader's connection refuses writes: it never takes the write lock.
            *(["PRAGMA query_only=ON"] if read_only else []),
        ):
            cursor.execute(pragma)
        cursor.close()

    # Writers take the write lock at BEGIN (no deadlock upgrading a read lock later); readers
    # use a deferred BEGIN, which in WAL mode reads a snapshot beside the one writer.
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


class _WriterTurns:
    """One SQLite writer at a time across the processes sharing the file, handed over at once:
    a thread lock within the process, then an exclusive ``flock`` of ``<database>-writer``.
    A thread already holding its turn (a session opened inside another) goes straight on."""

    def __init__(self, database_file: str) -> None:
        self._lock = threading.Lock()
        self._held = threading.local()
        self._fd: int | None = None
        if fcntl is not None:
            self._fd = os.open(f"{database_file}-writer", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if getattr(self._held, "turn", False):
            yield
            return
        with self._lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._held.turn = True
            try:
                yield
            finally:
                self._held.turn = False
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """An engine plus a session factory. Domain code receives sessions, never this object."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, class_=Session, expire_on_commit=False)
        # A second engine whose connections only read (see read_session).
        self._reader = make_engine(url, pool_size=pool_size, read_only=True)
        self._readers = sessionmaker(self._reader, class_=Session, expire_on_commit=False)
        self._turns = (
            _WriterTurns(str(make_url(url).database)) if self.backend == "sqlite" else None
        )

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit at the end of the block, roll back on any exception."""
        turn = self._turns.turn() if self._turns is not None else contextlib.nullcontext()
        with turn, self._sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads; a write in it fails. On SQLite it takes no write
        lock, so reads (token checks, look-ups, CPU work between them) run beside the one
        writer instead of queueing behind it. On PostgreSQL each statement runs on its own
        (autocommit), which saves two round trips per session and gives up nothing: under
        READ COMMITTED each statement of a transaction sees its own snapshot too."""
        with self._readers() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` (one process at a time)."""
        with self.engine.begin() as connection:
            startup_lock(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
        self._reader.dispose()
        if self._turns is not None:
            self._turns.close()


_STARTUP_LOCK_ID = 0x6F6E6563  # "onec"


def startup_lock(connection: Connection) -> None:
    """Serialise start-up work (migrations, first keys) across processes and machines.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: ``BEGIN IMMEDIATE`` already holds
    the single write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _STARTUP_LOCK_ID})


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the constraint an insert or update broke, lower-cased, never a value.

    PostgreSQL names it (``uq_person_phone``); SQLite's message names the columns
    (``UNIQUE constraint failed: person.phone``) and holds no value. PostgreSQL's message text
    is not used: its DETAIL quotes the clashing value.
    """
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return name.lower()
    return "" if diag is not None else str(exc.orig).lower()


@contextlib.contextmanager
def unique_or_conflict(session: Session, conflict: Callable[[str], Exception]) -> Iterator[None]:
    """Make the changes of the block in a savepoint; a unique violation raises
    ``conflict(constraint name)``.

    Uniqueness is the database's job (no check-then-insert race); this turns its refusal into a
    domain error. The changes must be made *inside* the block: the savepoint then holds all of
    them, and a refusal leaves the outer transaction usable.
    """
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError as exc:
        raise conflict(violated_constraint(exc)) from None
