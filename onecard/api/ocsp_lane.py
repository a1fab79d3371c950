"""A fast lane for OCSP: answers a worker can give from memory, served before everything else.

Relying parties ask about the same certificates over and over, and between revocations the
answer to a nonce-less request is the same pre-signed bytes (and one with a nonce needs only a
signature over a status already known). This pure-ASGI middleware is the outermost one: it
reads the request (POST body or GET path), asks
:meth:`onecard.ca.ocsp.OcspResponder.cached` (memory only, no I/O) and writes the answer
itself, so an OCSP hit costs no routing, no per-request access-log line and no metrics
histogram; it is counted in ``onecard_ocsp_memory_answers_total``. Anything else (a cold
cache, a stale check of the authorities, another path) is handed on, with its body replayed,
to the application, where :mod:`onecard.api.routers.ca` answers in the thread pool.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from onecard.api.routers.ca import OCSP_REQUEST, OCSP_RESPONSE, decode_get_request
from onecard.api.token_lane import read_body
from onecard.ca.ocsp import MALFORMED, OcspResponder

MEMORY_ANSWERS = Counter(
    "onecard_ocsp_memory_answers_total", "OCSP requests answered from a worker's memory"
)
_PREFIX = "/ocsp/"
_HEADERS = [
    (b"content-type", OCSP_RESPONSE.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-transform"),
]


class OcspFastLane:
    def __init__(self, app: ASGIApp, *, responder: OcspResponder | None) -> None:
        self.app, self.responder = app, responder
        self._counter = MEMORY_ANSWERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.responder is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/ocsp":
            content_type = b""
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.split(b";")[0].strip().lower()
            if content_type != OCSP_REQUEST.encode():
                await self.app(scope, receive, send)
                return
            body, replay = await read_body(receive)
            answer = self.responder.cached(body) if body else None
        elif method == "GET" and path.startswith(_PREFIX):
            replay = receive
            der = decode_get_request(path[len(_PREFIX) :])
            answer = self.responder.cached(der) if der else None
        else:
            await self.app(scope, receive, send)
            return
        if answer is None:
            await self.app(scope, replay, send)
            return
        self._counter.inc()
        headers = [*_HEADERS, (b"content-length", str(len(answer)).encode())]
        status = 400 if answer is MALFORMED else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
