"""One-card throughput: offline QR verification against raw P-256, QR tokens over HTTP, online
verification over HTTP.

Usage:
    .venv/bin/python bench/card.py [--measurement offline|qr|online ...]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

- offline: onecard.card.verify.OfflineVerifier.verify on one core (this process, one thread)
  over distinct real tokens, against the raw P-256 signature verification rate of the same
  machine in the same run (cryptography's ``public_key.verify`` over distinct signatures of
  the same size of message), in alternating rounds; the median of each and their ratio.
  Goal: the verifier at >= 80 % of the raw rate. Needs no server and no database: the
  verifier never does.
- qr: ``GET /v1/cards/me/qr`` (a freshly signed token per request) by 16 citizens, each with
  an active card, over `onecard serve --workers N`.
- online: ``POST /v1/cards/verify`` by a registered terminal (client credentials,
  ``card:verify``), each request a different fresh code for one of 16 cards (a code verifies
  once), with p50/p99. Every answer is checked to be 200, and the database must hold one
  recorded verification per 200.

The HTTP measurements use wrk (`make bench-tools`) with bench/peer/wrk_requests.lua on the
same cores as the server, and bench/ca.py's server handling (a temporary data directory, or a
fresh PostgreSQL schema dropped afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ca import (
    Load,
    Row,
    _row,
    citizens_with_tokens,
    prepared_onecard,
    print_http,
    wrk_load,
    wrk_version,
)
from bench.token_endpoint import (
    BenchError,
    _log_size,
    _rate,
    _settle_log,
    report_log,
)

OFFLINE_GOAL = 0.80
CITIZENS = 16
QR_PATH = "/v1/cards/me/qr?purpose=transit"
VERIFY_PATH = "/v1/cards/verify"
ISSUER = "https://onecard.example"


# -- offline, in-process ------------------------------------------------------------------


def _offline_fixture(count: int) -> tuple[Any, list[str], ec.EllipticCurvePublicKey]:
    from onecard.card.purpose import Purpose
    from onecard.card.token import issue_token
    from onecard.card.trustlist import TrustList, card_key
    from onecard.core import clock
    from onecard.core.jose import LocalSigner, generate_private_key, public_jwk, thumbprint

    key = generate_private_key("ES256")
    jwk = {**public_jwk(key), "alg": "ES256", "use": "sig"}
    jwk["kid"] = thumbprint(jwk)
    signer = LocalSigner(jwk["kid"], "ES256", key)
    now = clock.now()
    tokens = [
        issue_token(
            signer,
            issuer=ISSUER,
            card_reference=os.urandom(16),
            purpose=Purpose.TRANSIT,
            now=now,
        )
        for _ in range(count)
    ]
    parsed = card_key(jwk)
    trust_list = TrustList(
        issuer=ISSUER,
        issued_at=now,
        next_update=now + timedelta(hours=1),
        keys={parsed.cose_kid: parsed},
        inactive=frozenset(),
        jws="",
    )
    return trust_list, tokens, key.public_key()


def measure_offline(count: int, rounds: int) -> dict[str, float]:
    """Verifications per second on one core: the verifier and raw P-256, alternating."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from onecard.card.purpose import Purpose
    from onecard.card.token import parse_token, sig_structure
    from onecard.card.verify import OfflineVerifier

    trust_list, tokens, public_key = _offline_fixture(count)
    # The raw check verifies the very signatures and signed bytes of the tokens.
    raw = []
    for text in tokens:
        token = parse_token(text)
        r, s = token.signature[:32], token.signature[32:]
        der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        raw.append((der, sig_structure(token.protected, token.payload)))
    algorithm = ec.ECDSA(hashes.SHA256())
    verifier_rates, raw_rates = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for der, message in raw:
            public_key.verify(der, message, algorithm)
        raw_rates.append(len(raw) / (time.perf_counter() - started))
        verifier = OfflineVerifier(trust_list, seen_memory=len(tokens) + 1)  # fresh memory
        started = time.perf_counter()
        for text in tokens:
            verifier.verify(text, purpose=Purpose.TRANSIT)
        verifier_rates.append(len(tokens) / (time.perf_counter() - started))
    verifier_rate, raw_rate = statistics.median(verifier_rates), statistics.median(raw_rates)
    return {
        "verifier": verifier_rate,
        "raw": raw_rate,
        "ratio": verifier_rate / raw_rate,
        "token_chars": len(tokens[0]),
    }


