"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0) delivered from the outbox to
portals that are real HTTP servers on 127.0.0.1: the token a portal receives verifies against
our JWKS, failures are retried with growing backoff, a dead or slow portal delays nobody
beyond the timeout, and two workers never deliver the same logout twice."""

from __future__ import annotations

import contextlib
import itertools
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import pytest
from sqlmodel import select

from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jobs import Job, JobContext, RunReport, _lease_due, run_due
from onecard.identity.oidc.backchannel import (
    BACKCHANNEL_LOGOUT,
    DELIVERY_TIMEOUT_SECONDS,
    LOGOUT_EVENT,
    enqueue_backchannel_logouts,
    logout_token_claims,
)
from onecard.identity.oidc.models import Client, SessionClient, SsoSession, SubjectType
from onecard.identity.oidc.subjects import subject_for
from tests.factories import fresh_runtime, person

# -- portals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]

    @property
    def token(self) -> str:
        (token,) = self.form["logout_token"]
        return token


class Portal:
    """A relying party's back-channel logout endpoint: answers ``statuses`` in turn (the last
    one from then on), after ``delay`` seconds, and records every request it gets."""

    def __init__(self, statuses: tuple[int, ...] = (200,), *, delay: float = 0) -> None:
        self.received: list[Received] = []
        self._statuses = list(statuses)
        self._delay = delay
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def uri(self, path: str = "/backchannel-logout") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def _answer(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = portal._answer(
                    Received(self.path, dict(self.headers), parse_qs(body.decode("ascii")))
                )
                if portal._delay:
                    portal._release.wait(portal._delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

            def handle(self) -> None:
                # The sender may give up waiting (the slow portal) before the answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

        return Handler

    def __enter__(self) -> Portal:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def dead_uri() -> str:
    """An address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/backchannel-logout"


# -- data ---------------------------------------------------------------------------------


@pytest.fixture
def runtime_alone(fresh_db, settings):
    """A runtime on its own database: run_due sees only this test's jobs."""
    return fresh_runtime(settings, fresh_db())


@pytest.fixture
def context(runtime_alone) -> JobContext:
    return JobContext.from_runtime(runtime_alone)


def make_client(session, uri: str | None, **fields) -> Client:
    client = Client(
        client_id=f"portal-{secrets.token_hex(6)}",
        name="A government portal",
        client_type="confidential",
        auth_method="client_secret_basic",
        redirect_uris=["https://portal.example.gov.cn/callback"],
        grant_types=["authorization_code"],
        scopes=["openid"],
        backchannel_logout_uri=uri,
        **fields,
    )
    session.add(client)
    return client


@dataclass(frozen=True)
class SignedIn:
    person_id: uuid.UUID
    sso: SsoSession
    clients: list[Client]


def signed_in(runtime, *client_specs: tuple[str | None, dict]) -> SignedIn:
    """A citizen's SSO session in which each of the clients received an ID token."""
    with runtime.database.session() as session:
        citizen = person(session, runtime.sealer)
        now = datetime.now(UTC)
        sso = SsoSession(
            cookie_hash=secrets.token_bytes(32),
            sid=secrets.token_urlsafe(16),
            person_id=citizen.id,
            auth_time=now,
            expires_at=now + timedelta(hours=8),
        )
        session.add(sso)
        clients = [make_client(session, uri, **fields) for uri, fields in client_specs]
        session.flush()
        for client in clients:
            session.add(SessionClient(session_id=sso.id, client_id=client.id))
    return SignedIn(citizen.id, sso, clients)


def log_out(runtime, signed: SignedIn) -> int:
    with runtime.database.session() as session:
        return enqueue_backchannel_logouts(session, runtime.sealer, signed.sso)


def jobs(runtime) -> list[Job]:
    with runtime.database.session() as session:
        return list(session.exec(select(Job).where(Job.kind == BACKCHANNEL_LOGOUT)).all())


def verify(runtime, token: str, audience: str, *, leeway: float = 0) -> dict:
    """Check ``token`` as a portal would (OIDC Back-Channel Logout §2.6), with pyjwt."""
    with runtime.database.session() as session:
        key_set = jwt.PyJWKSet.from_dict(runtime.keyring.jwks(session))
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    (key,) = [k for k in key_set.keys if k.key_id == header["kid"]]
    return jwt.decode(
        token,
        key=key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer="http://testserver",
        leeway=leeway,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
    )


@pytest.fixture
def frozen() -> FrozenClock:
    with use_clock(FrozenClock(datetime.now(UTC))) as clock:
        yield clock  # type: ignore[misc]


# -- the logout token ---------------------------------------------------------------------


