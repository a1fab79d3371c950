"""The multi-worker server: every worker gets connections, and all stop together."""

from __future__ import annotations

import functools
import http.client
import multiprocessing
import os
import signal
import socket
import time

import pytest

from onecard.api import server
from tests.interop.live_server import free_port


async def pid_app(scope, receive, send) -> None:  # a minimal ASGI application
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


def _serve(port: int) -> None:
    worker = functools.partial(
        server.uvicorn_worker, app="tests.api.test_server:pid_app", options={"log_level": "error"}
    )
    server.run(worker, host="127.0.0.1", port=port, workers=2)


def _ready(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _pid(connection: http.client.HTTPConnection) -> str:
    connection.request("GET", "/")
    return connection.getresponse().read().decode()


@pytest.mark.slow
def test_connections_spread_over_workers_and_all_stop_on_sigterm() -> None:
    port = free_port()
    supervisor = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,))
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while not _ready(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # both workers listening
        # A burst of keep-alive connections, as a load balancer's pool opens them: with one
        # shared socket the first worker to wake accepts them all.
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(32)]
        for connection in connections:
            connection.connect()
        served = [_pid(connection) for connection in connections]
        for connection in connections:
            connection.close()
        pids = set(served)
        assert len(pids) == 2
        assert min(served.count(pid) for pid in pids) >= 4, served
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))
    finally:
        os.kill(supervisor.pid, signal.SIGTERM)
        supervisor.join(30)
    assert supervisor.exitcode == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_a_lone_server_does_not_share_its_port() -> None:
    port = free_port()
    with server.bind("127.0.0.1", port, share=False) as lone:
        lone.listen()
        with pytest.raises(OSError, match="in use"):
            server.bind("127.0.0.1", port)
