"""Forgetting what has expired: authorization codes, listed access tokens, refresh tokens and
used assertion identifiers. Registered with the job loop's housekeeping (see
:func:`onecard.core.jobs.register_housekeeping`); grants and sessions stay as records."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session

from onecard.core import clock, once
from onecard.core.jobs import register_housekeeping
from onecard.identity.oidc.models import AccessToken, AuthorizationCode, RefreshToken

# Kept a day past expiry: a late replay of a used code still finds it and is refused loudly.
_GRACE = timedelta(days=1)


def sweep_expired(session: Session) -> int:
    cutoff = clock.now() - _GRACE
    removed = 0
    for model in (AuthorizationCode, AccessToken, RefreshToken):
        result = session.exec(delete(model).where(model.expires_at < cutoff))  # type: ignore[call-overload]
        removed += result.rowcount
    return removed + once.sweep(session)


register_housekeeping("oidc_expired", 600, sweep_expired)
