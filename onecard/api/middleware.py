"""ASGI middleware: security headers, Prometheus metrics and a privacy-safe access log.

Pure ASGI (no BaseHTTPMiddleware) to stay cheap on the hot path. The access log records the
route template (``/v1/persons/{person_id}``), never the query string or body, so no personal
number or token ever reaches the logs through it; uvicorn's own access log is turned off.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onecard.api.problems import CLIENT_CLOSED

REQUESTS = Counter(
    "onecard_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "onecard_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
access_log = logging.getLogger("onecard.access")


@lru_cache(maxsize=1024)
def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The metric children of one (method, route, status): looked up once, not per request.
    Routes are templates and methods and statuses few, so the cache stays small."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


BASE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"content-security-policy", BASE_CSP.encode()),
]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeaders:
    """Adds the headers of DESIGN.md §8 to every response (HSTS when served over https)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app, self.https = app, https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self.https or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _BASE_HEADERS if h[0] not in present)
                if https:
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Observability:
    """Counts and times requests by route template, and writes one access-log line each."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            if scope.get(CLIENT_CLOSED):
                status["code"] = 499
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            counter, histogram = _series(method, route, status["code"])
            counter.inc()
            histogram.observe(elapsed)
            access_log.info("%s %s %s %.1fms", method, route, status["code"], elapsed * 1000)
