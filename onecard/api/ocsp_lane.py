"""A fast lane for OCSP: answers a worker already holds in memory, served before routing.

Relying parties ask about the same certificates over and over, and between revocations the
answer for a nonce-less request is the same pre-signed bytes. This pure-ASGI middleware reads
the request (POST body or GET path), asks :meth:`onecard.ca.ocsp.OcspResponder.cached` (memory
only, no I/O) and answers at once; anything else (a nonce, a cold cache, a stale check of the
authorities) is handed on, with its body replayed, to :mod:`onecard.api.routers.ca`, which
answers in the thread pool. Like the token lane it sits inside the security-headers, metrics
and error middlewares.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from onecard.api.routers.ca import OCSP_REQUEST, decode_get_request, ocsp_response
from onecard.api.token_lane import read_body
from onecard.ca.ocsp import OcspResponder

_PREFIX = "/ocsp/"


class _PostRoute:
    path = "/ocsp"


class _GetRoute:
    path = "/ocsp/{encoded}"


class OcspFastLane:
    def __init__(self, app: ASGIApp, *, responder: OcspResponder | None) -> None:
        self.app, self.responder = app, responder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.responder is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/ocsp":
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != OCSP_REQUEST.encode():
                await self.app(scope, receive, send)
                return
            body, replay = await read_body(receive)
            answer = self.responder.cached(body) if body else None
            route: type = _PostRoute
        elif method == "GET" and path.startswith(_PREFIX):
            replay = receive
            der = decode_get_request(path[len(_PREFIX) :])
            answer = self.responder.cached(der) if der else None
            route = _GetRoute
        else:
            await self.app(scope, receive, send)
            return
        if answer is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = route
        await ocsp_response(answer)(scope, replay, send)
