"""Alembic migrations; the schema changes only through these (``onecard db upgrade``)."""
