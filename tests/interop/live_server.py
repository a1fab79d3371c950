"""onecard served by uvicorn on a free 127.0.0.1 port, in a thread of the test process, with a
database of its own: what the interop tests point independent clients (and a browser) at."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from pydantic import SecretStr

from onecard.api.main import create_app
from onecard.api.runtime import Runtime
from onecard.core.settings import Settings
from tests.factories import fresh_runtime

if TYPE_CHECKING:
    from tests.conftest import DatabaseFactory


@dataclass(frozen=True)
class LiveServer:
    base: str  # http://127.0.0.1:<port>, also the issuer
    runtime: Runtime  # the server's own, for setting up data beside it
    workdir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_onecard(
    database_factory: DatabaseFactory,
    master_key: bytes,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    prepare: Callable[[Runtime], None] | None = None,
) -> Iterator[LiveServer]:
    """The server, started once ``prepare`` (if any) has set up its runtime; stopped, and its
    connections given back, at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp(name)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=workdir / "var",
        database_url="",
        master_key=SecretStr(base64.urlsafe_b64encode(master_key).decode()),
        public_url=base,
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
    )
    database = database_factory()
    runtime = fresh_runtime(settings.model_copy(update={"database_url": database.url}), database)
    if prepare is not None:
        prepare(runtime)
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start within 10 s")
        yield LiveServer(base, runtime, workdir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()  # give the connections back: PostgreSQL allows only so many
