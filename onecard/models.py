"""Imports every table model so SQLModel's metadata is complete (migrations, schema tests)."""

from __future__ import annotations


def load_all_models() -> None:
    import onecard.ca.models
    import onecard.card.models
    import onecard.core.audit
    import onecard.core.idempotency
    import onecard.core.jobs
    import onecard.core.keyring
    import onecard.core.once
    import onecard.core.ratelimit
    import onecard.identity.models
    import onecard.identity.oidc.models  # noqa: F401