def test_logout_token_claims_follow_the_specification() -> None:
    now = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
    claims = logout_token_claims(
        issuer="https://id.city.gov.cn", audience="portal", sub="s", sid="x", now=now
    )
    assert claims["iss"] == "https://id.city.gov.cn"
    assert (claims["aud"], claims["sub"], claims["sid"]) == ("portal", "s", "x")
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] == claims["iat"] + 120
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "nonce" not in claims
    again = logout_token_claims(
        issuer="https://id.city.gov.cn", audience="portal", sub="s", sid="x", now=now
    )
    assert len(claims["jti"]) >= 16
    assert again["jti"] != claims["jti"]
    for missing in ("issuer", "audience", "sub", "sid"):
        arguments = {"issuer": "i", "audience": "a", "sub": "s", "sid": "x", missing: ""}
        with pytest.raises(ValueError, match="logout token"):
            logout_token_claims(**arguments, now=now)


@pytest.mark.parametrize(
    ("alg", "subject_type"), [("RS256", SubjectType.PUBLIC), ("ES256", SubjectType.PAIRWISE)]
)
def test_a_logout_token_reaches_the_portal_and_verifies(
    runtime_alone, context: JobContext, alg: str, subject_type: SubjectType
) -> None:
    with Portal() as portal:
        signed = signed_in(
            runtime_alone,
            (portal.uri(), {"id_token_alg": alg, "subject_type": subject_type}),
        )
        assert log_out(runtime_alone, signed) == 1
        assert run_due(context) == RunReport(done=1)

    (request,) = portal.received
    assert request.path == "/backchannel-logout"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Cache-Control"] == "no-store"
    (client,) = signed.clients
    claims = verify(runtime_alone, request.token, client.client_id)
    assert jwt.get_unverified_header(request.token)["alg"] == alg
    expected_sub = subject_for(runtime_alone.sealer, client, signed.person_id)
    assert claims["sub"] == expected_sub
    assert (claims["sub"] == str(signed.person_id)) == (subject_type == SubjectType.PUBLIC)
    assert claims["sid"] == signed.sso.sid
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert claims["exp"] - claims["iat"] == 120
    assert "nonce" not in claims
    (job,) = jobs(runtime_alone)
    assert job.payload == {"client": str(client.id), "sub": expected_sub, "sid": signed.sso.sid}


def test_only_active_portals_with_a_backchannel_uri_are_queued(runtime_alone) -> None:
    signed = signed_in(
        runtime_alone,
        ("http://127.0.0.1:9/a", {}),
        ("http://127.0.0.1:9/b", {"status": "disabled"}),
        (None, {}),
    )
    assert log_out(runtime_alone, signed) == 1
    (job,) = jobs(runtime_alone)
    assert job.payload["client"] == str(signed.clients[0].id)


def test_a_portal_answering_500_gets_the_token_on_the_retry(
    runtime_alone, context: JobContext, frozen: FrozenClock
) -> None:
    with Portal(statuses=(500, 200)) as portal:
        signed = signed_in(runtime_alone, (portal.uri(), {}))
        log_out(runtime_alone, signed)
        assert run_due(context) == RunReport(retried=1)
        (job,) = jobs(runtime_alone)
        assert (job.attempts, job.last_error) == (
            1,
            "BackchannelDeliveryError: the portal answered HTTP 500",
        )
        assert run_due(context) == RunReport()  # not before its backoff
        frozen.set(job.run_after)
        assert run_due(context) == RunReport(done=1)

    first, second = (r.token for r in portal.received)
    audience = signed.clients[0].client_id
    # The frozen clock ran ahead of the real one by the backoff.
    retried = verify(runtime_alone, second, audience, leeway=30)
    assert retried["sid"] == signed.sso.sid
    # Signed when sent: the retry carries a fresh token, not the refused one again.
    refused = verify(runtime_alone, first, audience, leeway=30)
    assert retried["iat"] == int(frozen.now().timestamp()) > refused["iat"]
    assert retried["jti"] != refused["jti"]
    assert jobs(runtime_alone)[0].status == "done"


def test_a_portal_that_keeps_failing_is_retried_with_growing_waits_then_given_up(
    runtime_alone, context: JobContext, frozen: FrozenClock
) -> None:
    with Portal(statuses=(503,)) as portal:
        log_out(runtime_alone, signed_in(runtime_alone, (portal.uri(), {})))
        (job,) = jobs(runtime_alone)
        waits = []
        for _ in range(job.max_attempts - 1):
            assert run_due(context) == RunReport(retried=1)
            (job,) = jobs(runtime_alone)
            waits.append(job.run_after - frozen.now())
            frozen.set(job.run_after)
        assert run_due(context) == RunReport(failed=1)

    assert len(portal.received) == job.max_attempts == 8
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))
    assert timedelta(seconds=4) <= waits[0] <= timedelta(seconds=5)
    (job,) = jobs(runtime_alone)
    assert (job.status, job.attempts) == ("failed", 8)
    assert job.last_error == "BackchannelDeliveryError: the portal answered HTTP 503"


