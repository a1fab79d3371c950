"""The dedicated OCSP responder: a lean HTTP/1.1 server that answers OCSP and nothing else.

Why it exists: served by the main application, even an answer held in memory
(:mod:`onecard.api.ocsp_lane`) pays for uvicorn's per-request HTTP and ASGI machinery.
Measured on 2 workers: about 12,700 nonce-less GETs/s, 8,200 POSTs/s and 3,700 POSTs with a
nonce/s, where a bare uvicorn application returning fixed bytes does 14,800/s (the floor) and
``openssl ocsp`` 6,000 to 7,000/s; issue #4 asks for twice openssl. So, as production CAs run
their responder as a service of its own behind the same public URL (Boulder's
ocsp-responder), ``onecard ocsp-responder`` runs this module: a raw :class:`asyncio.Protocol`
parsing with httptools (llhttp) and writing prebuilt headers, on uvloop when it is installed.
The main application keeps answering OCSP too (the embedded default); a deployment routes
``/ocsp`` and ``/ocsp/*`` to this server at its load balancer.

It owns the HTTP side only, and serves exactly:

- ``POST /ocsp`` with ``Content-Type: application/ocsp-request`` and a body of at most
  :data:`~onecard.ca.ocsp.MAX_REQUEST_BYTES` (a larger one: 413, and the connection closes);
- ``GET /ocsp/<base64 DER>`` (RFC 6960 appendix A.1);
- ``GET /healthz``: 200 ``ok``. Another path is 404, another method 405 with ``Allow``.

Answers, status codes and headers are those of the main application: from
:meth:`~onecard.ca.ocsp.OcspResponder.cached` on the event loop (memory only), else from
:meth:`~onecard.ca.ocsp.OcspResponder.answer` in a bounded thread pool; ``malformedRequest``
is HTTP 400, and a failure of the responder is a 500 with an ``internalError`` answer (logged,
never shown). HTTP/1.1 keep-alive and pipelining are served, answers in request order: each
connection has at most one answer in the thread pool, and stops reading while
:data:`MAX_PIPELINED` requests wait or while its client does not take its answers. The request
head is limited in size and header count, idle connections close after
:data:`IDLE_TIMEOUT_SECONDS`, and each worker holds at most :data:`MAX_CONNECTIONS`.

No metrics: nothing here serves ``/metrics``, and a counter nobody reads is cost without use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple, cast

import httptools
from uvicorn.config import STARTUP_FAILURE

from onecard.api.routers.ca import OCSP_REQUEST, OCSP_RESPONSE, decode_get_request
from onecard.api.runtime import build_runtime
from onecard.ca.ocsp import INTERNAL_ERROR, MALFORMED, MAX_REQUEST_BYTES, OcspResponder
from onecard.core.settings import get_settings

logger = logging.getLogger("onecard.ocsp_server")

IDLE_TIMEOUT_SECONDS = 60.0
MAX_CONNECTIONS = 1000  # per worker: below the usual limit of 1,024 open files
MAX_HEAD_BYTES = 8 * 1024  # request line and headers (nginx's default buffers hold as much)
MAX_HEADERS = 64
MAX_PIPELINED = 16  # requests read ahead of their answer before a connection stops reading
BACKLOG = 2048  # uvicorn's default
STOP_SECONDS = 5.0  # in-flight answers get this long to finish when the worker stops

_STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())
    for status in (200, 400, 404, 405, 413, 431, 500)
}
_OCSP_HEADERS = (
    b"content-type: " + OCSP_RESPONSE.encode() + b"\r\n"
    b"x-content-type-options: nosniff\r\n"
    b"cache-control: no-transform\r\n"
)
_TEXT_HEADERS = b"content-type: text/plain; charset=utf-8\r\n"
_OCSP_PREFIX = b"/ocsp/"  # GET only
_METHODS = {b"/ocsp": b"POST", b"/healthz": b"GET"}


class _Request(NamedTuple):
    """A request read and routed: an OCSP request to answer (``der``; empty when malformed)
    or a fixed answer (``status``, ``headers``, ``body``)."""

    keep_alive: bool
    http_10: bool
    der: bytes | None = None
    status: int = 200
    headers: bytes = b""
    body: bytes = b""


def _ocsp_answer(der: bytes) -> tuple[int, bytes, bytes]:
    status = 400 if der == MALFORMED else 500 if der == INTERNAL_ERROR else 200
    return status, _OCSP_HEADERS, der


class _Refused(Exception):
    """Raised from a parser callback to stop reading a request that breaks a limit."""


class _Service:
    """What the connections of one worker share: the responder, the thread pool, the
    ``Date`` header (renewed every second, when idle connections are also closed)."""

    def __init__(self, responder: OcspResponder, executor: ThreadPoolExecutor) -> None:
        self.responder = responder
        self.executor = executor
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self.stopping = False
        self.all_closed = asyncio.Event()
        self.date = b""
        self._ticker: asyncio.TimerHandle | None = None
        self._tick()

    def _tick(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"
        now = time.monotonic()
        for connection in [c for c in self.connections if c.idle_for(now) > IDLE_TIMEOUT_SECONDS]:
            connection.expire()
        self._ticker = self.loop.call_later(1.0, self._tick)

    def cached(self, der: bytes) -> bytes | None:
        try:
            return self.responder.cached(der)
        except Exception:
            logger.exception("OCSP answer from memory failed; answered internalError")
            return INTERNAL_ERROR

    async def drain(self) -> None:
        """Read no more requests, give those read :data:`STOP_SECONDS` to be answered, then
        close every connection."""
        self.stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        for connection in list(self.connections):
            connection.shut()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_closed.wait(), STOP_SECONDS)
        for connection in list(self.connections):
            connection.abort()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests (httptools callbacks below), queues them and
    answers them in order."""

    _transport: asyncio.Transport

    def __init__(self, service: _Service) -> None:
        self._service = service
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[_Request] = deque()
        self._busy = False  # an answer is being made in the thread pool
        self._writable = True  # the transport's buffer is below its high-water mark
        self._paused = False  # reading is paused
        self._closing = False  # nothing more is read; close once the queue is answered
        self._last_answer = time.monotonic()
        # The request being read.
        self._url = b""
        self._content_type = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._headers = 0
        self._head_size = 0  # of the URL and headers parsed
        # Bytes received since the last complete head (counted by the chunk): httptools keeps
        # a header until it ends, so an endless one is refused by this count.
        self._head_received = 0
        self._in_body = False
        self._refusal = 400

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        service = self._service
        if service.stopping or len(service.connections) >= MAX_CONNECTIONS:
            transport.close()
            return
        service.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        service = self._service
        service.connections.discard(self)
        if service.stopping and not service.connections:
            service.all_closed.set()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # after Connection: close, a refused request, EOF or the stop
        if not self._in_body:
            self._head_received += len(data)
        try:
            self._parser.feed_data(data)
            if self._head_received > MAX_HEAD_BYTES:
                self._refuse(431)
        except httptools.HttpParserUpgrade:
            self._closing = True  # no protocol switch here: answer what came, then close
        except httptools.HttpParserError:
            self._refuse(self._refusal)
        self._advance()

    def eof_received(self) -> bool:
        # The client may half-close after its last request: answer it, then close.
        self.shut()
        return True

    def pause_writing(self) -> None:
        self._writable = False
        self._flow()

    def resume_writing(self) -> None:
        self._writable = True
        self._advance()

    def idle_for(self, now: float) -> float:
        """Seconds since the last answer (or the connection), unless one is being made."""
        return 0.0 if self._busy else now - self._last_answer

    def expire(self) -> None:
        """Close an idle connection: at once if its client does not even take its answers."""
        if self._writable:
            self.shut()
        else:
            self._transport.abort()

    def shut(self) -> None:
        """Read no more requests; close once those already read are answered."""
        self._closing = True
        self._advance()

    def abort(self) -> None:
        self._transport.abort()

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._content_type, self._body = b"", b"", []
        self._body_size = self._headers = self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url  # may come in pieces
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._count_head(len(name) + len(value))
        if name.lower() == b"content-type":
            self._content_type = value

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD_BYTES or self._headers > MAX_HEADERS:
            self._refusal = 431
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_body, self._head_received = True, 0

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_REQUEST_BYTES:
            self._refusal = 413
            raise _Refused
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        if not keep_alive:
            self._closing = True
        request = functools.partial(
            _Request, keep_alive=keep_alive, http_10=parser.get_http_version() == "1.0"
        )
        try:
            path = httptools.parse_url(self._url).path or b""
        except httptools.HttpParserInvalidURLError:
            path = b""
        allowed = b"GET" if path.startswith(_OCSP_PREFIX) else _METHODS.get(path)
        if allowed is None:
            self._queue.append(request(status=404))
        elif parser.get_method() != allowed:
            self._queue.append(request(status=405, headers=b"allow: %s\r\n" % allowed))
        elif path == b"/healthz":
            self._queue.append(request(headers=_TEXT_HEADERS, body=b"ok"))
        elif path == b"/ocsp":
            content_type = self._content_type.split(b";")[0].strip().lower()
            ocsp_request = content_type == OCSP_REQUEST.encode()
            self._queue.append(request(der=b"".join(self._body) if ocsp_request else b""))
        else:
            der = decode_get_request(path[len(_OCSP_PREFIX) :].decode("latin-1"))
            self._queue.append(request(der=der))

    # -- answering ------------------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Answer ``status`` after the requests already read, then close."""
        if not self._closing:
            self._queue.append(_Request(keep_alive=False, http_10=False, status=status))
            self._closing = True

    def _advance(self) -> None:
        """Answer queued requests in order until one needs the thread pool; close when done."""
        if self._transport.is_closing():
            return
        while self._queue and not self._busy and self._writable:
            request = self._queue.popleft()
            if request.der is None:
                self._write(request, request.status, request.headers, request.body)
                continue
            answer = self._service.cached(request.der) if request.der else MALFORMED
            if answer is not None:
                self._write(request, *_ocsp_answer(answer))
                continue
            self._busy = True
            service = self._service
            future = service.loop.run_in_executor(
                service.executor, service.responder.answer, request.der
            )
            future.add_done_callback(functools.partial(self._answered, request))
        if self._closing and not self._queue and not self._busy:
            self._transport.close()
        else:
            self._flow()

    def _answered(self, request: _Request, future: asyncio.Future[bytes]) -> None:
        self._busy = False
        if future.cancelled():
            return
        try:
            answer = future.result()
        except Exception:
            logger.exception("OCSP answer failed; answered internalError")
            answer = INTERNAL_ERROR
        if not self._transport.is_closing():  # unless the client left meanwhile
            self._write(request, *_ocsp_answer(answer))
            self._advance()

    def _write(self, request: _Request, status: int, headers: bytes, body: bytes) -> None:
        if not request.keep_alive or (self._closing and not self._queue):
            connection = b"connection: close\r\n"
        elif request.http_10:
            connection = b"connection: keep-alive\r\n"
        else:
            connection = b""
        self._transport.write(
            b"".join(
                (
                    _STATUS_LINES[status],
                    self._service.date,
                    headers,
                    b"content-length: %d\r\n" % len(body),
                    connection,
                    b"\r\n",
                    body,
                )
            )
        )
        self._last_answer = time.monotonic()

    def _flow(self) -> None:
        """Read while the client takes its answers and few requests wait."""
        pause = not self._writable or len(self._queue) >= MAX_PIPELINED
        if pause != self._paused and not self._transport.is_closing():
            self._paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()


