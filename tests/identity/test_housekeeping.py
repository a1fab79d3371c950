"""Housekeeping forgets what has expired (a day past expiry) and keeps everything else."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlmodel import select

from onecard.core import clock, once, ratelimit
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jobs import JobContext, run_housekeeping
from onecard.identity.oidc.housekeeping import sweep_expired
from onecard.identity.oidc.models import AccessToken
from tests.oidc_flow import make_portal


def _access_token(runtime, client_row_id, expires_in: timedelta) -> str:  # type: ignore[no-untyped-def]
    jti = secrets.token_urlsafe(12)
    with runtime.database.session() as session:
        session.add(
            AccessToken(jti=jti, client_id=client_row_id, expires_at=clock.now() + expires_in)
        )
    return jti


def test_expired_rows_go_and_live_ones_stay(runtime) -> None:
    portal = make_portal(runtime)
    with runtime.database.session() as session:
        from onecard.identity.oidc.clients import get_client

        client_row_id = get_client(session, portal.client_id).id
    with use_clock(FrozenClock()) as frozen:
        old = _access_token(runtime, client_row_id, timedelta(minutes=5))
        with runtime.database.session() as session:
            assert once.consume(session, "test", "old", until=clock.now() + timedelta(minutes=5))
            key = ratelimit.bucket_key(runtime.sealer, "login", secrets.token_hex(4))
            ratelimit.count_failure(session, key, window=timedelta(minutes=15))
        frozen.advance(timedelta(days=1, minutes=10))
        fresh = _access_token(runtime, client_row_id, timedelta(minutes=5))
        with runtime.database.session() as session:
            removed = sweep_expired(session)
            assert removed >= 2
            assert ratelimit.sweep(session) >= 1
            jtis = set(session.exec(select(AccessToken.jti)))
            assert old not in jtis
            assert fresh in jtis
            # The used value is forgotten, so it could be consumed again (it expired anyway).
            assert once.consume(session, "test", "old", until=clock.now() + timedelta(minutes=5))


def test_the_loop_runs_each_task_once_per_interval(runtime) -> None:
    context = JobContext.from_runtime(runtime)
    last: dict[str, float] = {}
    run_housekeeping(context, last)
    first = dict(last)
    run_housekeeping(context, last)
    assert last == first  # not due again yet
    assert {"rate_buckets", "oidc_expired", "finished_jobs"} <= set(last)