def print_offline(result: dict[str, float], count: int, rounds: int) -> None:
    print("\n### Offline verification on one core (onecard.card.verify) against raw P-256\n")
    print("| check | verifications/s | µs each |")
    print("|---|---|---|")
    for label, key in (
        ("OfflineVerifier.verify (all checks)", "verifier"),
        ("raw P-256 verify", "raw"),
    ):
        print(f"| {label} | {_rate(result[key])} | {1e6 / result[key]:.1f} |")
    verdict = "met" if result["ratio"] >= OFFLINE_GOAL else "MISSED"
    print(
        f"\n{count:,} distinct tokens of {int(result['token_chars'])} characters; median of "
        f"{rounds} alternating rounds; ratio {result['ratio']:.3f} "
        f"(goal >= {OFFLINE_GOAL:.2f}: {verdict})"
    )


# -- over HTTP ----------------------------------------------------------------------------


def _citizens_with_cards(local: Any, ttl: timedelta) -> list[tuple[Any, str, Any]]:
    from onecard.card import cards
    from onecard.core.audit import Actor

    citizens = citizens_with_tokens(local, CITIZENS, ttl)
    made = []
    with local.runtime.database.session() as session:
        for person_id, token in citizens:
            card = cards.issue_card(session, person_id, actor=Actor.cli("bench"))
            made.append((person_id, token, card.reference))
    return made


def measure_qr(server: Any, load: Load) -> Row:
    ttl = timedelta(seconds=1800)
    citizens = _citizens_with_cards(server.local, ttl)
    sample = httpx.get(
        server.base_url + QR_PATH,
        headers={"Authorization": f"Bearer {citizens[0][1]}"},
        timeout=30,
    )
    if sample.status_code != 200 or not sample.json()["token"].startswith("OC1:"):
        raise BenchError(f"GET {QR_PATH} answered {sample.status_code}: {sample.text[:300]}")
    requests = [
        {"method": "GET", "path": QR_PATH, "authorization": f"Bearer {token}"}
        for _, token, _ in citizens
    ]
    report = wrk_load(load, server.log.parent, server.base_url, requests, warm_up=True, once=False)
    row = _row(server.label, server.workers, report, what="QR token")
    row.notes.append(f"{CITIZENS} citizens, each with an active card; a new signed token each")
    return row


def _terminal_token(server: Any) -> str:
    from onecard.card import terminals
    from onecard.core.audit import Actor

    spec = terminals.TerminalSpec("Bench gate", "Line 1", "City Metro", "transit")
    with server.local.runtime.database.session() as session:
        made = terminals.create_terminal(session, spec, actor=Actor.cli("bench"))
    answer = httpx.post(
        server.base_url + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "card:verify"},
        auth=(made.client_id, made.client_secret),
        timeout=30,
    )
    if answer.status_code != 200:
        raise BenchError(f"the terminal's token request answered {answer.status_code}")
    return str(answer.json()["access_token"])


def _fresh_codes(local: Any, references: list[bytes], count: int) -> list[str]:
    from onecard.card.purpose import Purpose
    from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE, issue_token
    from onecard.core import clock

    runtime = local.runtime
    with runtime.database.read_session() as session:
        signer = runtime.keyring.signer(session, CARD_KEY_PURPOSE, CARD_ALG)
    now = clock.now()
    return [
        issue_token(
            signer,
            issuer=runtime.provider.issuer,
            card_reference=references[n % len(references)],
            purpose=Purpose.TRANSIT,
            now=now,
        )
        for n in range(count)
    ]


def _verifications(local: Any) -> int:
    from sqlalchemy import func
    from sqlmodel import select

    from onecard.card.models import CardVerification

    with local.runtime.database.read_session() as session:
        return int(session.exec(select(func.count()).select_from(CardVerification)).one())


