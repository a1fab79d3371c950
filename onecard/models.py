"""Imports every table model so SQLModel's metadata is complete (migrations, schema tests)."""

from __future__ import annotations


def load_all_models() -> None:
    import onecard.core.audit
    import onecard.core.idempotency
    import onecard.core.keyring
    import onecard.identity.models  # noqa: F401
