"""No personal number in plain text: not in the database, the logs, or any API response.

A person is registered, searched for, updated and refused (duplicate, invalid) over HTTP with
every logger at DEBUG (SQLAlchemy's statement log included); then the database itself is
scanned: the SQLite file and its WAL byte for byte, or a ``pg_dump`` of the test schema.
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from onecard.api.main import create_app
from onecard.api.runtime import build_runtime
from onecard.core.audit import Actor
from onecard.core.settings import Settings
from tests.factories import identity_number, phone
from tests.oidc_flow import sign_in


@pytest.fixture
def isolated(fresh_db, master_key, tmp_path):
    database = fresh_db()
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        database_url=database.url,
        master_key=SecretStr(base64.urlsafe_b64encode(master_key).decode()),
        password_hash_memory_kib=1024,
        public_url="http://testserver",
        password_hash_time_cost=1,
    )
    runtime = build_runtime(settings, database=database)
    with database.session() as session:
        runtime.keyring.ensure_keys(session, Actor.system())
    return runtime


def _database_bytes(runtime) -> bytes:
    url = make_url(runtime.database.url)
    if url.get_backend_name() == "sqlite":
        runtime.database.dispose()  # the last connection to close checkpoints the WAL
        data = b""
        for suffix in ("", "-wal", "-shm"):
            try:
                with open(f"{url.database}{suffix}", "rb") as handle:
                    data += handle.read()
            except FileNotFoundError:
                pass
        return data
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    schema = url.query["options"].split("=", 1)[1]
    return subprocess.run(
        [
            pg_dump,
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "-n",
            schema,
            "--data-only",
            url.database or "test",
        ],
        check=True,
        capture_output=True,
    ).stdout


def test_registered_number_appears_nowhere_in_plain_text(isolated, staff, caplog) -> None:
    number, other, mobile = identity_number(), identity_number(), phone()
    invalid = number[:-1] + ("0" if number[-1] != "0" else "1")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    responses = []
    with TestClient(create_app(isolated)) as client:
        responses.append(
            client.post(
                "/v1/persons/register",
                json={
                    "name": "王五",
                    "identity_number": number,
                    "password": "a long passphrase",
                    "phone": mobile,
                },
            )
        )
        responses.append(
            client.post(
                "/v1/persons/register",
                json={
                    "name": "王五",
                    "identity_number": number,
                    "password": "a long passphrase",
                },
            )
        )
        responses.append(
            client.post(
                "/v1/persons/register",
                json={
                    "name": "王五",
                    "identity_number": invalid,
                    "password": "a long passphrase",
                },
            )
        )
        responses.append(
            client.post(
                "/v1/persons/register",
                json={
                    "name": "王五",
                    "identity_number": other,
                    "password": "short",
                },
            )
        )
        _, signed_in = sign_in(client, client.app.state.runtime, number, "a long passphrase")
        token = signed_in.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        responses.append(client.get("/v1/me", headers=auth))
        responses.append(client.get("/v1/me/audit-events", headers=auth))
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    assert [r.status_code for r in responses] == [201, 409, 422, 422, 200, 200], responses[-1].text
    for response in responses:
        assert number not in response.text
        assert invalid not in response.text
        assert other not in response.text
    assert "onecard.access" in {record.name for record in caplog.records}
    assert any("INSERT INTO person" in r.getMessage() for r in caplog.records)
    for secret in (number, invalid, other, mobile):
        assert secret not in caplog.text
    stored = _database_bytes(isolated)
    assert b"person" in stored  # the scan saw the real data
    for secret in (number, invalid, other):
        assert secret.encode() not in stored
        assert secret.lower().encode() not in stored
