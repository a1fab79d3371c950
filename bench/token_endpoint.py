"""Token endpoint throughput: onecard against the Node `oidc-provider` package, side by side.

Measurements (--measurement picks some; default: all three):

token    client_credentials, the client authenticated with client_secret_basic, answered with an
         RFC 9068 JWT access token signed ES256: both servers, the same autocannon run (same
         connections, duration, headers and body) against each.
refresh  onecard only (oidc-provider issues refresh tokens only after an interactive login):
         refresh_token grants with rotation. A refresh token is single use, so autocannon
         cannot replay one body: refresh tokens are minted beforehand in this process (onecard
         imported, against the server's own database: a portal client, one person, one grant
         and one refresh token per pool entry) and bench/peer/flow_load.mjs drives them, each
         worker putting the rotated token it received back in the pool.
login    onecard only: password logins through the real authorization flow (GET the
         authorization endpoint, POST its login form with CSRF cookie, csrf_token and txn; a new
         browser every time) with the argon2id parameters in force, against the rate at which
         the same machine computes those argon2id hashes on all its cores (no HTTP), measured
         in the same run.

Both servers run with the same number of worker processes (onecard: uvicorn workers;
oidc-provider: Node cluster workers) on 127.0.0.1, one after the other (never at the same
time). The peer (bench/peer/: oidc-provider and autocannon, exact versions in package.json and
package-lock.json) is installed with `npm ci` into a temporary folder, never into the
repository. onecard runs in a temporary data directory on SQLite, or on PostgreSQL with
--database-url (a fresh schema, dropped afterwards). Everything started is stopped and every
temporary folder removed when the run ends, by failure, Ctrl-C or SIGTERM too; if this script
is killed outright, the servers still stop (they get SIGTERM when it dies), though its
temporary folder stays.

    .venv/bin/python bench/token_endpoint.py [--duration 15] [--warmup 5] [--connections 32]
        [--workers 2] [--login-concurrency 8] [--login-accounts 200]
        [--measurement token|refresh|login ...]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints a markdown table per measurement (requests/s, p50 and p99 latency per server, the
onecard/oidc-provider throughput ratio where there is a peer), and any traceback the server
logged during a measurement; exits non-zero if anything failed or any response was not the
expected one.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx2 as httpx
import jwt
import sqlalchemy as sa
from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
PEER_DIR = Path(__file__).resolve().parent / "peer"
PEER_SERVER = "oidc_provider_server.mjs"
PEER_LOAD = "flow_load.mjs"
PEER_SHARED = "timed_run.mjs"  # the timed loop of flow_load.mjs and ca_load.mjs
PEER_FILES = ("package.json", "package-lock.json", PEER_SERVER, PEER_LOAD, PEER_SHARED)
ONECARD = str(Path(sys.executable).with_name("onecard"))
SCOPE = "card:verify"
CLIENT_NAME = "bench"
PORTAL_NAME = "bench portal"
PORTAL_REDIRECT_URI = "https://portal.example.gov.cn/cb"
PORTAL_ID_JWS_ALG = "ES256"
PASSWORD = "bench passphrase 2026"  # noqa: S105 (every bench account's, in a throwaway DB)

NPM_INSTALL_TIMEOUT = 600
START_TIMEOUT = 60
LOAD_GRACE = 60  # seconds a load generator may run past warm-up + duration
STOP_TIMEOUT = 15
CLI_TIMEOUT = 120


class BenchError(Exception):
    """A failure that ends the run with a clear message (and a non-zero exit)."""


# -- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For preexec_fn: the child gets SIGTERM when this script dies, however it dies (Linux),
    so a server cannot outlive a benchmark killed with SIGKILL."""

    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started with start_new_session=True and everything in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)
    # The leader is gone; children it left behind (uvicorn or cluster workers) are still in
    # the group, whose id cannot be reused while any of them lives.
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _run(
    command: list[str], *, what: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: no answer within {CLI_TIMEOUT} s") from exc


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _wait_http_ok(
    url: str, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with status {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{what} was not ready at {url} within {timeout:.0f} s:\n{_tail(log)}")


# -- the servers under test -----------------------------------------------------------------


@dataclass
class Server:
    """A running server as the measurements see it: where to send what, as which client."""

    label: str
    workers: int
    base_url: str
    endpoint_path: str
    client_id: str
    client_secret: str
    log: Path
    notes: list[str] = field(default_factory=list)
    # onecard only: its database, opened in this process, for fixtures (clients, persons,
    # grants) that the measurements need and HTTP cannot make.
    local: OnecardLocal | None = None

    @property
    def token_url(self) -> str:
        return self.base_url + self.endpoint_path

    def basic_authorization(self) -> str:
        return _basic(self.client_id, self.client_secret)


def _basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded before base64.
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class Onecard:
    """onecard in a temporary data directory: init, a confidential client, `onecard serve`."""

    def __init__(self, root: Path, database_url: str | None, workers: int) -> None:
        self.root = root
        self.workers = workers
        self.env = {**os.environ, "ONECARD_DATA_DIR": str(root / "var")}
        # Self-contained: the temporary data directory's database and master key, never ones
        # from the caller's environment. (Other ONECARD_* settings, such as the argon2id
        # parameters, pass through: they are what is in force.)
        for name in ("PUBLIC_URL", "DATABASE_URL", "MASTER_KEY", "MASTER_KEY_FILE"):
            self.env.pop(f"ONECARD_{name}", None)
        if database_url:
            self.env["ONECARD_DATABASE_URL"] = database_url
        self.client_id = ""
        self.client_secret = ""

    def prepare(self) -> None:
        done = _run([ONECARD, "init"], what="onecard init", cwd=self.root, env=self.env)
        if done.returncode != 0:
            raise BenchError(f"onecard init failed:\n{done.stdout}{done.stderr}")
        self.client_id, self.client_secret = self._create_client()

    def _create_client(self) -> tuple[str, str]:
        command = [
            ONECARD,
            "client",
            "create",
            "--name",
            CLIENT_NAME,
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            SCOPE,
            "--auth-method",
            "client_secret_basic",
            "--json",
        ]
        done = _run(command, what="onecard client create", cwd=self.root, env=self.env)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            if "No such command" in output:
                raise BenchError(
                    "`onecard client create` is not available yet in this onecard "
                    "(the OpenID Connect provider is still being built); this benchmark "
                    "needs it to register its client. Output:\n" + output.strip()
                )
            raise BenchError(f"onecard client create failed:\n{output.strip()}")
        start, end = done.stdout.find("{"), done.stdout.rfind("}")
        try:
            created = json.loads(done.stdout[start : end + 1])
            return str(created["client_id"]), str(created["client_secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                "onecard client create --json did not print a JSON object with client_id "
                f"and client_secret:\n{done.stdout.strip()}"
            ) from exc

    def start(self, command: str, port: int, log: Path) -> subprocess.Popen[bytes]:
        """`onecard COMMAND` on 127.0.0.1:PORT with this run's workers, data directory and
        environment, its output in ``log``; it gets SIGTERM if this script dies."""
        argv = [ONECARD, command, "--host", HOST, "--port", str(port)]
        argv += ["--workers", str(self.workers)]
        with log.open("wb") as out:
            return subprocess.Popen(
                argv,
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )

    @contextlib.contextmanager
    def serving(self) -> Iterator[Server]:
        port = _free_port()
        base = f"http://{HOST}:{port}"
        log = self.root / "serve.log"
        process = self.start("serve", port, log)
        local = OnecardLocal(self.env, public_url=base)
        try:
            _wait_http_ok(f"{base}/readyz", process, log, "onecard serve", START_TIMEOUT)
            yield Server(
                label="onecard",
                workers=self.workers,
                base_url=base,
                endpoint_path="/oauth2/token",
                client_id=self.client_id,
                client_secret=self.client_secret,
                log=log,
                local=local,
            )
        finally:
            try:
                local.close()
            finally:
                _stop_group(process)


def _identity_number(serial: int) -> str:
    """A valid GB 11643 number, distinct for every serial below 365,000 (one region; a birth
    date per thousand; the check character computed as the standard says)."""
    birth = date(1960, 1, 1) + timedelta(days=serial // 1000)
    body = f"110105{birth:%Y%m%d}{serial % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


@dataclass(frozen=True)
class Portal:
    """A confidential portal client (authorization_code + refresh_token, client_secret_basic)."""

    id: Any  # uuid.UUID of the row
    client_id: str
    client_secret: str

    def basic_authorization(self) -> str:
        return _basic(self.client_id, self.client_secret)


class OnecardLocal:
    """onecard imported in this process, on the database the server under test uses, for the
    fixtures of the refresh and login measurements. Used only while the server idles (before a
    measurement's load starts); settings from the server's own environment."""

    def __init__(self, env: dict[str, str], *, public_url: str) -> None:
        self.env = env
        self.public_url = public_url
        self._runtime: Any = None
        self._portal: Portal | None = None
        self._serial = 0

    def settings(self) -> Any:
        from onecard.core.settings import Settings

        values: dict[str, Any] = {
            name.removeprefix("ONECARD_").lower(): value
            for name, value in self.env.items()
            if name.startswith("ONECARD_")
        }
        # What Onecard removed from its environment must not come back from this process's.
        values.update(
            public_url=self.public_url,  # what `onecard serve` sets for its workers
            database_url=self.env.get("ONECARD_DATABASE_URL", ""),
            master_key=None,
            master_key_file=None,
        )
        return Settings(_env_file=None, **values)

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from onecard.api.runtime import build_runtime

            self._runtime = build_runtime(self.settings())
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def portal(self) -> Portal:
        if self._portal is None:
            from onecard.core.audit import Actor
            from onecard.identity.oidc.clients import ClientSpec, create_client
            from onecard.identity.oidc.models import ClientAuthMethod, ClientType, GrantType

            spec = ClientSpec(
                name=PORTAL_NAME,
                client_type=ClientType.CONFIDENTIAL,
                auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
                redirect_uris=(PORTAL_REDIRECT_URI,),
                grant_types=(GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN),
                scopes=("openid",),
                id_token_alg=PORTAL_ID_JWS_ALG,
            )
            with self.runtime.database.session() as session:
                client, secret = create_client(session, spec, actor=Actor.cli(CLIENT_NAME))
                session.flush()
                self._portal = Portal(client.id, client.client_id, str(secret))
        return self._portal

    def _new_persons(self, session: Any, count: int) -> list[tuple[Any, str]]:
        """``count`` registered persons and their identity numbers (their login)."""
        from onecard.core.audit import Actor
        from onecard.identity.persons import NewPerson, register_person

        persons = []
        for _ in range(count):
            self._serial += 1
            number = _identity_number(self._serial)
            new = NewPerson(name="压测市民", identity_number=number)
            person = register_person(
                session, self.runtime.sealer, new, actor=Actor.cli(CLIENT_NAME)
            )
            persons.append((person, number))
        session.flush()
        return persons

    def mint_refresh_tokens(self, count: int) -> list[str]:
        """One person; ``count`` grants of the portal to them (scope openid, level 1, pwd),
        each with one live refresh token, as an authorization code exchange leaves them."""
        from onecard.core import clock
        from onecard.identity.oidc.grants import issue_refresh_token
        from onecard.identity.oidc.models import Grant

        portal = self.portal()
        provider = self.runtime.provider
        with self.runtime.database.session() as session:
            ((person, _),) = self._new_persons(session, 1)
            now = clock.now()
            grants = [
                Grant(
                    client_id=portal.id,
                    person_id=person.id,
                    scope="openid",
                    auth_time=now,
                    level=1,
                    amr=["pwd"],
                    expires_at=now + provider.refresh_token_ttl,
                )
                for _ in range(count)
            ]
            session.add_all(grants)
            session.flush()
            tokens = [issue_refresh_token(session, provider, grant) for grant in grants]
        return tokens

    def login_accounts(self, count: int) -> list[str]:
        """``count`` persons with PASSWORD; returns their logins (identity numbers).

        The password is hashed once (policy checked, the argon2id parameters in force) and
        that hash stored for every account: hashing each would take count x one hash for
        nothing, since a login verifies at the cost the stored hash's parameters set whatever
        its salt."""
        from onecard.core.audit import Actor
        from onecard.identity.credentials import hash_new_password, store_password

        hashed = hash_new_password(self.runtime.hasher, PASSWORD)
        logins = []
        with self.runtime.database.session() as session:
            for person, number in self._new_persons(session, count):
                store_password(session, person, hashed, actor=Actor.cli(CLIENT_NAME))
                logins.append(number)
        return logins

    def argon2_parameters(self) -> tuple[int, int, str]:
        """(time_cost, memory KiB, where they come from) as the server reads them."""
        from onecard.core.settings import Settings

        settings = self.settings()
        t, m = settings.password_hash_time_cost, settings.password_hash_memory_kib
        fields = Settings.model_fields
        defaults = (
            fields["password_hash_time_cost"].default,
            fields["password_hash_memory_kib"].default,
        )
        source = "Settings defaults" if (t, m) == defaults else f"environment; defaults {defaults}"
        return t, m, source


class NodePeer:
    """bench/peer installed from npm into a temporary folder; oidc-provider in cluster mode."""

    def __init__(self, root: Path, workers: int, max_seconds: int) -> None:
        self.root = root
        self.workers = workers
        self.max_seconds = max_seconds
        self.client_secret = secrets.token_urlsafe(32)

    def install(self) -> None:
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise BenchError(f"`{tool}` is not on PATH; the peer needs Node.js and npm")
        for name in PEER_FILES:
            if (PEER_DIR / name).exists():
                shutil.copy2(PEER_DIR / name, self.root / name)
        env = {**os.environ, "npm_config_update_notifier": "false"}
        # npm ci installs exactly what package-lock.json records (versions and integrity).
        locked = (self.root / "package-lock.json").exists()
        try:
            done = subprocess.run(
                ["npm", "ci" if locked else "install", "--no-audit", "--no-fund"],
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=NPM_INSTALL_TIMEOUT,
                check=False,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"npm install took longer than {NPM_INSTALL_TIMEOUT} s") from exc
        if done.returncode != 0:
            raise BenchError(f"npm ci failed in {self.root}:\n{done.stdout}{done.stderr}")

    def version(self, package: str) -> str:
        manifest = self.root / "node_modules" / package / "package.json"
        return json.loads(manifest.read_text())["version"]

    @property
    def autocannon(self) -> list[str]:
        return ["node", str(self.root / "node_modules" / "autocannon" / "autocannon.js")]

    @property
    def flow_load(self) -> list[str]:
        return ["node", str(self.root / PEER_LOAD)]

    @contextlib.contextmanager
    def serving(self) -> Iterator[Server]:
        port = _free_port()
        base = f"http://{HOST}:{port}"
        log = self.root / "server.log"
        env = {
            **os.environ,
            "NODE_ENV": "production",
            "BENCH_WORKERS": str(self.workers),
            "BENCH_CLIENT_SECRET": self.client_secret,
            "BENCH_MAX_SECONDS": str(self.max_seconds),
        }
        with log.open("wb") as out:
            # stdin stays an open pipe: the peer stops by itself when it closes (this script
            # exited, however it exited).
            process = subprocess.Popen(
                ["node", PEER_SERVER, str(port)],
                cwd=self.root,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while f"ready {port}" not in log.read_text(errors="replace"):
                if process.poll() is not None:
                    raise BenchError(
                        f"the oidc-provider peer exited with status {process.returncode}:\n"
                        + _tail(log)
                    )
                if time.monotonic() > deadline:
                    raise BenchError(f"the oidc-provider peer did not start:\n{_tail(log)}")
                time.sleep(0.1)
            _wait_http_ok(
                f"{base}/.well-known/openid-configuration",
                process,
                log,
                "the oidc-provider peer",
                START_TIMEOUT,
            )
            yield Server(
                label=f"oidc-provider {self.version('oidc-provider')}",
                workers=self.workers,
                base_url=base,
                endpoint_path="/token",
                client_id=CLIENT_NAME,
                client_secret=self.client_secret,
                log=log,
                notes=[line for line in _tail(log, 50).splitlines() if "WARNING" in line][:2],
            )
        finally:
            if process.stdin:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            _stop_group(process)


# -- the load generator ---------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What every measurement uses, identically for both servers."""

    autocannon: list[str]
    duration: int
    warmup: int
    connections: int
    flow_load: list[str]  # bench/peer/flow_load.mjs, for the onecard-only measurements
    login_concurrency: int
    login_accounts: int


@dataclass
class Result:
    server: str
    workers: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    total: int
    failures: int
    status_codes: dict[str, int]
    # Further markdown rows (a ceiling) and lines under the table (a ratio, parameters).
    extra_rows: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def autocannon(
    load: Load, *, url: str, method: str, headers: dict[str, str], body: str, duration: int
) -> dict:
    """One autocannon run as a subprocess; its --json report."""
    command = [*load.autocannon, "--json", "--no-progress"]
    command += ["-c", str(load.connections), "-d", str(duration), "-m", method]
    for name, value in headers.items():
        command += ["-H", f"{name}={value}"]
    command += ["-b", body, url]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
    )
    try:
        stdout, stderr = process.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"autocannon did not finish within {duration + 60} s") from exc
    finally:
        if process.poll() is None:
            _stop_group(process)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise BenchError(f"autocannon failed ({process.returncode}):\n{stderr}{stdout}")
    return json.loads(lines[-1])


def _result(server: Server, report: dict) -> Result:
    return Result(
        server=server.label,
        workers=server.workers,
        requests_per_s=float(report["requests"]["average"]),
        p50_ms=float(report["latency"]["p50"]),
        p99_ms=float(report["latency"]["p99"]),
        total=int(report["requests"]["total"]),
        failures=int(report["non2xx"]) + int(report["errors"]) + int(report["timeouts"]),
        status_codes={
            code: stats["count"] for code, stats in report.get("statusCodeStats", {}).items()
        },
    )


def drive(server: Server, load: Load, *, url: str, headers: dict[str, str], body: str) -> Result:
    """Warm up, then the measured run: POST with these headers and body. Failures during the
    warm-up count too (they are not measured, but they are failures)."""
    warm = None
    if load.warmup > 0:
        warm = autocannon(
            load, url=url, method="POST", headers=headers, body=body, duration=load.warmup
        )
    report = autocannon(
        load, url=url, method="POST", headers=headers, body=body, duration=load.duration
    )
    result = _result(server, report)
    if warm is not None:
        warmed = _result(server, warm)
        if warmed.failures:
            result.failures += warmed.failures
            result.notes.append(
                f"{server.label}: {warmed.failures} failures during the warm-up "
                f"(status codes {warmed.status_codes})"
            )
    return result


def flow_load(load: Load, workdir: Path, config: dict[str, Any]) -> dict:
    """One bench/peer/flow_load.mjs run (warm-up and measured window in one process) with
    this configuration; its JSON report."""
    config = {**config, "warmup": load.warmup, "duration": load.duration}
    limit = load.warmup + load.duration + LOAD_GRACE
    return run_node_load(load.flow_load, workdir, config, limit=limit)


def run_node_load(command: list[str], workdir: Path, config: dict[str, Any], *, limit: int) -> dict:
    """Run a node load generator (``command`` + the path of ``config`` written as JSON, which
    may hold tokens and is removed right after) that stops by itself after ``limit`` s; the
    JSON report it prints last."""
    name = Path(command[-1]).name
    path = workdir / f"load-{config['mode']}-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(config))
    try:
        process = subprocess.Popen(
            [*command, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # It stops by itself after `limit` s, and gets SIGTERM if this script dies.
            env={**os.environ, "BENCH_MAX_SECONDS": str(limit)},
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        try:
            stdout, stderr = process.communicate(timeout=limit + 10)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{name} did not finish within {limit + 10} s") from exc
        finally:
            if process.poll() is None:
                _stop_group(process)
    finally:
        path.unlink(missing_ok=True)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise BenchError(f"{name} failed ({process.returncode}):\n{stderr}{stdout}")
    return json.loads(lines[-1])


def _flow_result(server: Server, report: dict, *, what: str) -> Result:
    failures = int(report["errors"]) + int(report["warmup_errors"])
    if report.get("tokens_left") == 0:
        failures += 1  # every refresh family lost: the run ended early
    if int(report["completed"]) == 0:
        raise BenchError(
            f"{server.label}: not one {what} succeeded; first failures: {report['samples']}"
        )
    return Result(
        server=server.label,
        workers=server.workers,
        requests_per_s=float(report["rate"]),
        p50_ms=float(report["p50_ms"]),
        p99_ms=float(report["p99_ms"]),
        total=int(report["completed"]) + int(report["errors"]),
        failures=failures,
        status_codes={str(code): count for code, count in report["statuses"].items()},
        notes=[f"first failures: {report['samples']}"] if report["samples"] else [],
    )


# -- checks ---------------------------------------------------------------------------------


def _b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def check_jwt_access_token(server: Server, token: str) -> dict:
    """The token is an RFC 9068 JWT (typ at+jwt, ES256) whose signature the server's JWKS
    verifies; returns its claims."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BenchError(f"{server.label}: the access token is not a JWS JWT: {token[:40]}…")
    try:
        header = _b64url_json(parts[0])
    except ValueError as exc:
        raise BenchError(f"{server.label}: the access token header does not decode") from exc
    typ = str(header.get("typ", "")).lower()
    if typ not in ("at+jwt", "application/at+jwt") or header.get("alg") != "ES256":
        raise BenchError(
            f"{server.label}: the access token is not an ES256 at+jwt JWT; header: {header}"
        )
    try:
        discovery = httpx.get(f"{server.base_url}/.well-known/openid-configuration", timeout=10)
        discovery.raise_for_status()
        issuer = discovery.json()["issuer"]
        jwks = httpx.get(discovery.json()["jwks_uri"], timeout=10)
        jwks.raise_for_status()
        keys = {key.get("kid"): key for key in jwks.json()["keys"]}
        key = jwt.PyJWK(keys[header.get("kid")], algorithm="ES256")
        return jwt.decode(
            token, key, algorithms=["ES256"], issuer=issuer, options={"verify_aud": False}
        )
    except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
        raise BenchError(
            f"{server.label}: the access token's signature could not be verified against "
            f"the JWKS published in its discovery document: {exc!r}"
        ) from exc


# -- measurements ---------------------------------------------------------------------------
# Each measurement takes a running Server and the shared Load and returns one Result. One that
# runs against both servers makes what it needs through each server's own means; one that runs
# against onecard only (no_peer in MEASUREMENTS) makes its fixtures through server.local.


def measure_token_endpoint(server: Server, load: Load) -> Result:
    """client_credentials, client_secret_basic, answered with an ES256 JWT access token."""
    headers = {
        "Authorization": server.basic_authorization(),
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    body = urlencode({"grant_type": "client_credentials", "scope": SCOPE})
    response = httpx.post(server.token_url, headers=headers, content=body, timeout=30)
    if response.status_code == 404 and server.label == "onecard":
        raise BenchError(
            f"onecard answers 404 at {server.endpoint_path}: its token endpoint is not there yet"
        )
    if response.status_code != 200:
        raise BenchError(
            f"{server.label}: POST {server.endpoint_path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    try:
        answer = response.json()
        token = answer["access_token"]
    except (ValueError, KeyError) as exc:
        raise BenchError(f"{server.label}: no access_token in {response.text[:500]}") from exc
    claims = check_jwt_access_token(server, token)
    if SCOPE not in str(claims.get("scope", "")).split():
        raise BenchError(f"{server.label}: the access token does not carry {SCOPE}: {claims}")
    print(
        f"  {server.label}: sample token verified (ES256 at+jwt), "
        f"claims {sorted(claims)}, expires_in {answer.get('expires_in')}",
        flush=True,
    )
    return drive(server, load, url=server.token_url, headers=headers, body=body)


def _local(server: Server) -> OnecardLocal:
    if server.local is None:
        raise BenchError(f"{server.label}: this measurement runs against onecard only")
    return server.local


def measure_refresh(server: Server, load: Load) -> Result:
    """refresh_token grants with rotation, client_secret_basic (onecard only)."""
    local = _local(server)
    count = max(2 * load.connections, 64)
    started = time.perf_counter()
    tokens = local.mint_refresh_tokens(count)
    portal = local.portal()
    print(
        f"  {server.label}: {count} grants with a refresh token minted in "
        f"{time.perf_counter() - started:.1f} s (portal client {portal.client_id}, scope openid, "
        f"ID tokens {PORTAL_ID_JWS_ALG})",
        flush=True,
    )
    # One exchange by hand: what every exchange under load must look like.
    old = tokens.pop()
    response = httpx.post(
        server.token_url,
        headers={
            "Authorization": portal.basic_authorization(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        content=urlencode({"grant_type": "refresh_token", "refresh_token": old}),
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(
            f"{server.label}: a refresh_token grant answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    answer = response.json()
    new = answer.get("refresh_token")
    if not isinstance(new, str) or new == old or "id_token" not in answer:
        raise BenchError(f"{server.label}: no rotated refresh token and ID token: {sorted(answer)}")
    claims = check_jwt_access_token(server, answer["access_token"])
    tokens.append(new)
    print(
        f"  {server.label}: sample refresh verified (ES256 at+jwt access token, rotated refresh "
        f"token, ID token), access token claims {sorted(claims)}",
        flush=True,
    )
    report = flow_load(
        load,
        server.log.parent,
        {
            "mode": "refresh",
            "base_url": server.base_url,
            "concurrency": load.connections,
            "token_path": server.endpoint_path,
            "authorization": portal.basic_authorization(),
            "refresh_tokens": tokens,
        },
    )
    result = _flow_result(server, report, what="refresh")
    result.notes.append(
        f"{load.connections} concurrent clients (flow_load.mjs); each exchange checked for a "
        f"new refresh token; {report['tokens_left']} of {count} refresh families live at the end"
    )
    return result


def _argon2_hashes(seconds: float, time_cost: int, memory_kib: int) -> tuple[int, float]:
    """In a worker process: argon2id hashes at these parameters for ``seconds``."""
    import argon2

    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=argon2.Type.ID
    )
    hasher.hash(PASSWORD)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        hasher.hash(PASSWORD)
        count += 1
    return count, time.perf_counter() - started


def argon2_ceiling(processes: int, seconds: float, time_cost: int, memory_kib: int) -> float:
    """argon2id hashes/s with ``processes`` processes hashing at once (argon2-cffi, the
    parameters onecard uses; parallelism 1 as in onecard.identity.passwords)."""
    context = multiprocessing.get_context("spawn")  # no fork of a process holding DB handles
    with context.Pool(processes) as pool:
        runs = pool.starmap(_argon2_hashes, [(seconds, time_cost, memory_kib)] * processes)
    return sum(count / elapsed for count, elapsed in runs)


def measure_password_login(server: Server, load: Load) -> Result:
    """Password logins through the authorization endpoint (onecard only)."""
    local = _local(server)
    time_cost, memory_kib, source = local.argon2_parameters()
    print(
        f"  {server.label}: argon2id time_cost={time_cost}, memory={memory_kib} KiB, "
        f"parallelism=1 ({source})",
        flush=True,
    )
    started = time.perf_counter()
    accounts = local.login_accounts(load.login_accounts)
    portal = local.portal()
    print(
        f"  {server.label}: {len(accounts)} accounts with a password in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    cores = os.cpu_count() or 1
    seconds = float(min(max(load.duration, 2), 10))
    ceiling = argon2_ceiling(cores, seconds, time_cost, memory_kib)
    print(
        f"  argon2id ceiling: {ceiling:.1f} hashes/s ({cores} processes, {seconds:g} s, no HTTP)",
        flush=True,
    )
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    report = flow_load(
        load,
        server.log.parent,
        {
            "mode": "login",
            "base_url": server.base_url,
            "concurrency": load.login_concurrency,
            "authorize_path": "/oauth2/authorize",
            "authorize_query": {
                "response_type": "code",
                "client_id": portal.client_id,
                "redirect_uri": PORTAL_REDIRECT_URI,
                "scope": "openid",
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
            "accounts": accounts,
            "password": PASSWORD,
        },
    )
    result = _flow_result(server, report, what="login")
    result.extra_rows.append(
        f"| ceiling: argon2id hashes/s on {cores} cores, no HTTP | | {_rate(ceiling)} | | | |"
    )
    result.notes += [
        f"logins/s / argon2id ceiling: {result.requests_per_s / ceiling:.0%} "
        f"({result.requests_per_s:.1f} / {ceiling:.1f})",
        f"argon2id time_cost={time_cost}, memory={memory_kib} KiB, parallelism=1 ({source}); "
        f"{load.login_concurrency} concurrent browsers cycling through {len(accounts)} accounts; "
        "a login = GET /oauth2/authorize + POST /oauth2/authorize/login "
        f"(latency of both); answers {result.status_codes}",
    ]
    return result


@dataclass(frozen=True)
class Measurement:
    key: str  # for --measurement
    title: str
    measure: Callable[[Server, Load], Result]
    no_peer: str | None = None  # onecard only, and why


MEASUREMENTS: list[Measurement] = [
    Measurement(
        "token",
        "Token endpoint: client_credentials, client_secret_basic, ES256 JWT access token",
        measure_token_endpoint,
    ),
    Measurement(
        "refresh",
        "Token endpoint: refresh_token grants with rotation, client_secret_basic, "
        "ES256 JWT access token and ID token",
        measure_refresh,
        no_peer="oidc-provider issues refresh tokens only after an interactive login",
    ),
    Measurement(
        "login",
        "Password logins through the authorization endpoint (requests/s = logins/s)",
        measure_password_login,
        no_peer="the login runs through onecard's own pages (oidc-provider ships only "
        "development ones, devInteractions)",
    ),
]


# -- report ---------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def print_table(measurement: Measurement, results: list[Result], peer_label: str | None) -> bool:
    """A markdown table and the throughput ratio; False if any response was not the expected
    one."""
    print(f"\n### {measurement.title}\n")
    print("| server | workers | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row.server} | {row.workers} | {_rate(row.requests_per_s)} | {row.p50_ms:g} "
            f"| {row.p99_ms:g} | {row.failures} |"
        )
        for extra in row.extra_rows:
            print(extra)
    if measurement.no_peer and peer_label:
        print(f"| {peer_label} | | no peer | | | |")
    for row in results:
        for note in row.notes:
            print(f"\n{note}")
    if measurement.no_peer:
        print(f"\nno peer: {measurement.no_peer}")
    ours = [row for row in results if row.server == "onecard"]
    peers = [row for row in results if row.server != "onecard"]
    if ours and peers and peers[0].requests_per_s > 0:
        ratio = ours[0].requests_per_s / peers[0].requests_per_s
        print(f"\nratio onecard / {peers[0].server} (requests/s): {ratio:.2f}")
    clean = True
    for row in results:
        if row.failures:
            clean = False
            print(
                f"\n!!! {row.server}: {row.failures} failures in {row.total} requests "
                f"(unexpected answers, connection errors and timeouts, warm-up included; "
                f"status codes: {row.status_codes}); "
                "these figures do not measure the successful path",
                file=sys.stderr,
            )
    return clean


def _log_size(server: Server) -> int:
    try:
        return server.log.stat().st_size
    except OSError:
        return 0


def _settle_log(server: Server, quiet: float = 1.0, limit: float = 10.0) -> None:
    """Wait until the server's log has not grown for ``quiet`` seconds (it is still logging
    the requests a load generator abandoned when it stopped), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    size, since = _log_size(server), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.2)
        if _log_size(server) != size:
            size, since = _log_size(server), time.monotonic()


_ERROR_MARKS = ("Traceback", "ERROR", "Error:", "Exception", "server_error")


# A client that hung up before its request body arrived (a load generator stopping with
# requests in flight): the server logs it as an unhandled error, though nobody got an answer.
_CLIENT_GONE = "ClientDisconnect"


def report_log(server: Server, since: int, title: str, failures: int, limit: int = 40) -> int:
    """What the server logged about errors during one measurement (its log from byte
    ``since``), before its temporary log is removed: each distinct exception with its count,
    and the first ``limit`` lines of the first traceback (with the log line before it) that is
    not a client disconnect, plus the lines ending it. Returns the number of tracebacks other
    than client disconnects."""
    with server.log.open("rb") as handle:
        handle.seek(since)
        lines = handle.read().decode(errors="replace").splitlines()
    found: list[tuple[int, int]] = []  # (first line, exception line) of each traceback
    n = 0
    while n < len(lines):
        if lines[n].startswith("Traceback"):
            end = _traceback_end(lines, n)
            found.append((n, end))
            n = max(end, n) + 1
        else:
            n += 1
    real = [(start, end) for start, end in found if _CLIENT_GONE not in lines[end]]
    hits = [n for n, line in enumerate(lines) if any(mark in line for mark in _ERROR_MARKS)]
    if not found and not (failures and hits):
        return 0
    exceptions: dict[str, int] = {}
    for _, end in found:
        exceptions[lines[end][:200]] = exceptions.get(lines[end][:200], 0) + 1
    print(
        f"\n--- {server.label}, {title}: {len(found)} tracebacks "
        f"({len(found) - len(real)} client disconnects), {len(hits)} log lines about errors ---",
        file=sys.stderr,
    )
    for line, count in sorted(exceptions.items(), key=lambda item: -item[1]):
        print(f"{count:6d} x {line}", file=sys.stderr)
    if len(real) < len(found):
        print(
            f"({_CLIENT_GONE}: the load generator hung up with requests in flight when it "
            "stopped; no client received those 500s)",
            file=sys.stderr,
        )
    if real or (failures and hits):
        start, end = real[0] if real else (hits[0], _traceback_end(lines, hits[0]))
        if start > 0 and "ERROR" in lines[start - 1]:
            start -= 1
        print(f"first {limit} lines:", file=sys.stderr)
        print("\n".join(lines[start : start + limit]), file=sys.stderr)
        if end >= start + limit:
            tail = max(start + limit, end - 5)
            print(f"[… {tail - start - limit} lines …]", file=sys.stderr)
            print("\n".join(lines[tail : end + 1]), file=sys.stderr)
    print("---", file=sys.stderr)
    return len(real)


def _traceback_end(lines: list[str], start: int) -> int:
    """The index of the exception line that ends the (possibly chained) traceback found at or
    after ``start``; ``start`` if there is none."""
    end, inside = start, False
    for n in range(start, len(lines)):
        line = lines[n]
        if not line or line[0].isspace() or line.startswith(("During ", "The above ")):
            continue
        if line.startswith("Traceback"):
            inside = True
        elif inside:
            end, inside = n, False
        elif end > start:
            break
    return end


# -- PostgreSQL -----------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_schema(base_url: str, prefix: str = "bench_token") -> Iterator[str]:
    """A fresh schema on base_url, dropped afterwards; yields a URL whose search_path is it."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    engine = sa.create_engine(base_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        raise BenchError(f"PostgreSQL not reachable at {base_url}: {exc}") from exc
    finally:
        engine.dispose()
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        engine = sa.create_engine(base_url)
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# -- main -----------------------------------------------------------------------------------


def _keep_log(server: Server, folder: Path) -> None:
    """Copy a server's log out of the temporary folder before it is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "onecard" if server.local is not None else "oidc-provider"
    target = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with contextlib.suppress(OSError):
        shutil.copy2(server.log, target)
        print(f"{server.label}: log kept in {target}", file=sys.stderr)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    sides = ("onecard", "oidc-provider") if args.only is None else (args.only,)
    chosen = [m for m in MEASUREMENTS if m.key in (args.measurement or [m.key])]
    if "onecard" not in sides:
        chosen = [m for m in chosen if not m.no_peer]
    if not chosen:
        raise BenchError("nothing to measure: those measurements run against onecard only")
    measured = len(chosen) * len(sides) * (args.warmup + args.duration + 30 + LOAD_GRACE)
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-token-")))
        (root / "onecard").mkdir()
        (root / "peer").mkdir()

        onecard = None
        if "onecard" in sides:
            database_url = None
            if args.database_url:
                database_url = stack.enter_context(postgres_schema(args.database_url))
            onecard = Onecard(root / "onecard", database_url, args.workers)
            print("preparing onecard (init, client create) …", flush=True)
            onecard.prepare()

        print("installing the peer from npm into a temporary folder …", flush=True)
        peer = NodePeer(root / "peer", args.workers, max_seconds=measured + 600)
        peer.install()
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        load = Load(
            peer.autocannon,
            args.duration,
            args.warmup,
            args.connections,
            peer.flow_load,
            args.login_concurrency,
            args.login_accounts,
        )
        backend = "PostgreSQL" if args.database_url else "SQLite"
        backend = f"onecard on {backend}; " if onecard is not None else ""
        print(
            f"{os.cpu_count()} cores; {backend}Node {node}, "
            f"oidc-provider {peer.version('oidc-provider')}, "
            f"autocannon {peer.version('autocannon')}; {args.connections} connections, "
            f"{args.warmup} s warm-up + {args.duration} s measured per server",
            flush=True,
        )

        results: dict[str, list[Result]] = {m.key: [] for m in chosen}
        servers: list[Callable[[], contextlib.AbstractContextManager[Server]]] = []
        if onecard is not None:
            servers.append(onecard.serving)
        if "oidc-provider" in sides:
            servers.append(peer.serving)
        tracebacks = 0
        for serving in servers:
            with serving() as server:
                if args.keep_logs:
                    stack.callback(_keep_log, server, args.keep_logs)
                print(f"measuring {server.label} ({server.workers} workers) …", flush=True)
                for note in server.notes:
                    print(f"  ({note.strip()})")
                for measurement in chosen:
                    if measurement.no_peer and server.local is None:
                        continue
                    print(f" {measurement.key}: {measurement.title}", flush=True)
                    since = _log_size(server)
                    try:
                        result = measurement.measure(server, load)
                    except BenchError:
                        _settle_log(server)
                        report_log(server, since, measurement.key, failures=1)
                        raise
                    results[measurement.key].append(result)
                    _settle_log(server)
                    tracebacks += report_log(server, since, measurement.key, result.failures)

        clean = tracebacks == 0
        peer_label = f"oidc-provider {peer.version('oidc-provider')}"
        for measurement in chosen:
            rows = results[measurement.key]
            if rows:
                clean = print_table(measurement, rows, peer_label) and clean
        if tracebacks:
            print(
                f"\n!!! the servers logged {tracebacks} tracebacks (above; client disconnects "
                "not counted)",
                file=sys.stderr,
            )
        return 0 if clean else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per server")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per server")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes, the same for both servers"
    )
    parser.add_argument(
        "--login-concurrency",
        type=int,
        default=8,
        help="concurrent browsers in the login measurement",
    )
    parser.add_argument(
        "--login-accounts",
        type=int,
        default=200,
        help="accounts the login measurement cycles through",
    )
    parser.add_argument(
        "--measurement",
        action="append",
        choices=[m.key for m in MEASUREMENTS],
        help="run only this measurement (repeatable); default: all",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy each server's log into DIR before the temporary folder is removed",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL for onecard (a fresh schema is made and dropped), e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test; default: SQLite",
    )
    parser.add_argument(
        "--only",
        choices=("onecard", "oidc-provider"),
        help="measure one side only (no ratio); for debugging",
    )
    args = parser.parse_args()
    if (
        args.duration < 1
        or args.warmup < 0
        or min(args.connections, args.workers, args.login_concurrency, args.login_accounts) < 1
    ):
        parser.error(
            "--duration, --connections, --workers, --login-concurrency and --login-accounts "
            "must be positive"
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
