"""The dedicated OCSP responder (``onecard ocsp-responder``) answers as the main application
does, speaks HTTP/1.1 correctly (keep-alive, pipelining, HTTP/1.0, limits) and survives
anything thrown at its socket; the command refuses a database that is not prepared.

Most tests talk to one responder running in a thread (:func:`running_ocsp_responder`) on the
session's database, over raw sockets where the framing matters; the main application is the
session's, through the test client.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from typer.testing import CliRunner

from onecard.api import ocsp_server
from onecard.api.cli import app as cli_app
from onecard.ca import issuance, revocation
from onecard.ca.csr import check_csr
from onecard.ca.models import Authority, Certificate
from onecard.ca.profiles import get_profile
from onecard.ca.revocation import RevocationReason
from onecard.core.audit import Actor
from onecard.core.jobs import JobContext, run_due
from onecard.core.settings import get_settings
from onecard.identity.models import AssuranceLevel
from tests import factories
from tests.ca import csr_factory
from tests.interop.ca_server import OcspResponderThread, running_ocsp_responder
from tests.interop.live_server import free_port

OCSP_HEADERS = {"Content-Type": "application/ocsp-request"}
# Those of onecard.api.ocsp_lane, and a Date.
ANSWER_HEADERS = {
    "date",
    "content-type",
    "x-content-type-options",
    "cache-control",
    "content-length",
}


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def responder(runtime) -> Iterator[OcspResponderThread]:  # type: ignore[no-untyped-def]
    with running_ocsp_responder(runtime) as running:
        yield running
    assert running.errors == []


@dataclass(frozen=True)
class Pki:
    issuer: x509.Certificate
    good: x509.Certificate
    revoked: x509.Certificate


def _issue(runtime) -> tuple[x509.Certificate, Certificate]:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        person = factories.person(session, runtime.sealer, level=AssuranceLevel.SUBSTANTIAL)
        record = issuance.issue(
            session,
            runtime.ca,
            profile=get_profile("citizen-auth"),
            subject=issuance.person_subject(session, person.id),
            csr=check_csr(csr_factory.csr()),
            actor=Actor.system(),
        )
    return x509.load_der_x509_certificate(record.der), record


def _revoke(runtime, record: Certificate) -> None:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        revocation.revoke(
            session,
            session.get_one(Certificate, record.id),
            RevocationReason.KEY_COMPROMISE,
            actor=Actor.system(),
        )


@pytest.fixture(scope="module")
def pki(runtime) -> Pki:  # type: ignore[no-untyped-def]
    """A good and a revoked certificate, the revoked one's answer re-signed by the jobs (so
    that both servers serve stored bytes)."""
    good, _ = _issue(runtime)
    revoked, record = _issue(runtime)
    _revoke(runtime, record)
    run_due(JobContext.from_runtime(runtime))
    with runtime.database.session() as session:
        authority = session.get_one(Authority, record.authority_id)
        issuer = runtime.ca.certificate(authority)
    return Pki(issuer, good, revoked)


def _request(
    pki: Pki, leaf: x509.Certificate | None, *, nonce: bytes | None = None, serial: int = 0
) -> bytes:
    """An OCSP request (SHA-1 CertID) about ``leaf``, or about ``serial`` of the issuer."""
    builder = ocsp.OCSPRequestBuilder()
    if leaf is not None:
        builder = builder.add_certificate(leaf, pki.issuer, hashes.SHA1())
    else:
        probe = ocsp.OCSPRequestBuilder().add_certificate(pki.good, pki.issuer, hashes.SHA1())
        built = probe.build()
        builder = builder.add_certificate_by_hash(
            built.issuer_name_hash, built.issuer_key_hash, serial, hashes.SHA1()
        )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _get_path(der: bytes) -> str:
    return "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")


def _fields(der: bytes) -> dict[str, Any]:
    """What an answer says, without what changes from one signature to the next."""
    answer = ocsp.load_der_ocsp_response(der)
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return {"response_status": answer.response_status}
    try:
        nonce = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        nonce = None
    return {
        "response_status": answer.response_status,
        "certificate_status": answer.certificate_status,
        "serial": answer.serial_number,
        "revocation_time": answer.revocation_time_utc,
        "revocation_reason": answer.revocation_reason,
        "hash": answer.hash_algorithm.name,
        "issuer": (answer.issuer_name_hash, answer.issuer_key_hash),
        "responder": answer.responder_key_hash,
        "certificates": answer.certificates,
        "nonce": nonce,
        "lifetime": answer.next_update_utc - answer.this_update_utc,  # type: ignore[operator]
    }


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _read_answer(stream: BinaryIO) -> Answer:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    return Answer(int(status_line.split()[1]), headers, body)


@pytest.fixture
def connect(responder: OcspResponderThread) -> Iterator[Any]:
    """``connect()`` -> (socket, its read stream), to the responder; closed at the end."""
    opened: list[socket.socket] = []
    port = int(responder.base.rsplit(":", 1)[1])

    def make() -> tuple[socket.socket, BinaryIO]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        opened.append(sock)
        return sock, sock.makefile("rb")

    yield make
    for sock in opened:
        sock.close()


def _post(der: bytes, *, content_type: str = "application/ocsp-request", extra: str = "") -> bytes:
    return (
        f"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(der)}\r\n{extra}\r\n"
    ).encode() + der


def _get(path: str, *, version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: x\r\n{extra}\r\n".encode()


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset) within the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# -- the same answers as the main application -----------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("state", ["good", "revoked", "unknown"])
def test_answers_are_those_of_the_main_application(
    client, responder: OcspResponderThread, pki: Pki, state: str, nonce: bool, method: str
) -> None:
    leaf = {"good": pki.good, "revoked": pki.revoked, "unknown": None}[state]
    der = _request(
        pki,
        leaf,
        nonce=secrets.token_bytes(16) if nonce else None,
        serial=secrets.randbits(159) | 1 << 158,
    )
    if method == "POST":
        ours = requests.post(f"{responder.base}/ocsp", data=der, headers=OCSP_HEADERS, timeout=10)
        theirs = client.post("/ocsp", content=der, headers=OCSP_HEADERS)
    else:
        ours = requests.get(responder.base + _get_path(der), timeout=10)
        theirs = client.get(_get_path(der))
    assert ours.status_code == theirs.status_code == 200
    assert _fields(ours.content) == _fields(theirs.content)
    answer = ocsp.load_der_ocsp_response(ours.content)
    assert answer.certificate_status.name.lower() == state
    if state == "revoked":
        assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    if nonce:
        assert _fields(ours.content)["nonce"] is not None
    elif state != "unknown":
        assert ours.content == theirs.content  # the same pre-signed bytes
    assert {name.lower() for name in ours.headers} == ANSWER_HEADERS
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert ours.headers["x-content-type-options"] == "nosniff"
    assert ours.headers["cache-control"] == "no-transform"
    assert int(ours.headers["content-length"]) == len(ours.content)


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", "/ocsp", b"garbage", "application/ocsp-request"),
        ("POST", "/ocsp", b"", "application/ocsp-request"),
        ("POST", "/ocsp", b"\x30\x00", "text/plain"),
        ("POST", "/ocsp", b"\x30\x00", None),
        ("GET", "/ocsp/not-base64!!", None, None),
        ("GET", "/ocsp/AAAA", None, None),
        ("GET", "/ocsp/", None, None),
    ],
)
def test_malformed_requests_are_answered_as_the_main_application_does(
    client,
    responder: OcspResponderThread,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    ours = requests.request(method, responder.base + path, data=body, headers=headers, timeout=10)
    theirs = client.request(method, path, content=body, headers=headers)
    assert ours.status_code == theirs.status_code == 400
    assert ours.content == theirs.content
    answer = ocsp.load_der_ocsp_response(ours.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ours.headers["content-type"] == "application/ocsp-response"


def test_content_type_parameters_and_case_are_ignored(
    responder: OcspResponderThread, pki: Pki
) -> None:
    headers = {"Content-Type": "Application/OCSP-Request ; charset=binary"}
    response = requests.post(
        f"{responder.base}/ocsp", data=_request(pki, pki.good), headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )


def test_a_revocation_is_answered_within_about_a_second(
    runtime, responder: OcspResponderThread, pki: Pki
) -> None:
    leaf, record = _issue(runtime)
    der = _request(pki, leaf)

    def status() -> ocsp.OCSPCertStatus:
        response = requests.post(
            f"{responder.base}/ocsp", data=der, headers=OCSP_HEADERS, timeout=10
        )
        return ocsp.load_der_ocsp_response(response.content).certificate_status

    assert status() is ocsp.OCSPCertStatus.GOOD
    assert status() is ocsp.OCSPCertStatus.GOOD  # now from memory
    _revoke(runtime, record)
    revoked_at = time.monotonic()
    while status() is not ocsp.OCSPCertStatus.REVOKED:
        assert time.monotonic() - revoked_at < 3, "the revocation was not seen"
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.5


def test_an_unexpected_failure_is_a_500_with_internal_error_logged_once(
    responder: OcspResponderThread, pki: Pki, monkeypatch, caplog
) -> None:
    def fail(der: bytes) -> bytes:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(responder.responder, "cached", lambda der: None)
    monkeypatch.setattr(responder.responder, "answer", fail)
    with caplog.at_level(logging.ERROR, logger="onecard.ocsp_server"):
        response = requests.post(
            f"{responder.base}/ocsp", data=_request(pki, pki.good), headers=OCSP_HEADERS, timeout=10
        )
    assert response.status_code == 500
    assert ocsp.load_der_ocsp_response(response.content).response_status is (
        ocsp.OCSPResponseStatus.INTERNAL_ERROR
    )
    assert b"database" not in response.content
    records = [r for r in caplog.records if r.name == "onecard.ocsp_server"]
    assert len(records) == 1
    assert records[0].exc_info is not None


# -- HTTP ---------------------------------------------------------------------------------


def test_health_unknown_paths_and_wrong_methods(responder: OcspResponderThread) -> None:
    health = requests.get(f"{responder.base}/healthz", timeout=10)
    assert (health.status_code, health.text) == (200, "ok")
    assert health.headers["content-type"].startswith("text/plain")
    for path in ("/", "/metrics", "/ocspx", "/ca/root.crt", "/healthz/x"):
        assert requests.get(responder.base + path, timeout=10).status_code == 404, path
    for method, path, allow in [
        ("GET", "/ocsp", "POST"),
        ("PUT", "/ocsp", "POST"),
        ("POST", "/ocsp/AAAA", "GET"),
        ("DELETE", "/ocsp/AAAA", "GET"),
        ("POST", "/healthz", "GET"),
    ]:
        response = requests.request(method, responder.base + path, timeout=10)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allow


def test_an_oversized_body_is_413_and_closes(connect) -> None:  # type: ignore[no-untyped-def]
    sock, stream = connect()
    sock.sendall(_post(b"\x30" * 20_000))
    answer = _read_answer(stream)
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert _closed(sock)


def test_keep_alive_answers_several_requests_on_one_connection(connect, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    sock, stream = connect()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    der = _request(pki, pki.good)
    for request in (_post(der), _get(_get_path(der)), _get("/healthz"), _post(der)):
        sock.sendall(request)
        answer = _read_answer(stream)
        assert answer.status == 200
        assert "connection" not in answer.headers
    for byte in _get(_get_path(der)):  # a request in many pieces
        sock.sendall(bytes([byte]))
    assert _fields(_read_answer(stream).body)["serial"] == pki.good.serial_number
    sock.sendall(_get("/healthz", extra="Connection: close\r\n"))
    assert _read_answer(stream).headers["connection"] == "close"
    assert _closed(sock)


def test_pipelined_requests_are_answered_in_order(runtime, connect, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    fresh, _ = _issue(runtime)  # never asked about: its answer comes from the thread pool
    nonce = secrets.token_bytes(16)
    sock, stream = connect()
    sock.sendall(
        _post(_request(pki, fresh, nonce=nonce))
        + _get("/healthz")
        + _post(_request(pki, pki.revoked))
        + _get("/nowhere")
        + _get(_get_path(_request(pki, pki.good)))
    )
    answers = [_read_answer(stream) for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 404, 200]
    assert _fields(answers[0].body)["serial"] == fresh.serial_number
    assert _fields(answers[0].body)["nonce"] == nonce
    assert answers[1].body == b"ok"
    assert _fields(answers[2].body)["serial"] == pki.revoked.serial_number
    assert _fields(answers[4].body)["serial"] == pki.good.serial_number


def test_many_pipelined_requests_in_one_send(connect, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    """More than a connection reads ahead: it pauses and resumes, losing nothing."""
    sock, stream = connect()
    count = 5 * ocsp_server.MAX_PIPELINED
    sock.sendall(_post(_request(pki, pki.good)) * count)
    answers = [_read_answer(stream) for _ in range(count)]
    assert {a.status for a in answers} == {200}


def test_http_10_closes_unless_asked_to_keep_alive(connect) -> None:  # type: ignore[no-untyped-def]
    sock, stream = connect()
    sock.sendall(_get("/healthz", version="1.0", extra="Connection: keep-alive\r\n"))
    answer = _read_answer(stream)
    assert (answer.status, answer.headers["connection"]) == (200, "keep-alive")
    sock.sendall(_get("/healthz", version="1.0"))
    answer = _read_answer(stream)
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert _closed(sock)


def test_idle_connections_are_closed(connect, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ocsp_server, "IDLE_TIMEOUT_SECONDS", 0.2)
    sock, stream = connect()
    sock.sendall(_get("/healthz"))
    assert _read_answer(stream).status == 200
    sock.settimeout(5)  # the responder looks for idle connections every second
    assert _closed(sock)


def test_connections_beyond_the_cap_are_closed_at_once(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ocsp_server, "MAX_CONNECTIONS", 2)
    with running_ocsp_responder(runtime) as running:
        port = int(running.base.rsplit(":", 1)[1])

        def served() -> socket.socket:
            """A connection that got an answer (once the server has seen earlier ones close:
            its own start-up check's, a test's)."""
            deadline = time.monotonic() + 10
            while True:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(_get("/healthz"))
                if sock.recv(12) == b"HTTP/1.1 200":
                    return sock
                sock.close()
                assert time.monotonic() < deadline

        held = [served(), served()]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as refused:
            assert _closed(refused)
        held.pop().close()
        held.append(served())
        for sock in held:
            sock.close()


def test_stopping_finishes_the_answers_in_flight(runtime, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    with running_ocsp_responder(runtime) as running:
        real, started = running.responder.answer, threading.Event()

        def slow(der: bytes) -> bytes:
            started.set()
            time.sleep(0.5)
            return real(der)

        running.responder.answer = slow  # type: ignore[method-assign]
        port = int(running.base.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(_post(_request(pki, pki.good, nonce=b"n" * 16)))
        stream = sock.makefile("rb")
        assert started.wait(10)
    answer = _read_answer(stream)  # leaving the block has stopped the responder
    sock.close()
    assert answer.status == 200
    assert answer.headers["connection"] == "close"
    assert _fields(answer.body)["nonce"] == b"n" * 16
    assert running.errors == []


# -- hostile input --------------------------------------------------------------------------


def _statuses(sock: socket.socket) -> list[int]:
    """Every status line the server sent until it closed the connection."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def _throw(responder: OcspResponderThread, data: bytes) -> list[int]:
    port = int(responder.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it may close before reading all of it (a refused request)
        return _statuses(sock)


def _still_serving(responder: OcspResponderThread) -> None:
    assert requests.get(f"{responder.base}/healthz", timeout=10).status_code == 200
    assert responder.errors == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), [400]),  # a TLS hello
        (b"\x00" * 1000, [400]),
        (b"GET /healthz HTTP/9.9\r\n\r\n", [400]),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe", [200, 400]),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", [431]),
        (b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n", [431]),
        (b"POST /ocsp HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + bytes(12_000), [413]),
        (b"POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", [400]),
        (b"POST /ocsp HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", []),  # cut short
        (b"GET /healthz HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", [200]),
        (b"CONNECT example.org:443 HTTP/1.1\r\n\r\n", [404]),
        (b"GET /ocsp/%ZZ%00 HTTP/1.1\r\n\r\n", [400]),
        (b"GET http://example.org/healthz HTTP/1.1\r\n\r\n", [200]),
    ],
    ids=lambda value: value[:24].decode("latin-1") if isinstance(value, bytes) else None,
)
def test_garbage_gets_a_4xx_and_never_stops_the_server(
    responder: OcspResponderThread, data: bytes, expected: list[int]
) -> None:
    assert _throw(responder, data) == expected
    _still_serving(responder)


