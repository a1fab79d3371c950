"""Test fixtures. The suite runs on SQLite by default and on PostgreSQL when
``ONECARD_TEST_DATABASE_URL`` is set; each PostgreSQL run works in its own schema and drops it
afterwards, so runs never see each other's rows and leave nothing behind."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from onecard.core.db import Database
from onecard.core.sealing import Sealer

PG_URL = os.environ.get("ONECARD_TEST_DATABASE_URL", "")
BACKEND = "postgresql" if PG_URL else "sqlite"


def _schema_url(base: str, schema: str) -> str:
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


class DatabaseFactory:
    """Creates migrated, isolated databases and removes them when the test session ends."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._made: list[tuple[Database, str | None]] = []

    def url(self) -> tuple[str, str | None]:
        if not PG_URL:
            return f"sqlite:///{self._tmp / f'{secrets.token_hex(6)}.db'}", None
        schema = f"onecard_test_{secrets.token_hex(6)}"
        engine = sa.create_engine(PG_URL)
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return _schema_url(PG_URL, schema), schema

    def __call__(self, *, migrate: bool = True) -> Database:
        url, schema = self.url()
        database = Database(url)
        self._made.append((database, schema))
        if migrate:
            database.upgrade()
        return database

    def cleanup(self) -> None:
        for database, schema in self._made:
            database.dispose()
            if schema:
                engine = sa.create_engine(PG_URL)
                with engine.begin() as connection:
                    connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                engine.dispose()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def db(database_factory: DatabaseFactory) -> Database:
    """One migrated database shared by the session; tests use unique data, not wipes."""
    return database_factory()


@pytest.fixture
def fresh_db(database_factory: DatabaseFactory) -> Iterator[Callable[..., Database]]:
    """A new, empty, migrated database for tests that need a pristine one. Its connections
    are closed when the test ends (PostgreSQL allows only so many); the schema goes at the
    end of the session."""
    made: list[Database] = []

    def make(**kwargs: bool) -> Database:
        database = database_factory(**kwargs)
        made.append(database)
        return database

    yield make
    for database in made:
        database.dispose()


@pytest.fixture(scope="session")
def master_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture(scope="session")
def sealer(master_key: bytes) -> Sealer:
    return Sealer(master_key)


# -- the application ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, db: Database, master_key: bytes):
    from pydantic import SecretStr

    from onecard.core.settings import Settings

    return Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("var"),
        database_url=db.url,
        master_key=SecretStr(base64.urlsafe_b64encode(master_key).decode()),
        public_url="http://testserver",
        # Cheaper argon2id for tests only; production refuses values below OWASP's.
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
    )


@pytest.fixture(scope="session")
def runtime(settings, db: Database):
    from onecard.api.runtime import build_runtime
    from onecard.ca.hierarchy import ensure_hierarchy
    from onecard.core.audit import Actor

    built = build_runtime(settings, database=db)
    with db.session() as session:
        built.keyring.ensure_keys(session, Actor.system())
        ensure_hierarchy(session, built.ca, Actor.system())
    return built


@pytest.fixture(scope="session")
def app(runtime):
    from onecard.api.main import create_app

    return create_app(runtime)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def staff(runtime):
    """``staff("registrar")`` -> (person, headers): a level-2 person holding the roles."""
    from tests.factories import staff_member

    def make(*roles: str, level: int = 2):
        return staff_member(runtime, *roles, level=level)

    return make


@pytest.fixture
def citizen(runtime):
    """``citizen()`` -> (person, headers, password): a signed-in level-1 citizen."""
    from tests.factories import signed_in_citizen

    return lambda **kwargs: signed_in_citizen(runtime, **kwargs)


@pytest.fixture
def cli(fresh_db, master_key, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """``(run, database)``: the ``onecard`` command line on a fresh database, after
    ``onecard init``; ``run(*args, code=0)`` returns the output and checks the exit status."""
    from typer.testing import CliRunner

    from onecard.api.cli import app
    from onecard.core.settings import get_settings

    database = fresh_db(migrate=False)
    monkeypatch.setenv("ONECARD_DATABASE_URL", database.url)
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONECARD_MASTER_KEY", base64.urlsafe_b64encode(master_key).decode())
    monkeypatch.setenv("ONECARD_PASSWORD_HASH_MEMORY_KIB", "1024")
    monkeypatch.setenv("ONECARD_PUBLIC_URL", "http://testserver")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("init")
    yield run, database
    get_settings.cache_clear()
