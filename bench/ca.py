"""Certificate authority throughput: issuance over HTTP, OCSP against `openssl ocsp`, CRLs.

Measurements (--measurement picks some; default: all three):

issue  certificates issued per second over HTTP: `POST /v1/me/certificates` with
       {"profile": "citizen-auth", "csr": PEM} and a citizen's bearer token, against
       `onecard serve --workers N`. Every request carries a CSR for a fresh P-256 key (a public
       key is certified for one subject only, and a citizen asks for a new key each time): the
       CSRs are generated in this process before the run, outside the measurement; the tokens
       are minted against the server's own database with onecard imported here (several
       citizens at assurance level 1, first-party access tokens with the `account` scope).
       The load generator sends each body once; success is 201 with a serial. The first
       certificate is fetched back and checked (issued by the citizen CA, the CSR's key, the
       citizen's subject) before the load; afterwards the database must hold a certificate for
       every 201 received. onecard only (the peer answers OCSP, it does not issue).
ocsp   OCSP responses per second, onecard's dedicated responder (`onecard ocsp-responder
       --workers N`, onecard.api.ocsp_server: what deployments route /ocsp to, started on its
       own port beside `onecard serve`, on the same data directory and database) against
       `openssl ocsp` run as a responder (openssl from PATH) on the same certificates: N
       certificates (--ocsp-certificates, one in ten revoked with various reasons) are issued
       in onecard with onecard imported here, the issuing authority's index is exported with
       `onecard ca export-index`, and openssl gets the issuing CA certificate, the delegated
       OCSP responder's certificate and its key (written to the temporary folder only, mode
       0600), with `-multi` = --workers and `-nmin 60`. Both get the same requests
       (cryptography's OCSPRequestBuilder, SHA-1 CertID, one per certificate, cycled through)
       from the same load generator with the same
       connections and duration, in three variants: POST without nonce (the cacheable kind
       relying parties send), GET without nonce (RFC 6960 appendix A.1: onecard at
       /ocsp/<base64>, openssl at /<base64>), and POST with a nonce (signed on demand). A
       sample of each server's answers is parsed before the load (and openssl's again after
       it): successful, signed by the delegated responder, the right serial and status
       (good/revoked, with its reason), the nonce echoed. The responder's workers are primed
       first by an unmeasured 10 s run (they answer nonce-less requests from memory once they
       have read each pre-signed answer: the steady state relying parties see); `onecard serve`
       runs the jobs that re-sign the revoked certificates' answers. `openssl ocsp` speaks
       HTTP/1.0 and closes the connection after every response, so each of its answers costs
       the client a new TCP connection (the table counts the connections opened); it is started
       afresh for each run and only then (its 3.0 responder processes spin at 100 % CPU for
       ever, answering nothing more, once a client connects and closes without a request, as
       load generators do when they stop; the benchmark reports any it finds spinning after a
       run; for the same reason it gets no warm-up run). autocannon mis-times servers that
       close connections (it writes its next request onto the closing connection and times
       each later response from a request queued long before), so it is only a throughput
       cross-check here, on the first variant (--no-autocannon skips it); against openssl it
       usually gets no figure at all, its reconnections setting off the openssl bug above.
crl    CRL generation for 100,000 revoked entries (--crl-entries), in this process (no HTTP):
       a fresh hierarchy in a temporary database (SQLite, or PostgreSQL with --database-url),
       100,000 revoked `ca_certificate` rows inserted in bulk (random 159-bit serials,
       revocation times and reasons; not real signed certificates: a CRL is built from the
       rows), then `onecard.ca.crl.publish_crl` timed as a whole (query, build, sign, store,
       commit) and its parts separately (the query; the pure `build_crl`, which builds the
       entries and signs), --crl-runs times each (the median is reported). The CRL is parsed
       with cryptography (signature checked against the issuing CA, every entry there) and by
       `openssl crl -verify`.

onecard runs `serve --workers N` (and, for ocsp, `ocsp-responder --workers N` beside it) on
127.0.0.1 in a temporary data directory on SQLite, or on PostgreSQL with --database-url (a
fresh schema, dropped afterwards); openssl's responder runs with the same number of
processes, the two one after the other (onecard idles, started, while openssl is measured).

The load generator is wrk (--load wrk, the default: C, one thread, keep-alive, Debian's wrk
package, `make bench-tools` installs it) with bench/peer/wrk_requests.lua, which sends the
prepared requests in order; it runs on the same cores as the servers. bench/peer/ca_load.mjs
(--load node: plain node:http) was the generator before: in the OCSP runs it used a whole core
and left onecard's responder workers at 25-30 %, measuring itself, and in the issuance runs it
cost about 1.2 ms of CPU per request. The
peer tools (bench/peer/: autocannon; exact versions in package.json and package-lock.json) are
installed with `npm ci` into a temporary folder, never into the repository. Everything started
is stopped and every temporary folder removed when the run ends, by failure, Ctrl-C or SIGTERM
too; if this script is killed outright, the servers still stop (they get SIGTERM when it dies),
though its temporary folder stays.

    .venv/bin/python bench/ca.py [--duration 15] [--warmup 5] [--connections 32]
        [--workers 2] [--measurement issue|ocsp|crl ...] [--ocsp-certificates 1000]
        [--crl-entries 100000] [--crl-runs 3] [--csr-pool N] [--no-autocannon] [--load wrk|node]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints a markdown table per measurement (certificates/s, responses/s, p50 and p99 latency, the
onecard/openssl ratio, CRL seconds and size), each against the goal of the issue (>= 300
certificates/s; OCSP >= 2x openssl), and any traceback the server logged during a measurement;
exits non-zero if anything failed or any answer was not the expected one (a goal missed is
reported, not a failure).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.token_endpoint import (
    HOST,
    LOAD_GRACE,
    ONECARD,
    PEER_SHARED,
    START_TIMEOUT,
    BenchError,
    NodePeer,
    Onecard,
    OnecardLocal,
    Server,
    _die_with_parent,
    _free_port,
    _log_size,
    _rate,
    _run,
    _settle_log,
    _stop_group,
    _tail,
    _terminate,
    _wait_http_ok,
    postgres_schema,
    report_log,
    run_node_load,
)

PEER_LOAD = "ca_load.mjs"
PROFILE = "citizen-auth"
ISSUE_PATH = "/v1/me/certificates"
CITIZEN_AUTHORITY = "citizen-1"  # the first citizen authority `onecard init` creates
ISSUE_GOAL = 300.0  # certificates/s
OCSP_GOAL = 2.0  # onecard / openssl responses/s
ISSUE_CITIZENS = 16
OCSP_CITIZENS = 50
REVOKE_EVERY = 10  # one certificate in ten revoked in the OCSP measurement
REVOCATION_REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "unspecified")
OCSP_SAMPLES = 12  # answers parsed per server and variant before the load
PRIME_SECONDS = 10  # unmeasured run filling onecard's per-worker OCSP memory
JOBS_TIMEOUT = 120  # seconds for the server's job loop to re-sign revoked certificates' answers
INSERT_CHUNK = 10_000


# -- onecard and the peer tools -------------------------------------------------------------


class CaOnecard(Onecard):
    """onecard in a temporary data directory: `onecard init` (which creates the CA hierarchy),
    then `onecard serve` as in bench/token_endpoint.py, and `onecard ocsp-responder` beside it.
    No OAuth client is needed here."""

    def prepare(self) -> None:
        done = _run([ONECARD, "init"], what="onecard init", cwd=self.root, env=self.env)
        if done.returncode != 0:
            raise BenchError(f"onecard init failed:\n{done.stdout}{done.stderr}")

    @contextlib.contextmanager
    def responding(self, server: Server) -> Iterator[Server]:
        """`onecard ocsp-responder` on a port of its own, with the same workers, data
        directory and environment as ``server`` (whose ``local`` it shares), stopped (or
        killed) with the benchmark as `onecard serve` is."""
        port = _free_port()
        log = self.root / "ocsp-responder.log"
        process = self.start("ocsp-responder", port, log)
        try:
            base = f"http://{HOST}:{port}"
            what = "onecard ocsp-responder"
            _wait_http_ok(f"{base}/healthz", process, log, what, START_TIMEOUT)
            yield dataclasses.replace(server, base_url=base, endpoint_path="/ocsp", log=log)
        finally:
            _stop_group(process)


def prepared_onecard(
    stack: contextlib.ExitStack, root: Path, base_url: str | None, workers: int, prefix: str
) -> CaOnecard:
    """onecard initialised under ``root`` (database, keys, CA hierarchy): on SQLite, or in a
    fresh PostgreSQL schema of ``base_url`` that ``stack`` drops."""
    (root / "onecard").mkdir()
    database_url = None
    if base_url:
        database_url = stack.enter_context(postgres_schema(base_url, prefix=prefix))
    onecard = CaOnecard(root / "onecard", database_url, workers)
    print("preparing onecard (init: database, keys, CA hierarchy) …", flush=True)
    onecard.prepare()
    return onecard


class CaPeer(NodePeer):
    """bench/peer installed from npm into a temporary folder, with bench/peer/ca_load.mjs."""

    def install(self) -> None:
        for name in (PEER_LOAD, PEER_SHARED):
            shutil.copy2(Path(__file__).resolve().parent / "peer" / name, self.root / name)
        super().install()

    @property
    def ca_load(self) -> list[str]:
        return ["node", str(self.root / PEER_LOAD)]


@dataclass(frozen=True)
class Load:
    """What every HTTP measurement uses, identically for every server."""

    ca_load: list[str]
    duration: int
    warmup: int
    connections: int
    workers: int


def ca_load(load: Load, workdir: Path, config: dict[str, Any]) -> dict:
    """One bench/peer/ca_load.mjs run (warm-up and measured window in one process) with this
    configuration; its JSON report."""
    config = {
        "concurrency": load.connections,
        **config,
        "warmup": load.warmup,
        "duration": load.duration,
    }
    limit = load.warmup + load.duration + LOAD_GRACE
    if config.get("engine") == "autocannon":
        limit += load.warmup + 10  # two autocannon runs, each with its own start-up
    return run_node_load(load.ca_load, workdir, config, limit=limit)


WRK_SCRIPT = Path(__file__).resolve().parent / "peer" / "wrk_requests.lua"
_WRK_ERRORS = ("connect", "read", "write", "status", "timeout")
_WRK_FIELDS = ("requests", "duration_us", "p50_us", "p99_us", "max_us", *_WRK_ERRORS)


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    done = _run(["wrk", "--version"], what="wrk --version", cwd=Path.cwd())
    return (done.stdout + done.stderr).split(" [")[0].strip() or "wrk"


def _raw_requests(base_url: str, specs: list[dict]) -> bytes:
    """The requests of ``specs`` (as for ca_load.mjs: method, path, and a body as
    ``body_b64`` for OCSP or ``body`` JSON text with an ``authorization`` for issuance) as
    complete HTTP/1.1 messages, each preceded by its length and a newline (the format
    bench/peer/wrk_requests.lua reads)."""
    host = base_url.removeprefix("http://")
    out = bytearray()
    for spec in specs:
        head = f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {host}\r\n"
        body = b""
        if "authorization" in spec:
            head += f"Authorization: {spec['authorization']}\r\n"
        if spec.get("body_b64") is not None:
            body = base64.b64decode(spec["body_b64"])
            head += "Content-Type: application/ocsp-request\r\n"
        elif spec.get("body") is not None:
            body = spec["body"].encode()
            head += "Content-Type: application/json\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        message = (head + "\r\n").encode() + body
        out += b"%d\n%s" % (len(message), message)
    return bytes(out)


def wrk_load(
    load: Load, workdir: Path, base_url: str, specs: list[dict], *, warm_up: bool, once: bool
) -> dict:
    """wrk (one thread, ``load.connections`` connections) over ``specs``: an unmeasured
    warm-up run (if ``warm_up``), then the measured one; a report shaped like ca_load.mjs's.
    With ``once`` every request is meant to be sent once (issuance: a fresh key each): the
    measured run starts where the warm-up left off, and running past the end of the list is
    reported as ``exhausted``; otherwise the list is cycled through. openssl is not warmed up:
    a second run would find its processes spinning (the bug described in measure_ocsp), and it
    has nothing to warm (its index is read at start)."""
    path = workdir / f"wrk-{secrets.token_hex(4)}.requests"
    path.write_bytes(_raw_requests(base_url, specs))  # may hold access tokens: removed below
    try:
        runs = []
        start = 0
        for seconds in (load.warmup if warm_up else 0, load.duration):
            if seconds == 0:
                runs.append(dict.fromkeys(_WRK_FIELDS, 0))
                continue
            command = ["wrk", "-t1", f"-c{load.connections}", f"-d{seconds}s", "--timeout", "30s"]
            command += ["-s", str(WRK_SCRIPT), base_url, "--", str(path), str(start)]
            done = _run(command, what="wrk", cwd=workdir)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                raise BenchError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
            runs.append(json.loads(lines[-1]))
            # Requests in flight when a run stops were sent but not counted: skip them too.
            start += runs[-1]["requests"] + load.connections
    finally:
        path.unlink(missing_ok=True)
    warm, measured = runs
    errors = sum(measured[k] for k in _WRK_ERRORS)
    warmup_errors = sum(warm[k] for k in _WRK_ERRORS)
    completed = measured["requests"] - measured["status"]
    return {
        "completed": completed,
        "rate": completed / (measured["duration_us"] / 1e6),
        "p50_ms": measured["p50_us"] / 1000,
        "p99_ms": measured["p99_us"] / 1000,
        "errors": errors,
        "warmup_errors": warmup_errors,
        "ok_total": completed + warm["requests"] - warm["status"],
        "statuses": {"2xx": completed, "other": measured["status"]},
        "samples": [f"wrk errors: {measured}"] if errors else [],
        "sockets": None,
        "exhausted": once and start > len(specs),
    }


def run_load(
    engine: str,
    load: Load,
    workdir: Path,
    base_url: str,
    specs: list[dict],
    *,
    mode: str,
    warm_up: bool = True,
) -> dict:
    """One load run with ``engine`` (wrk, or ca_load.mjs's http or autocannon): issuance
    sends each request once, OCSP cycles through its list."""
    if engine == "wrk":
        return wrk_load(load, workdir, base_url, specs, warm_up=warm_up, once=mode == "issue")
    config = {"mode": mode, "engine": engine, "base_url": base_url, "requests": specs}
    if mode == "issue":
        config["path"] = ISSUE_PATH
    return ca_load(load, workdir, config)


@dataclass
class Row:
    server: str
    workers: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    completed: int
    failures: int
    statuses: dict[str, int]
    sockets: int | None = None
    variant: str = ""
    notes: list[str] = field(default_factory=list)


def _row(label: str, workers: int, report: dict, *, what: str, variant: str = "") -> Row:
    failures = int(report["errors"]) + int(report["warmup_errors"])
    if int(report["completed"]) == 0:
        raise BenchError(f"{label}: not one {what} succeeded; first failures: {report['samples']}")
    row = Row(
        server=label,
        workers=workers,
        rate=float(report["rate"]),
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        completed=int(report["completed"]),
        failures=failures,
        statuses={str(code): count for code, count in report["statuses"].items()},
        sockets=report.get("sockets"),
        variant=variant,
    )
    if report["samples"]:
        row.notes.append(f"{label}: first failures: {report['samples']}")
    if report["warmup_errors"]:
        row.notes.append(
            f"{label}: {report['warmup_errors']} failures outside the measured window "
            "(warm-up or the last requests in flight)"
        )
    return row


# -- fixtures made with onecard imported (against the server's database) --------------------


def _local(server: Server) -> OnecardLocal:
    if server.local is None:
        raise BenchError(f"{server.label}: this measurement needs onecard")
    return server.local


def citizens_with_tokens(local: OnecardLocal, count: int, ttl: timedelta) -> list[tuple[Any, str]]:
    """``count`` registered citizens (assurance level 1, active), each with a first-party
    access token (scope ``openid account``) as `onecard admin token` mints them."""
    from onecard.core.audit import Actor
    from onecard.identity.oidc.first_party import mint_person_token

    runtime = local.runtime
    with runtime.database.session() as session:
        persons = local._new_persons(session, count)
        tokens = [
            (
                person.id,
                mint_person_token(
                    session,
                    runtime.provider,
                    person,
                    scope="openid account",
                    ttl=ttl,
                    actor=Actor.cli("bench"),
                ),
            )
            for person, _ in persons
        ]
    return tokens


def make_csrs(count: int) -> list[tuple[str, bytes]]:
    """``count`` PKCS#10 requests (PEM) for fresh P-256 keys, with each key's SPKI (DER)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    csrs = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        csrs.append((csr.public_bytes(serialization.Encoding.PEM).decode(), spki))
    return csrs


def count_certificates(local: OnecardLocal, person_ids: list[Any]) -> int:
    from sqlmodel import func, select

    from onecard.ca.models import Certificate

    with local.runtime.database.session() as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.person_id.in_(person_ids))  # type: ignore[union-attr]
            ).one()
        )