_STARTS = [
    b"",
    b"GET /ocsp/",
    b"GET /healthz HTTP/1.1\r\n",
    b"POST /ocsp HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 64\r\n\r\n",
    b"POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.sampled_from(_STARTS), noise=st.binary(max_size=3000))
def test_random_bytes_never_stop_the_server_nor_give_a_500(
    responder: OcspResponderThread, start: bytes, noise: bytes
) -> None:
    statuses = _throw(responder, start + noise)
    assert all(400 <= status < 500 or status == 200 for status in statuses), statuses
    _still_serving(responder)


# -- the command ----------------------------------------------------------------------------


@pytest.mark.parametrize("migrate", [False, True], ids=["no_schema", "no_hierarchy"])
def test_the_command_refuses_a_database_not_prepared(
    fresh_db, master_key: bytes, tmp_path, monkeypatch, migrate: bool
) -> None:
    database = fresh_db(migrate=migrate)
    monkeypatch.setenv("ONECARD_DATABASE_URL", database.url)
    monkeypatch.setenv("ONECARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONECARD_MASTER_KEY", base64.urlsafe_b64encode(master_key).decode())
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["ocsp-responder", "--port", str(free_port())])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "run `onecard init` first" in " ".join(result.output.split())
    # It prepared nothing itself: no migrations, no CA.
    if migrate:
        with database.session() as session:
            assert session.exec(select(Authority)).first() is None
    else:
        assert database.current_revision() is None


@pytest.mark.slow
def test_the_command_serves_with_workers_until_sigterm(cli) -> None:  # type: ignore[no-untyped-def]
    _, database = cli  # `onecard init` has prepared the database
    with database.session() as session:
        citizen_ca = session.exec(select(Authority).where(Authority.name == "citizen-1")).one()
        issuer = x509.load_der_x509_certificate(citizen_ca.certificate)
        issued = x509.load_der_x509_certificate(citizen_ca.ocsp_certificate)  # by citizen-1
    probe = ocsp.OCSPRequestBuilder().add_certificate(issued, issuer, hashes.SHA1()).build()
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            probe.issuer_name_hash, probe.issuer_key_hash, 12345, hashes.SHA1()
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    port = free_port()
    command = [sys.executable, "-c", "from onecard.api.cli import main; main()"]
    command += ["ocsp-responder", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the responder did not start"
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        response = requests.post(f"{base}/ocsp", data=request, headers=OCSP_HEADERS, timeout=10)
        assert response.status_code == 200
        answer = ocsp.load_der_ocsp_response(response.content)
        assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