def measure_online(server: Any, load: Load, pool: int) -> Row:
    if load.warmup + load.duration > 50:
        raise BenchError("codes live 60 s: keep warm-up + duration within 50 s")
    citizens = _citizens_with_cards(server.local, timedelta(seconds=1800))
    bearer = f"Bearer {_terminal_token(server)}"
    references = [reference for _, _, reference in citizens]
    sample = _fresh_codes(server.local, references, 1)[0]
    answer = httpx.post(
        server.base_url + VERIFY_PATH, json={"token": sample}, headers={"Authorization": bearer}
    )
    if answer.status_code != 200 or answer.json().get("transit_linked") is not False:
        raise BenchError(f"POST {VERIFY_PATH} answered {answer.status_code}: {answer.text[:300]}")
    before = _verifications(server.local)
    started = time.perf_counter()
    codes = _fresh_codes(server.local, references, pool)  # just before the load: they live 60 s
    print(f"  {len(codes):,} fresh codes in {time.perf_counter() - started:.1f} s", flush=True)
    requests = [
        {
            "method": "POST",
            "path": VERIFY_PATH,
            "authorization": bearer,
            "body": json.dumps({"token": code}),
        }
        for code in codes
    ]
    report = wrk_load(load, server.log.parent, server.base_url, requests, warm_up=True, once=True)
    row = _row(server.label, server.workers, report, what="verification")
    if report["exhausted"]:
        row.failures += 1
        row.notes.append("!!! the codes ran out before the end: run again with a bigger --pool")
    recorded = _verifications(server.local) - before
    if recorded < int(report["ok_total"]):
        row.failures += 1
        row.notes.append(f"!!! {report['ok_total']} answers 200 but {recorded} recorded")
    row.notes.append(
        f"one transit terminal; {CITIZENS} cards; each request a different fresh code; "
        f"{recorded:,} verifications recorded for {int(report['ok_total']):,} answers 200"
    )
    return row


# -- main -----------------------------------------------------------------------------------

MEASUREMENTS = ("offline", "qr", "online")


def run(args: argparse.Namespace) -> int:
    chosen = [m for m in MEASUREMENTS if m in (args.measurement or MEASUREMENTS)]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    clean, tracebacks = True, 0
    results: list[tuple[str, str, Row]] = []
    if "offline" in chosen:
        print(" offline: verifier against raw P-256, one core", flush=True)
        offline = measure_offline(args.tokens, args.rounds)
    http = [m for m in chosen if m != "offline"]
    if http:
        if wrk_version() is None:
            raise BenchError("wrk is missing: `make bench-tools` installs it")
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-card-")))
            onecard = prepared_onecard(stack, root, args.database_url, args.workers, "bench_card")
            load = Load([], args.duration, args.warmup, args.connections, args.workers)
            print(
                f"{os.cpu_count()} cores; onecard on {backend}; {wrk_version()}; "
                f"{args.connections} connections, {args.warmup} s warm-up + {args.duration} s",
                flush=True,
            )
            with onecard.serving() as server:
                for measurement in http:
                    print(f" {measurement}: over HTTP", flush=True)
                    since = _log_size(server)
                    if measurement == "qr":
                        row = measure_qr(server, load)
                        results.append(("QR tokens over HTTP: GET " + QR_PATH, "tokens", row))
                    else:
                        row = measure_online(server, load, args.pool)
                        results.append(("Online verification: POST " + VERIFY_PATH, "codes", row))
                    _settle_log(server)
                    tracebacks += report_log(server, since, measurement, row.failures)
    if "offline" in chosen:
        print_offline(offline, args.tokens, args.rounds)
    for title, unit, row in results:
        clean = print_http(title, unit, row, backend) and clean
    if tracebacks:
        print(f"\n!!! the server logged {tracebacks} tracebacks", file=sys.stderr)
        clean = False
    return 0 if clean else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurement", action="append", choices=MEASUREMENTS)
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=3000, help="tokens per offline round")
    parser.add_argument("--rounds", type=int, default=7, help="offline rounds of each")
    parser.add_argument(
        "--pool", type=int, default=60_000, help="fresh codes for the online measurement"
    )
    parser.add_argument("--database-url", help="PostgreSQL for onecard (a fresh schema)")
    args = parser.parse_args()
    try:
        sys.exit(run(args))
    except BenchError as exc:
        print(f"bench/card.py: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