@dataclass(frozen=True)
class Issued:
    serial: int
    der: bytes
    status: str  # "good" or "revoked"
    reason: str | None
    id: Any  # the ca_certificate row's


def issue_in_process(local: OnecardLocal, count: int, citizens: int) -> list[Issued]:
    """``count`` citizen-auth certificates through onecard's own issuance (fresh P-256 keys,
    pre-signed OCSP answers, audit), spread over ``citizens`` citizens; one in REVOKE_EVERY
    revoked afterwards through onecard's revocation, reasons in turn."""
    from sqlmodel import select

    from onecard.ca import issuance, revocation
    from onecard.ca.models import Certificate, CertificateStatus
    from onecard.ca.profiles import get_profile
    from onecard.core.audit import Actor

    runtime = local.runtime
    actor = Actor.cli("bench")
    profile = get_profile(PROFILE)
    ids = []
    with runtime.database.session() as session:
        persons = local._new_persons(session, citizens)
        subjects = [issuance.person_subject(session, person.id) for person, _ in persons]
    per_batch = 100
    for start in range(0, count, per_batch):
        with runtime.database.session() as session:
            for n in range(start, min(count, start + per_batch)):
                _, csr = issuance.generated_key_request()
                certificate = issuance.issue(
                    session,
                    runtime.ca,
                    profile=profile,
                    subject=subjects[n % len(subjects)],
                    csr=csr,
                    actor=actor,
                )
                ids.append(certificate.id)
    for n, certificate_id in enumerate(ids):
        if n % REVOKE_EVERY != REVOKE_EVERY - 1:
            continue
        reason = REVOCATION_REASONS[(n // REVOKE_EVERY) % len(REVOCATION_REASONS)]
        with runtime.database.session() as session:
            certificate = session.get(Certificate, certificate_id)
            revocation.revoke(
                session,
                certificate,
                revocation.parse_reason(reason, by_staff=False),
                actor=actor,
            )
    with runtime.database.session() as session:
        rows = session.exec(select(Certificate).where(Certificate.id.in_(ids))).all()  # type: ignore[attr-defined]
        return [
            Issued(
                int(row.serial, 16),
                row.der,
                "revoked" if row.status == CertificateStatus.REVOKED else "good",
                row.revocation_reason,
                row.id,
            )
            for row in rows
        ]


def wait_for_presigned(local: OnecardLocal, issued: list[Issued], timeout: float) -> float:
    """Wait until the server's job loop has re-signed the OCSP answers of the revoked
    certificates (a revocation drops the certificate's answer and queues the job); seconds."""
    from sqlmodel import func, select

    from onecard.ca.models import OcspResponse

    started = time.monotonic()
    while True:
        with local.runtime.database.session() as session:
            stored = int(
                session.exec(
                    select(func.count())
                    .select_from(OcspResponse)
                    .where(OcspResponse.certificate_id.in_([i.id for i in issued]))  # type: ignore[attr-defined]
                ).one()
            )
        if stored >= len(issued):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise BenchError(
                f"onecard: after {timeout:.0f} s only {stored} of {len(issued)} certificates have a "
                "pre-signed OCSP answer (the revocation jobs did not run?)"
            )
        time.sleep(0.5)


@dataclass(frozen=True)
class ResponderFiles:
    folder: Path
    index: Path
    issuing: Path
    responder: Path
    key: Path
    issuing_certificate: x509.Certificate
    responder_certificate: x509.Certificate


def export_for_openssl(local: OnecardLocal, server_root: Path, folder: Path) -> ResponderFiles:
    """The issuing authority's index (`onecard ca export-index`), its certificate, its delegated
    OCSP responder's certificate and private key (mode 0600), for `openssl ocsp`."""
    from onecard.ca.service import get_authority

    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.txt"
    command = [ONECARD, "ca", "export-index", CITIZEN_AUTHORITY, "--out", str(index)]
    done = _run(command, what="onecard ca export-index", cwd=server_root, env=local.env)
    if done.returncode != 0 or not index.exists():
        raise BenchError(f"onecard ca export-index failed:\n{done.stdout}{done.stderr}")
    # openssl refuses an index where one subject has two valid certificates unless told so
    # (its default, unique_subject = yes, is `openssl ca`'s policy, not a property of the
    # data); our citizens each hold several.
    (folder / "index.txt.attr").write_text("unique_subject = no\n")
    runtime = local.runtime
    with runtime.database.session() as session:
        authority = get_authority(session, CITIZEN_AUTHORITY)
        issuing = runtime.ca.certificate(authority)
        if authority.ocsp_certificate is None:
            raise BenchError(f"{CITIZEN_AUTHORITY} has no delegated OCSP responder")
        responder = x509.load_der_x509_certificate(authority.ocsp_certificate)
        key = runtime.ca.private_key(authority, "ocsp_private_key")
    files = ResponderFiles(
        folder,
        index,
        folder / "issuing.pem",
        folder / "ocsp.pem",
        folder / "ocsp.key",
        issuing,
        responder,
    )
    files.issuing.write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
    files.responder.write_bytes(responder.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return files


# -- openssl ocsp ---------------------------------------------------------------------------


def openssl_version() -> str:
    done = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError("`openssl` is not on PATH; the OCSP peer needs it")
    return done.stdout.split()[1] if done.stdout.split() else "?"


_PEER_GROUPS: dict[str, int] = {}  # base URL of a running openssl responder -> its group


def peer_group(server: Server) -> int:
    return _PEER_GROUPS[server.base_url]


def busy_processes(group: int, seconds: float = 1.0) -> dict[int, float]:
    """The processes of this process group that use more than half a core while it should be
    idle (Linux /proc), with the share of a core each used over ``seconds``."""

    def cpu_times() -> dict[int, int]:
        times = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:  # pgrp
                times[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime
        return times

    tick = os.sysconf("SC_CLK_TCK")
    before = cpu_times()
    time.sleep(seconds)
    after = cpu_times()
    shares = {
        pid: (after[pid] - before[pid]) / tick / seconds for pid in after.keys() & before.keys()
    }
    return {pid: share for pid, share in shares.items() if share > 0.5}


@contextlib.contextmanager
def openssl_responder(files: ResponderFiles, workers: int, probe: bytes) -> Iterator[Server]:
    """`openssl ocsp` as a responder with ``workers`` processes (-multi), nextUpdate 60 min;
    ``probe`` is an OCSP request it must answer to count as started."""
    port = _free_port()
    log = files.folder / "openssl-ocsp.log"
    command = ["openssl", "ocsp", "-index", str(files.index), "-CA", str(files.issuing)]
    command += ["-rsigner", str(files.responder), "-rkey", str(files.key)]
    command += ["-port", str(port), "-nmin", "60"]
    if workers > 1:
        command += ["-multi", str(workers)]
    with log.open("wb") as out:
        # Its own process group, but not its own session: with -multi, openssl makes itself a
        # process group leader (setpgid), which fails in a session leader (it exits with 1).
        process = subprocess.Popen(
            command,
            cwd=files.folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    try:
        # It listens on every address (-port takes no host); the load only goes to 127.0.0.1.
        # Ready when it answers a real request: a bare connect-and-close probe would set off
        # the bug described in measure_ocsp and leave one of its processes spinning.
        deadline = time.monotonic() + 30
        while not _answers(f"http://{HOST}:{port}/", probe):
            if process.poll() is not None:
                raise BenchError(
                    f"openssl ocsp exited with status {process.returncode}:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"openssl ocsp did not listen on port {port}:\n{_tail(log)}")
            time.sleep(0.1)
        base_url = f"http://{HOST}:{port}"
        _PEER_GROUPS[base_url] = process.pid
        yield Server(
            label=f"openssl ocsp {openssl_version()}",
            workers=workers,
            base_url=base_url,
            endpoint_path="/",
            client_id="",
            client_secret="",
            log=log,
        )
    finally:
        _PEER_GROUPS.pop(f"http://{HOST}:{port}", None)
        _stop_group(process)


def _answers(url: str, request: bytes) -> bool:
    if not _listening(url):
        return False
    try:
        response = httpx.post(
            url, content=request, headers={"Content-Type": "application/ocsp-request"}, timeout=5
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _listening(url: str) -> bool:
    """Whether anything listens on the URL's port, without connecting to it (/proc/net/tcp6
    and tcp; openssl listens on [::])."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for table in ("/proc/net/tcp6", "/proc/net/tcp"):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


# -- checks ---------------------------------------------------------------------------------


def check_issued(
    server: Server, token: str, serial: str, spki: bytes, person_id: Any
) -> x509.Certificate:
    """Fetch a certificate issued over HTTP and check it: signed by the citizen CA, for the
    CSR's key, naming the citizen, for client authentication."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        issuing = x509.load_der_x509_certificate(
            httpx.get(f"{server.base_url}/ca/{CITIZEN_AUTHORITY}.crt", timeout=10).content
        )
        response = httpx.get(
            f"{server.base_url}/v1/certificates/{serial}/download",
            params={"format": "pem"},
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        leaf = x509.load_pem_x509_certificate(response.content)
        leaf.verify_directly_issued_by(issuing)
    except (httpx.HTTPError, ValueError, TypeError) as exc:
        raise BenchError(
            f"onecard: the issued certificate {serial} does not check: {exc!r}"
        ) from exc
    problems = []
    leaf_spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_spki != spki:
        problems.append("not the CSR's public key")
    if format(leaf.serial_number, "x") != serial:
        problems.append(f"serial {leaf.serial_number:x}")
    numbers = leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if [a.value for a in numbers] != [str(person_id)]:
        problems.append(f"subject {leaf.subject.rfc4514_string()}")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        problems.append("no clientAuth")
    if problems:
        raise BenchError(f"onecard: the issued certificate {serial}: {'; '.join(problems)}")
    return leaf


@dataclass(frozen=True)
class OcspRequest:
    issued: Issued
    der: bytes
    nonce: bytes | None


def build_requests(
    issued: list[Issued], issuing: x509.Certificate, *, nonce: bool
) -> list[OcspRequest]:
    requests = []
    for item in issued:
        certificate = x509.load_der_x509_certificate(item.der)
        # SHA-1 CertID: what relying parties send (RFC 5019), and what onecard pre-signs.
        sha1 = hashes.SHA1()  # noqa: S303
        builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuing, sha1)
        value = secrets.token_bytes(16) if nonce else None
        if value is not None:
            builder = builder.add_extension(x509.OCSPNonce(value), critical=False)
        der = builder.build().public_bytes(serialization.Encoding.DER)
        requests.append(OcspRequest(item, der, value))
    return requests


def check_ocsp_answer(label: str, body: bytes, request: OcspRequest, files: ResponderFiles) -> str:
    """Parse one answer; raise unless it is a successful, correctly signed answer about the
    requested certificate with the expected status. Returns the status seen."""
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        raise BenchError(f"{label}: an OCSP answer does not parse: {body[:60]!r}") from exc
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise BenchError(f"{label}: OCSP answer {response.response_status.name}")
    problems = []
    expected = request.issued
    if response.serial_number != expected.serial:
        problems.append(f"serial {response.serial_number:x}, asked {expected.serial:x}")
    status = response.certificate_status.name.lower()
    if status != expected.status:
        problems.append(f"status {status}, expected {expected.status}")
    if expected.status == "revoked":
        reason = response.revocation_reason.value if response.revocation_reason else None
        wanted = expected.reason
        if reason != wanted and not (wanted == "unspecified" and reason is None):
            problems.append(f"reason {reason}, expected {wanted}")
    signer = response.certificates[0] if response.certificates else files.responder_certificate
    if signer != files.responder_certificate:
        problems.append(f"signed by {signer.subject.rfc4514_string()}, not the responder")
    try:
        public_key = files.responder_certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        algorithm = response.signature_hash_algorithm
        assert algorithm is not None
        public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    except Exception as exc:
        problems.append(f"signature does not verify ({exc!r})")
    now = datetime.now(UTC)
    if not response.this_update_utc - timedelta(minutes=5) <= now:
        problems.append(f"thisUpdate {response.this_update_utc} in the future")
    if response.next_update_utc is None or response.next_update_utc <= now:
        problems.append(f"nextUpdate {response.next_update_utc}")
    if request.nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != request.nonce:
            problems.append("nonce not echoed")
    if problems:
        raise BenchError(f"{label}: OCSP answer for {expected.serial:x}: {'; '.join(problems)}")
    return status


# -- measurements ---------------------------------------------------------------------------


def measure_issue(server: Server, load: Load, csr_pool: int, engine: str) -> Row:
    local = _local(server)
    ttl = timedelta(seconds=max(1800, 3 * (load.warmup + load.duration) + 600))
    started = time.perf_counter()
    citizens = citizens_with_tokens(local, ISSUE_CITIZENS, ttl)
    minted = time.perf_counter() - started
    started = time.perf_counter()
    csrs = make_csrs(csr_pool + 1)
    generated = time.perf_counter() - started
    print(
        f"  {len(citizens)} citizens with an access token in {minted:.1f} s; {len(csrs):,} CSRs "
        f"(fresh P-256 keys) in {generated:.1f} s",
        flush=True,
    )
    # One issuance by hand, fetched back and checked: what every 201 under load stands for.
    person_id, token = citizens[0]
    pem, spki = csrs.pop()
    response = httpx.post(
        server.base_url + ISSUE_PATH,
        headers={"Authorization": f"Bearer {token}"},
        json={"profile": PROFILE, "csr": pem},
        timeout=30,
    )
    if response.status_code != 201:
        raise BenchError(
            f"onecard: POST {ISSUE_PATH} answered {response.status_code}: {response.text[:500]}"
        )
    serial = str(response.json().get("serial"))
    leaf = check_issued(server, token, serial, spki, person_id)
    print(
        f"  sample certificate {serial[:16]}… verified: issued by "
        f"{leaf.issuer.rfc4514_string()}, the CSR's P-256 key, the citizen's subject",
        flush=True,
    )
    requests = [
        {
            "method": "POST",
            "path": ISSUE_PATH,
            "authorization": f"Bearer {citizens[n % len(citizens)][1]}",
            "body": json.dumps({"profile": PROFILE, "csr": pem}),
        }
        for n, (pem, _) in enumerate(csrs)
    ]
    report = run_load(engine, load, server.log.parent, server.base_url, requests, mode="issue")
    row = _row(server.label, server.workers, report, what="issuance")
    if report["exhausted"]:
        row.failures += 1
        row.notes.append(
            f"!!! the {len(requests):,} CSRs ran out before the end of the run: "
            "the rate is not measured; run again with a bigger --csr-pool"
        )
    stored = count_certificates(local, [person for person, _ in citizens])
    received = int(report["ok_total"]) + 1  # the sample
    if stored < received:
        row.failures += 1
        row.notes.append(
            f"!!! {received} answers 201 but only {stored} certificates in the database"
        )
    row.notes.append(
        f"{load.connections} concurrent clients ({'wrk' if engine == 'wrk' else 'ca_load.mjs'}, "
        "on the same cores as the server) "
        f"over {len(citizens)} citizens; each request a new P-256 key; {stored:,} certificates "
        f"stored for {received:,} answers 201 (warm-up and sample included)"
    )
    return row


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    method: str
    nonce: bool


VARIANTS = (
    Variant("post", "POST, SHA-1 CertID, no nonce", "POST", nonce=False),
    Variant("get", "GET, SHA-1 CertID, no nonce", "GET", nonce=False),
    Variant("nonce", "POST, SHA-1 CertID, with nonce", "POST", nonce=True),
)


def _ocsp_paths(server: Server, requests: list[OcspRequest], method: str) -> list[dict]:
    """The request list for ca_load.mjs. onecard answers at /ocsp and /ocsp/<base64>, openssl
    at / and /<base64> (it takes the whole path as the request)."""
    prefix = "/ocsp" if server.local is not None else ""
    if method == "POST":
        return [
            {"method": "POST", "path": prefix or "/", "body_b64": base64.b64encode(r.der).decode()}
            for r in requests
        ]
    return [
        {
            "method": "GET",
            "path": f"{prefix}/{quote(base64.b64encode(r.der).decode(), safe='')}",
            "body_b64": None,
        }
        for r in requests
    ]


def sample_ocsp(
    server: Server, requests: list[OcspRequest], method: str, files: ResponderFiles
) -> dict[str, int]:
    """Ask for OCSP_SAMPLES certificates, revoked ones included, one request at a time, and
    check each answer; the statuses seen."""
    revoked = [r for r in requests if r.issued.status == "revoked"]
    good = [r for r in requests if r.issued.status != "revoked"]
    chosen = (
        revoked[: OCSP_SAMPLES // 2] + good[: OCSP_SAMPLES - min(len(revoked), OCSP_SAMPLES // 2)]
    )
    seen: dict[str, int] = {}
    paths = _ocsp_paths(server, chosen, method)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for request, spec in zip(chosen, paths, strict=True):
            try:
                if method == "POST":
                    response = client.post(
                        spec["path"],
                        content=request.der,
                        headers={"Content-Type": "application/ocsp-request"},
                    )
                else:
                    response = client.get(spec["path"])
            except httpx.HTTPError as exc:
                raise BenchError(f"{server.label}: OCSP {method} failed: {exc!r}") from exc
            if response.status_code != 200:
                raise BenchError(
                    f"{server.label}: OCSP {method} answered {response.status_code}: "
                    f"{response.content[:200]!r}"
                )
            status = check_ocsp_answer(server.label, response.content, request, files)
            seen[status] = seen.get(status, 0) + 1
    return seen


def measure_ocsp(
    server: Server,
    responder: Server,
    load: Load,
    *,
    certificates: int,
    autocannon: bool,
    engine: str,
) -> tuple[list[Row], list[str]]:
    """``server`` (`onecard serve`) issues, revokes and re-signs; ``responder`` (`onecard
    ocsp-responder`) is measured."""
    local = _local(server)
    started = time.perf_counter()
    issued = issue_in_process(local, certificates, OCSP_CITIZENS)
    revoked = sum(1 for item in issued if item.status == "revoked")
    print(
        f"  {len(issued):,} certificates issued in onecard ({revoked} revoked) in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    waited = wait_for_presigned(local, issued, JOBS_TIMEOUT)
    print(f"  revoked certificates' OCSP answers re-signed by the server's jobs ({waited:.1f} s)")
    files = export_for_openssl(local, server.log.parent, server.log.parent / "openssl")
    lines = files.index.read_text().splitlines()
    print(
        f"  exported {len(lines):,} index lines for openssl "
        f"({sum(1 for line in lines if line.startswith('R'))} revoked)",
        flush=True,
    )
    requests = {
        variant.key: build_requests(issued, files.issuing_certificate, nonce=variant.nonce)
        for variant in VARIANTS
    }
    rows: list[Row] = []
    notes: list[str] = []

    def run_openssl(variant: Variant, engine: str) -> Row:
        # A fresh responder for every run: openssl 3.0's responder processes spin at 100 % CPU
        # for ever, answering nothing more, after a client connects and closes without a
        # request (as load generators do when they stop), so one must neither carry over into
        # the next run nor burn the cores while onecard is measured.
        with openssl_responder(files, load.workers, requests["post"][0].der) as peer:
            row = run(peer, variant, engine)
            spinning = busy_processes(peer_group(peer))
            if spinning:
                row.notes.append(
                    f"{peer.label}, {variant.title}{' (autocannon)' if engine == 'autocannon' else ''}"
                    f": after the load, {len(spinning)} of its processes spun at "
                    f"{', '.join(f'{cpu:.0%}' for cpu in spinning.values())} CPU while idle "
                    "(the openssl bug above, set off as the load generator closed its "
                    "connections); it was stopped"
                )
            elif engine != "autocannon":
                # Still answering, and correctly, after the load.
                sample_ocsp(peer, requests[variant.key], variant.method, files)
        return row

    def run(target: Server, variant: Variant, engine: str) -> Row:
        batch = requests[variant.key]
        seen = sample_ocsp(target, batch, variant.method, files)
        print(
            f"  {target.label}, {variant.title}: {sum(seen.values())} sample answers checked "
            f"({', '.join(f'{n} {s}' for s, n in sorted(seen.items()))}); loading …",
            flush=True,
        )
        since = _log_size(target)
        specs = _ocsp_paths(target, batch, variant.method)
        report = run_load(
            engine,
            load,
            server.log.parent,
            target.base_url,
            specs,
            mode="ocsp",
            warm_up=target.local is not None,
        )
        if target.local is not None:
            _settle_log(target)
        if engine == "autocannon" and target.local is None and not report["completed"]:
            # The openssl bug described in run_openssl can stop every responder process as
            # soon as autocannon reconnects: the cross-check then has no figure for openssl.
            return Row(
                target.label,
                target.workers,
                0.0,
                None,
                None,
                0,
                0,
                report["statuses"],
                variant=variant.title,
                notes=[
                    f"{target.label}, autocannon cross-check: no answer at all "
                    f"({report['autocannon']['errors']} connection errors): its processes "
                    "spun from the first reconnections (the openssl bug above); no figure"
                ],
            )
        row = _row(target.label, target.workers, report, what="OCSP answer", variant=variant.title)
        if engine == "autocannon" and target.local is None:
            # Its connection errors against a server that closes connections are its own
            # (see the module docstring); a non-2xx answer or a timeout would still count.
            lost = report["autocannon"]["errors"]
            row.failures -= lost
            row.notes = [note for note in row.notes if "outside the measured window" not in note]
            row.notes.append(
                f"{target.label}, autocannon cross-check: {lost} requests lost as connection "
                "errors (autocannon writing onto connections openssl closes; not counted as "
                "failures)"
            )
        if target.local is not None:
            row.failures += report_log(target, since, f"ocsp {variant.key}", row.failures)
        return row

    # The responder answers nonce-less requests from each worker's memory once it has read the
    # pre-signed answer from the database; relying parties asking again and again see that
    # steady state, so it is reached before anything is measured (a warm-up shorter than the
    # time to fill every worker's memory would otherwise measure the database instead).
    started = time.perf_counter()
    primer = ca_load(
        dataclasses.replace(load, warmup=0, duration=PRIME_SECONDS),
        server.log.parent,
        {
            "mode": "ocsp",
            "base_url": responder.base_url,
            "requests": _ocsp_paths(responder, requests["post"], "POST"),
        },
    )
    primed = time.perf_counter() - started
    print(
        f"  onecard ocsp-responder's workers primed: {primer['ok_total']:,} POST answers in "
        f"{primed:.0f} s (unmeasured), {primer['errors'] + primer['warmup_errors']} failures",
        flush=True,
    )
    for variant in VARIANTS:
        rows.append(run(responder, variant, engine))
        rows.append(run_openssl(variant, engine))
    if autocannon:
        variant = VARIANTS[0]
        for row in (run(responder, variant, "autocannon"), run_openssl(variant, "autocannon")):
            row.variant = f"{variant.title} (autocannon cross-check)"
            if row.server != "onecard":
                row.p50_ms = row.p99_ms = None  # mis-timed: see the module docstring
            rows.append(row)
    if primer["errors"] or primer["warmup_errors"]:
        rows[0].failures += int(primer["errors"]) + int(primer["warmup_errors"])
        rows[0].notes.append(f"onecard: failures while priming: {primer['samples']}")
    notes.append(
        f"onecard: its dedicated OCSP responder, `onecard ocsp-responder --workers "
        f"{responder.workers}` (onecard.api.ocsp_server: asyncio and httptools on uvloop, "
        "HTTP/1.1 keep-alive), on a port of its own beside `onecard serve` and on the same "
        "database, as deployments route /ocsp and /ocsp/* to it; `onecard serve` answers OCSP "
        "too (the embedded default) but is not measured here"
    )
    notes.append(
        f"before the first onecard run, a {PRIME_SECONDS} s unmeasured run of the POST "
        "requests fills each responder worker's memory with the pre-signed answers (the steady "
        "state; while filling, answers come from the database table at roughly the with-nonce "
        "rate)"
    )
    notes.append(
        f"{len(issued):,} certificates of {CITIZEN_AUTHORITY} ({revoked} revoked: "
        f"{', '.join(REVOCATION_REASONS)}); one request per certificate, cycled through; "
        f"{load.connections} connections, {load.warmup} s warm-up (onecard only) + "
        f"{load.duration} s measured per server and variant; the load generator "
        f"({'wrk, one thread' if engine == 'wrk' else 'ca_load.mjs, node:http'}) runs on the "
        "same cores"
    )
    notes.append(
        "openssl ocsp runs afresh for each of its runs (only while measured): its responder "
        "processes (3.0) spin at 100 % CPU for ever, answering nothing more, once a client "
        "connects and closes without sending a request; that happens when a load generator "
        "stops, so a responder never serves a second run, and the benchmark checks after each "
        "run that it still answers correctly."
    )
    notes.append(
        "openssl ocsp answers HTTP/1.0 and closes the connection after every response (its "
        "behaviour), so each of its answers costs a new TCP connection (column `connections`); "
        "it signs every answer on demand (no cache), from the index file in memory. onecard "
        "keeps the connections and answers nonce-less requests from pre-signed bytes held in "
        "each worker's memory; requests with a nonce are signed on demand, on the event loop "
        "once the certificate's status is in the worker's memory, else in its thread pool "
        "after a database look-up."
    )
    if autocannon:
        notes.append(
            "autocannon cross-check: requests/s as autocannon 9 counts them; its latency "
            "against openssl is not shown (autocannon pipelines its next request onto the "
            "connection openssl is closing, then times later responses from requests queued "
            "long before: p50 near a second on this machine, meaningless), those lost "
            "requests show as its errors, and its reconnections usually set off the openssl "
            "bug above, leaving openssl with no figure (n/a)."
        )
    return rows, notes


# -- CRL ------------------------------------------------------------------------------------


@dataclass
class CrlResult:
    backend: str
    entries: int
    insert_s: float
    publish_s: list[float]
    query_s: list[float]
    build_s: list[float]
    size: int
    notes: list[str] = field(default_factory=list)


def _random_revoked_rows(authority_id: Any, count: int) -> list[dict[str, Any]]:
    import uuid

    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        revoked_at = now - timedelta(seconds=secrets.randbelow(90 * 86400) + 60)
        serial = format(secrets.randbits(159) | (1 << 100), "x")
        rows.append(
            {
                "id": uuid.uuid4(),
                "serial": serial,
                "authority_id": authority_id,
                "profile": PROFILE,
                "subject_kind": "person",
                "person_id": None,
                "enterprise_id": None,
                "subject_dn": f"2.5.4.5=bench-{n},CN=bench,C=CN",
                "search_text": f"2.5.4.5=bench-{n},cn=bench,c=cn",
                "spki_sha256": secrets.token_bytes(32),
                "der": b"\x30\x00",  # not a certificate: the CRL is built from the row
                "not_before": revoked_at - timedelta(days=30),
                "not_after": revoked_at + timedelta(days=700),
                "status": "revoked",
                "revoked_at": revoked_at,
                "revocation_reason": REVOCATION_REASONS[n % len(REVOCATION_REASONS)],
                "issued_by": "bench",
                "created_at": revoked_at - timedelta(days=30),
            }
        )
    return rows


def measure_crl(root: Path, database_url: str | None, entries: int, runs: int) -> CrlResult:
    """In this process: a fresh hierarchy, ``entries`` revoked rows, publish_crl timed."""
    from sqlmodel import select

    from onecard.api.runtime import prepare
    from onecard.ca.crl import build_crl, publish_crl
    from onecard.ca.models import Certificate, CertificateStatus
    from onecard.ca.service import get_authority
    from onecard.core import clock
    from onecard.core.audit import Actor

    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ONECARD_DATA_DIR": str(root / "var")}
    for name in ("PUBLIC_URL", "DATABASE_URL", "MASTER_KEY", "MASTER_KEY_FILE"):
        env.pop(f"ONECARD_{name}", None)
    if database_url:
        env["ONECARD_DATABASE_URL"] = database_url
    local = OnecardLocal(env, public_url="http://127.0.0.1:9")
    prepared = prepare(local.settings())
    runtime = prepared.runtime
    backend = "PostgreSQL" if database_url else "SQLite"
    try:
        with runtime.database.session() as session:
            authority = get_authority(session, CITIZEN_AUTHORITY)
            authority_id = authority.id
            issuing = runtime.ca.certificate(authority)
        started = time.perf_counter()
        rows = _random_revoked_rows(authority_id, entries)
        with runtime.database.session() as session:
            for start in range(0, len(rows), INSERT_CHUNK):
                session.execute(sa.insert(Certificate), rows[start : start + INSERT_CHUNK])
        insert_s = time.perf_counter() - started
        print(f"  {backend}: {entries:,} revoked rows inserted in {insert_s:.1f} s", flush=True)
        del rows
        publish_s, query_s, build_s = [], [], []
        der = b""
        for _ in range(runs):
            started = time.perf_counter()
            with runtime.database.session() as session:
                authority = get_authority(session, CITIZEN_AUTHORITY)
                crl = publish_crl(session, runtime.ca, authority, actor=Actor.cli("bench"))
                der = crl.der
            publish_s.append(time.perf_counter() - started)
            # The parts: the query publish_crl makes, then the pure build (entries + signature).
            started = time.perf_counter()
            now = clock.now()
            with runtime.database.session() as session:
                revoked = list(
                    session.exec(
                        select(
                            Certificate.serial,
                            Certificate.revoked_at,
                            Certificate.revocation_reason,
                        ).where(
                            Certificate.authority_id == authority_id,
                            Certificate.status == CertificateStatus.REVOKED,
                            Certificate.not_after > now,
                        )
                    )
                )
                key = runtime.ca.private_key(get_authority(session, CITIZEN_AUTHORITY))
            query_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            build_crl(
                issuing,
                key,
                number=1_000_000,
                this_update=now,
                next_update=now + timedelta(days=7),
                revoked=revoked,  # type: ignore[arg-type]
            )
            build_s.append(time.perf_counter() - started)
        result = CrlResult(backend, entries, insert_s, publish_s, query_s, build_s, len(der))
        check_crl(der, issuing, entries, root, result)
        return result
    finally:
        runtime.close()


def check_crl(
    der: bytes, issuing: x509.Certificate, entries: int, folder: Path, result: CrlResult
) -> None:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise BenchError(f"the CRL does not parse with cryptography: {exc}") from exc
    public_key = issuing.public_key()
    if not crl.is_signature_valid(public_key):  # type: ignore[arg-type]
        raise BenchError("the CRL's signature does not verify with the issuing CA's key")
    if len(crl) != entries:
        raise BenchError(f"the CRL lists {len(crl):,} certificates, not {entries:,}")
    if crl.issuer != issuing.subject:
        raise BenchError("the CRL's issuer is not the issuing CA")
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    path, ca = folder / "bench.crl", folder / "issuing.pem"
    path.write_bytes(der)
    ca.write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout", "-CAfile", str(ca)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or "verify OK" not in done.stdout + done.stderr:
        raise BenchError(f"openssl crl does not accept the CRL:\n{done.stdout}{done.stderr}")
    result.notes.append(
        f"{result.backend}: CRL number {number} parsed by cryptography ({len(crl):,} entries, "
        "signature valid) and by `openssl crl -CAfile` (verify OK)"
    )


# -- report ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def print_http(title: str, unit: str, row: Row, backend: str) -> bool:
    """One HTTP measurement as a Markdown table with its notes; whether it ran clean."""
    print(f"\n### {title}\n")
    print(f"| server | back end | workers | {unit}/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {row.server} | {backend} | {row.workers} | {_rate(row.rate)} | {_ms(row.p50_ms)} "
        f"| {_ms(row.p99_ms)} | {row.failures} |"
    )
    for note in row.notes:
        print(f"\n{note}")
    return _clean(row)


def print_issue(row: Row, backend: str) -> bool:
    title = "Certificates issued over HTTP: POST /v1/me/certificates, citizen-auth, P-256"
    clean = print_http(title, "certificates", row, backend)
    verdict = "met" if row.rate >= ISSUE_GOAL else "MISSED"
    print(f"\ngoal >= {ISSUE_GOAL:g} certificates/s: {verdict} ({_rate(row.rate)})")
    return clean


def print_ocsp(rows: list[Row], notes: list[str], backend: str) -> bool:
    print(
        "\n### OCSP responses per second: `onecard ocsp-responder` against `openssl ocsp`, "
        "same certificates\n"
    )
    print("| request | server | workers | responses/s | p50 ms | p99 ms | errors | connections |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        sockets = "" if row.sockets is None else f"{row.sockets:,}"
        label = row.server + (f" ({backend})" if row.server == "onecard" else "")
        print(
            f"| {row.variant} | {label} | {row.workers} "
            f"| {_rate(row.rate) if row.completed else 'n/a'} | {_ms(row.p50_ms)} "
            f"| {_ms(row.p99_ms)} | {row.failures} | {sockets} |"
        )
    print()
    for variant in dict.fromkeys(row.variant for row in rows):
        ours = [r for r in rows if r.variant == variant and r.server == "onecard"]
        peers = [r for r in rows if r.variant == variant and r.server != "onecard"]
        if ours and peers and peers[0].rate > 0:
            ratio = ours[0].rate / peers[0].rate
            print(f"ratio onecard / openssl, {variant}: {ratio:.2f}")
    main = [r for r in rows if "no nonce" in r.variant and "cross-check" not in r.variant]
    ratios = [
        ours.rate / peer.rate
        for ours in main
        if ours.server == "onecard"
        for peer in main
        if peer.server != "onecard" and peer.variant == ours.variant and peer.rate > 0
    ]
    if ratios:
        verdict = "met" if min(ratios) >= OCSP_GOAL else "MISSED"
        print(
            f"\ngoal onecard >= {OCSP_GOAL:g} x openssl on nonce-less requests: "
            f"{verdict} (ratios {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    for note in notes:
        print(f"\n{note}")
    for row in rows:
        for note in row.notes:
            print(f"\n{note}")
    return all(_clean(row) for row in rows)


def print_crl(results: list[CrlResult]) -> None:
    entries = results[0].entries
    print(f"\n### CRL for {entries:,} revoked entries, in-process (no HTTP)\n")
    print(
        "| back end | entries | publish_crl s (query, build, sign, store, commit) "
        "| of which the query s | build_crl s (entries + signature) | CRL size | bulk insert s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.backend} | {r.entries:,} | {statistics.median(r.publish_s):.2f} "
            f"| {statistics.median(r.query_s):.2f} | {statistics.median(r.build_s):.2f} "
            f"| {r.size / 1e6:.2f} MB ({r.size:,} bytes) | {r.insert_s:.1f} |"
        )
    for r in results:
        runs = ", ".join(f"{s:.2f}" for s in r.publish_s)
        builds = ", ".join(f"{s:.2f}" for s in r.build_s)
        print(
            f"\n{r.backend}: medians of {len(r.publish_s)} runs; publish_crl runs {runs} s; "
            f"build_crl runs {builds} s"
        )
        for note in r.notes:
            print(f"\n{note}")


def _clean(row: Row) -> bool:
    if row.failures:
        print(
            f"\n!!! {row.server}{', ' + row.variant if row.variant else ''}: {row.failures} "
            f"failures (unexpected answers, connection errors and timeouts, warm-up included; "
            f"statuses: {row.statuses}); these figures do not measure the successful path",
            file=sys.stderr,
        )
        return False
    return True


# -- main -----------------------------------------------------------------------------------


MEASUREMENTS = ("issue", "ocsp", "crl")


def run(args: argparse.Namespace) -> int:
    chosen = [m for m in MEASUREMENTS if m in (args.measurement or MEASUREMENTS)]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    clean = True
    issue_row: Row | None = None
    ocsp_rows: list[Row] = []
    ocsp_notes: list[str] = []
    crl_results: list[CrlResult] = []
    tracebacks = 0
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ca-")))
        if "issue" in chosen or "ocsp" in chosen:
            (root / "peer").mkdir()
            onecard = prepared_onecard(stack, root, args.database_url, args.workers, "bench_ca")
            print("installing the peer tools from npm into a temporary folder …", flush=True)
            measured = 8 * (args.warmup + args.duration + LOAD_GRACE)
            peer = CaPeer(root / "peer", args.workers, max_seconds=measured + 600)
            peer.install()
            node = subprocess.run(
                ["node", "--version"], capture_output=True, text=True, check=True
            ).stdout.strip()
            load = Load(peer.ca_load, args.duration, args.warmup, args.connections, args.workers)
            wrk = wrk_version()
            load_engine = "wrk" if args.load == "wrk" else "http"
            if load_engine == "wrk" and wrk is None:
                raise BenchError(
                    "wrk is missing: `make bench-tools` installs it (Debian's wrk package), "
                    "or pass --load node"
                )
            print(
                f"{os.cpu_count()} cores; onecard on {backend}; Node {node}, "
                f"autocannon {peer.version('autocannon')}, {wrk or 'no wrk'}, "
                f"OpenSSL {openssl_version()}; "
                f"{args.connections} connections, {args.warmup} s warm-up + {args.duration} s "
                "measured per server",
                flush=True,
            )
            with onecard.serving() as server:
                if args.keep_logs:
                    stack.callback(_keep_log, server.log, args.keep_logs)
                print(f"measuring onecard ({server.workers} workers) …", flush=True)
                if "issue" in chosen:
                    print(" issue: certificates over HTTP", flush=True)
                    since = _log_size(server)
                    pool = args.csr_pool or max(2000, 1000 * (args.warmup + args.duration))
                    try:
                        issue_row = measure_issue(server, load, pool, load_engine)
                    except BenchError:
                        _settle_log(server)
                        report_log(server, since, "issue", failures=1)
                        raise
                    _settle_log(server)
                    tracebacks += report_log(server, since, "issue", issue_row.failures)
                if "ocsp" in chosen:
                    print(" ocsp: onecard ocsp-responder against openssl ocsp", flush=True)
                    since = _log_size(server)
                    with onecard.responding(server) as responder:
                        if args.keep_logs:
                            stack.callback(_keep_log, responder.log, args.keep_logs)
                        try:
                            # The responder's log is reported as each variant ends.
                            ocsp_rows, ocsp_notes = measure_ocsp(
                                server,
                                responder,
                                load,
                                certificates=args.ocsp_certificates,
                                autocannon=not args.no_autocannon,
                                engine=load_engine,
                            )
                        except BenchError:
                            _settle_log(responder)
                            report_log(responder, 0, "ocsp", failures=1)
                            raise
                        finally:
                            # `onecard serve` ran the re-signing jobs meanwhile.
                            _settle_log(server)
                            tracebacks += report_log(server, since, "ocsp (serve)", 0)
        if "crl" in chosen:
            print(f" crl: {args.crl_entries:,} revoked entries, in-process", flush=True)
            database_url = None
            if args.database_url:
                database_url = stack.enter_context(
                    postgres_schema(args.database_url, prefix="bench_crl")
                )
            crl_results.append(
                measure_crl(root / "crl", database_url, args.crl_entries, args.crl_runs)
            )

    if issue_row is not None:
        clean = print_issue(issue_row, backend) and clean
    if ocsp_rows:
        clean = print_ocsp(ocsp_rows, ocsp_notes, backend) and clean
    if crl_results:
        print_crl(crl_results)
    if tracebacks:
        clean = False
        print(
            f"\n!!! the server logged {tracebacks} tracebacks (above; client disconnects "
            "not counted)",
            file=sys.stderr,
        )
    return 0 if clean else 1


def _keep_log(log: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"onecard-ca-{log.stem}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with contextlib.suppress(OSError):
        shutil.copy2(log, target)
        print(f"onecard: log kept in {target}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (onecard and openssl -multi)"
    )
    parser.add_argument(
        "--measurement",
        action="append",
        choices=MEASUREMENTS,
        help="run only this measurement (repeatable); default: all",
    )
    parser.add_argument(
        "--csr-pool",
        type=int,
        default=0,
        help="CSRs generated for the issue measurement (each used once); "
        "default 1,000 per second of warm-up + duration",
    )
    parser.add_argument(
        "--ocsp-certificates",
        type=int,
        default=1000,
        help="certificates issued for the OCSP measurement (one in ten revoked)",
    )
    parser.add_argument(
        "--no-autocannon",
        action="store_true",
        help="skip the autocannon cross-check of the OCSP throughput",
    )
    parser.add_argument(
        "--load",
        choices=("wrk", "node"),
        default="wrk",
        help="load generator: wrk (C, from Debian's wrk package; default) or "
        "bench/peer/ca_load.mjs (node:http)",
    )
    parser.add_argument("--crl-entries", type=int, default=100_000, help="revoked CRL entries")
    parser.add_argument("--crl-runs", type=int, default=3, help="CRL generations timed")
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy onecard's log into DIR before the temporary folder is removed",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL for onecard (fresh schemas are made and dropped), e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test; default: SQLite",
    )
    args = parser.parse_args()
    if (
        args.duration < 1
        or args.warmup < 0
        or min(args.connections, args.workers, args.crl_runs, args.crl_entries) < 1
        or args.ocsp_certificates < REVOKE_EVERY
        or args.csr_pool < 0
    ):
        parser.error(
            "--duration, --connections, --workers, --crl-runs and --crl-entries must be "
            f"positive, --ocsp-certificates at least {REVOKE_EVERY}"
        )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = run(args)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