async def serve(
    sock: socket.socket, responder: OcspResponder, *, threads: int, stop: asyncio.Event
) -> None:
    """Serve OCSP on ``sock`` (bound; listened on here) until ``stop`` is set, then drain."""
    executor = ThreadPoolExecutor(threads, thread_name_prefix="ocsp")
    try:
        service = _Service(responder, executor)
        listener = await service.loop.create_server(
            lambda: _Connection(service), sock=sock, backlog=BACKLOG
        )
        try:
            await stop.wait()
        finally:
            listener.close()
            await service.drain()
    finally:
        # What is still running belongs to connections already closed: nobody waits for it.
        executor.shutdown(wait=False, cancel_futures=True)


def ocsp_worker(sock: socket.socket) -> None:
    """A worker of :func:`onecard.api.server.run`: serves on ``sock`` until SIGTERM or
    SIGINT, on the database and master key the settings name (prepared beforehand)."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        runtime = build_runtime(settings)
    except Exception:
        logger.exception("the OCSP responder cannot start")
        raise SystemExit(STARTUP_FAILURE) from None  # the supervisor stops rather than retries
    # A thread answers one request at a time with at most one database connection.
    threads = settings.db_pool_size
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve_until_signalled(sock, runtime.ocsp, threads))
    finally:
        runtime.close()


async def _serve_until_signalled(
    sock: socket.socket, responder: OcspResponder, threads: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = sock.getsockname()[:2]
    logger.info("OCSP responder serving on %s:%s (%s)", host, port, type(loop).__module__)
    await serve(sock, responder, threads=threads, stop=stop)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
