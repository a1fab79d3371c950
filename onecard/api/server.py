"""Serving on several worker processes that share one port evenly.

uvicorn's own multi-worker mode hands every worker the same listening socket. Whichever worker
wakes first accepts everything queued (asyncio accepts up to the backlog in one go), so a burst
of new keep-alive connections — a load balancer's pool, a fleet of terminals reconnecting —
lands on one worker while the others idle. Measured here: 32 connections, two workers, one at
100 % of a core and the other at 0 %.

So where the system has ``SO_REUSEPORT`` (Linux, the BSDs) each worker binds its own listening
socket to the port and the kernel spreads new connections across them, as nginx's
``reuseport`` and gunicorn's ``--reuse-port`` do. The supervisor binds the port first, without
listening (a socket that does not listen is given no connections), so a port already in use
fails at once; it restarts a worker that dies, stops them all on SIGINT or SIGTERM, and its
workers get SIGTERM if it dies itself. Elsewhere the workers share the supervisor's socket.

A worker is a picklable callable (a module-level function, or a ``functools.partial`` of one)
that takes the listening socket and serves on it until SIGTERM: :func:`uvicorn_worker` for the
application, :mod:`onecard.api.ocsp_server` for the dedicated OCSP responder.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("onecard.server")

Worker = Callable[[socket.socket], None]
_REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
_PR_SET_PDEATHSIG = 1
_STOP_SECONDS = 30.0  # graceful shutdown finishes the requests in flight
_RESTART_PAUSE_SECONDS = 1.0


def run(worker: Worker, *, host: str, port: int, workers: int) -> None:
    """Serve with ``workers`` processes on ``host:port`` (one: in this process)."""
    reservation = bind(host, port, share=workers > 1)
    try:
        if workers == 1:
            worker(reservation)
        else:
            _supervise(worker, host, port, workers, None if _REUSE_PORT else reservation)
    finally:
        reservation.close()


def bind(host: str, port: int, *, share: bool = True) -> socket.socket:
    """A socket bound to ``host:port``; with ``share``, one the workers' own sockets can join
    (another process of the same user could too: a lone server does not share)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share and _REUSE_PORT:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_worker(sock: socket.socket, app: str, options: dict[str, Any]) -> None:
    """A worker serving the ASGI application ``app`` (an import string) with uvicorn."""
    host, port = sock.getsockname()[:2]
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options)).run(sockets=[sock])


def _start_worker(worker: Worker, host: str, port: int, shared: socket.socket | None) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    worker(shared if shared is not None else bind(host, port))


def _supervise(
    worker: Worker, host: str, port: int, workers: int, shared: socket.socket | None
) -> None:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> SpawnProcess:
        process = context.Process(
            target=_start_worker, args=(worker, host, port, shared), daemon=True
        )
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    raise SystemExit(STARTUP_FAILURE)  # another would fail the same way
                logger.warning(
                    "worker %s exited (%s); starting another", process.pid, process.exitcode
                )
                time.sleep(_RESTART_PAUSE_SECONDS)
                processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + _STOP_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
