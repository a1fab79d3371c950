"""Benchmark of ``onecard import persons``: N generated rows into a fresh database, twice.

    .venv/bin/python bench/import_persons.py --rows 100000 [--database-url URL]

Without ``--database-url`` it runs on SQLite (a file in a temporary directory) and on the local
PostgreSQL (``postgresql+psycopg://postgres@127.0.0.1:5432/test``) in a temporary schema that
it drops at the end; PostgreSQL is skipped with a message when it is unreachable. Each back end
gets a freshly migrated database; the first run imports every row, the second finds every row
unchanged (the idempotent re-run). ``--profile`` prints the top of a cProfile of the first run.
Nothing listens on a port; everything it creates is removed when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datagen import write_csv
from onecard.core.audit import Actor
from onecard.core.db import Database
from onecard.core.sealing import Sealer
from onecard.identity.importer import ImportSummary, import_persons

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onecard-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        source = write_csv(workdir / "persons.csv", args.rows)
        print(f"generated {args.rows} rows in {time.perf_counter() - started:.1f} s")
        targets = [args.database_url] if args.database_url else ["sqlite", DEFAULT_POSTGRES]
        for target in targets:
            with _database(target, workdir) as database:
                if database is not None:
                    _bench(database, source, workdir, args)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database-url", help="one back end only (default: SQLite and PostgreSQL)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first run")
    args = parser.parse_args(argv)
    if not 1 <= args.rows <= 10_000_000:
        parser.error("--rows must be between 1 and 10,000,000")
    return args


@contextlib.contextmanager
def _database(target: str, workdir: Path) -> Iterator[Database | None]:
    if target == "sqlite":
        database = Database(f"sqlite:///{workdir / f'bench-{secrets.token_hex(4)}.db'}")
        try:
            yield _migrated(database)
        finally:
            database.dispose()
        return
    if make_url(target).get_backend_name() != "postgresql":
        database = Database(target)
        try:
            yield _migrated(database)
        finally:
            database.dispose()
        return
    with _postgres_schema(target) as database:
        yield database


@contextlib.contextmanager
def _postgres_schema(base_url: str) -> Iterator[Database | None]:
    schema = f"onecard_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(base_url, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        print(f"postgresql: skipped, cannot connect ({type(exc.orig).__name__})")
        admin.dispose()
        yield None
        return
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    database = Database(url.render_as_string(hide_password=False))
    try:
        yield _migrated(database)
    finally:
        database.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _migrated(database: Database) -> Database:
    database.upgrade()
    return database


def _bench(database: Database, source: Path, workdir: Path, args: argparse.Namespace) -> None:
    sealer = Sealer(secrets.token_bytes(32))
    for label in ("first run", "re-run"):
        profiler = cProfile.Profile() if args.profile and label == "first run" else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        summary = import_persons(
            database,
            sealer,
            source,
            actor=Actor.cli("bench"),
            report_path=workdir / "rejected.csv",
            batch_size=args.batch_size,
        )
        elapsed = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        _print(database.backend, label, summary, elapsed)
        if profiler is not None:
            _print_profile(profiler)


def _print(backend: str, label: str, summary: ImportSummary, elapsed: float) -> None:
    print(
        f"{backend:<10} {label:<9} {summary.total:>8} rows {elapsed:8.2f} s "
        f"{summary.total / elapsed:>9,.0f} rows/s  (imported {summary.imported}, "
        f"unchanged {summary.unchanged}, rejected {summary.rejected})"
    )


def _print_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
