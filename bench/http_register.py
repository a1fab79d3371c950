"""Registration requests per second over HTTP, against `onecard serve --workers 2`.

Starts the real server (uvicorn, 2 workers) on 127.0.0.1 in a temporary data directory,
on SQLite and, when reachable, on PostgreSQL (a temporary schema, dropped afterwards); drives
``POST /v1/persons/register`` with a bounded number of concurrent clients for a bounded time;
prints requests/s and p50/p99 latency; stops the server. Each registration hashes a password
with argon2id at the OWASP parameters (19 MiB, t=2), which is the cost being measured.

    .venv/bin/python bench/http_register.py [--seconds 20] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.datagen import identity_number

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ONECARD = str(Path(sys.executable).with_name("onecard"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(env: dict[str, str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ONECARD, "serve", "--port", str(port), "--workers", "2"],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_ready(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


async def _load(
    base: str, seconds: float, concurrency: int, offset: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    counter = iter(range(offset, offset + 10_000_000))
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while time.monotonic() < stop_at:
                body = {
                    "name": "压测市民",
                    "identity_number": identity_number(next(counter)),
                    "password": "benchmark passphrase",
                }
                started = time.perf_counter()
                response = await http.post("/v1/persons/register", json=body)
                elapsed = time.perf_counter() - started
                if response.status_code == 201:
                    latencies.append(elapsed)
                else:
                    failures += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, failures


def argon2_ceiling(samples: int = 30) -> float:
    """Registrations/s if the cores did nothing but hash passwords at the OWASP parameters."""
    from onecard.identity.passwords import PasswordHasher

    hasher = PasswordHasher()
    started = time.perf_counter()
    for _ in range(samples):
        hasher.hash("benchmark passphrase")
    per_core = samples / (time.perf_counter() - started)
    return per_core * (os.cpu_count() or 1)


def run(
    label: str, database_url: str | None, seconds: float, concurrency: int, ceiling: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ONECARD_DATA_DIR": str(Path(tmp) / "var")}
        if database_url:
            env["ONECARD_DATABASE_URL"] = database_url
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = _start(env, Path(tmp), port)
        try:
            _wait_ready(base, time.monotonic() + 60)
            latencies, failures = asyncio.run(
                _load(base, seconds, concurrency, secrets.randbelow(1_000_000))
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    ok = len(latencies)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    print(
        f"{label:<11} {ok / seconds:8.1f} registrations/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
        f"  {ok / seconds / ceiling:4.0%} of ceiling"
        f"  ({ok} ok, {failures} failed, {concurrency} clients, {seconds:.0f} s)"
    )


def _postgres_schema() -> tuple[str, str] | None:
    try:
        engine = sa.create_engine(PG_URL)
        schema = f"bench_{secrets.token_hex(4)}"
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except sa.exc.OperationalError:
        return None
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"POST /v1/persons/register, onecard serve --workers 2, {os.cpu_count()} cores")
    ceiling = argon2_ceiling()
    print(f"{'ceiling':<11} {ceiling:8.1f} argon2id hashes/s (19 MiB, t=2) on all cores, no HTTP")
    run("sqlite", None, args.seconds, args.concurrency, ceiling)
    postgres = _postgres_schema()
    if postgres is None:
        print("postgresql  skipped: not reachable at 127.0.0.1:5432")
        return
    schema, url = postgres
    try:
        run("postgresql", url, args.seconds, args.concurrency, ceiling)
    finally:
        _drop_schema(schema)


if __name__ == "__main__":
    main()