@pytest.mark.parametrize(
    ("status", "delivered"), [(200, True), (204, True), (202, False), (302, False), (404, False)]
)
def test_only_200_or_204_is_a_delivery(
    runtime_alone, context: JobContext, status: int, delivered: bool
) -> None:
    with Portal(statuses=(status,)) as portal:
        log_out(runtime_alone, signed_in(runtime_alone, (portal.uri(), {})))
        expected = RunReport(done=1) if delivered else RunReport(retried=1)
        assert run_due(context) == expected
    # A redirect is not followed: it would turn the POST into a GET without the token.
    assert [r.path for r in portal.received] == ["/backchannel-logout"]
    (job,) = jobs(runtime_alone)
    assert job.last_error == (
        None if delivered else f"BackchannelDeliveryError: the portal answered HTTP {status}"
    )


def test_dead_and_slow_portals_block_neither_the_logout_nor_other_portals(
    runtime_alone, context: JobContext
) -> None:
    with (
        Portal(delay=DELIVERY_TIMEOUT_SECONDS * 6) as slow,
        Portal() as good,
    ):
        signed = signed_in(runtime_alone, (dead_uri(), {}), (slow.uri(), {}), (good.uri(), {}))
        started = time.monotonic()
        assert log_out(runtime_alone, signed) == 3
        assert time.monotonic() - started < 1  # the logout only inserted three rows
        assert (slow.received, good.received) == ([], [])

        started = time.monotonic()
        report = run_due(context)
        elapsed = time.monotonic() - started

    assert report == RunReport(done=1, retried=2)
    assert DELIVERY_TIMEOUT_SECONDS - 0.5 < elapsed < DELIVERY_TIMEOUT_SECONDS + 3
    assert len(good.received) == 1
    assert len(slow.received) == 1
    errors = {job.payload["client"]: job.last_error for job in jobs(runtime_alone)}
    dead, slow_client, good_client = (str(c.id) for c in signed.clients)
    assert errors[good_client] is None
    assert errors[dead] is not None
    assert "unreachable" in errors[dead]
    assert errors[slow_client] is not None
    assert "did not answer within 5 s" in errors[slow_client]


def test_two_workers_never_deliver_the_same_logout_twice(
    runtime_alone, context: JobContext
) -> None:
    with Portal() as portal:
        signed = signed_in(runtime_alone, *[(portal.uri(f"/portal/{n}"), {}) for n in range(16)])
        assert log_out(runtime_alone, signed) == 16
        start = threading.Barrier(2)
        reports: list[RunReport] = []
        failures: list[BaseException] = []

        def worker() -> None:
            try:
                start.wait()
                deadline = time.monotonic() + 60
                while len(portal.received) < 16 and time.monotonic() < deadline:
                    reports.append(run_due(context, limit=2))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)

    assert not failures
    assert Counter(r.path for r in portal.received) == Counter(f"/portal/{n}" for n in range(16))
    assert sum(r.done for r in reports) == 16
    assert {job.status for job in jobs(runtime_alone)} == {"done"}


def test_a_logout_left_by_a_crashed_worker_is_delivered_after_the_lease(
    runtime_alone, context: JobContext, frozen: FrozenClock
) -> None:
    with Portal() as portal:
        log_out(runtime_alone, signed_in(runtime_alone, (portal.uri(), {})))
        # A worker leases the job and dies before sending anything: the lease times out.
        (lease,), _ = _lease_due(context.database, 10, 60)
        assert run_due(context) == RunReport()
        assert portal.received == []
        frozen.advance(61)
        assert run_due(context) == RunReport(done=1)

    assert len(portal.received) == 1
    (job,) = jobs(runtime_alone)
    assert (job.id, job.status, job.attempts) == (lease.id, "done", 1)


@pytest.mark.parametrize("change", ["disabled", "no uri", "deleted"])
def test_a_portal_disabled_since_the_logout_is_skipped(
    runtime_alone, context: JobContext, change: str
) -> None:
    with Portal() as portal:
        signed = signed_in(runtime_alone, (portal.uri(), {}))
        log_out(runtime_alone, signed)
        with runtime_alone.database.session() as session:
            client = session.get(Client, signed.clients[0].id)
            if change == "disabled":
                client.status = "disabled"
            elif change == "no uri":
                client.backchannel_logout_uri = None
            else:
                session.delete(session.get(SessionClient, (signed.sso.id, client.id)))
                session.flush()
                session.delete(client)
            if change != "deleted":
                session.add(client)
        assert run_due(context) == RunReport(done=1)
    assert portal.received == []
    (job,) = jobs(runtime_alone)
    assert (job.status, job.attempts, job.last_error) == ("done", 0, None)
