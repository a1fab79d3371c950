"""Alembic environment: runs on the connection ``Database.upgrade`` hands over, or on the
configured database when the ``alembic`` command runs it directly."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from onecard.core.db import Database
from onecard.core.settings import get_settings
from onecard.models import load_all_models

load_all_models()
target_metadata = SQLModel.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    database = Database(get_settings().effective_database_url)
    with database.engine.begin() as new_connection:
        _run(new_connection)
    database.dispose()
