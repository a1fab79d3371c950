"""The migrations produce exactly the schema the models describe, on the current back end, and
the committed OpenAPI document matches the application."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from onecard.api.cli import openapi_document
from onecard.core.db import alembic_config
from onecard.models import load_all_models


def test_migrations_match_the_models(fresh_db) -> None:
    load_all_models()
    database = fresh_db()
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"run a new migration: {diff}"


def test_downgrade_to_base_and_upgrade_again(fresh_db) -> None:
    database = fresh_db()
    with database.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert database.current_revision() is None
    database.upgrade()
    assert database.current_revision() is not None


def test_committed_openapi_document_is_current() -> None:
    committed = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
    assert committed.read_text() == openapi_document(), "run `onecard openapi` (make openapi)"
