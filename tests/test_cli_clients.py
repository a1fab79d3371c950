"""``onecard client``: registering, listing, showing, rotating and disabling clients from the
command line, on a fresh database, with the results checked at the real token endpoint of an
app on the same database.

The app caches clients for up to 5 s (``ClientCache``); the CLI is another process, so after a
CLI change the tests call ``runtime.provider.clients.clear()`` to stand in for that expiry.
"""

from __future__ import annotations

import json

import pytest

from onecard.core.settings import get_settings


@pytest.fixture
def server(cli):  # type: ignore[no-untyped-def]
    """The HTTP app on the CLI's database, and its runtime."""
    from fastapi.testclient import TestClient

    from onecard.api.main import create_app
    from onecard.api.runtime import build_runtime

    _, database = cli
    runtime = build_runtime(get_settings(), database=database)
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def create_terminal(run, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    output = run(
        "client",
        "create",
        "--name",
        "核验终端",
        "--grant",
        "client_credentials",
        "--scope",
        "card:verify",
        "--json",
        *extra,
    )
    return json.loads(output)


def client_credentials(client, client_id: str, secret: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "card:verify"},
        auth=(client_id, secret),
    )


def test_client_create_json_prints_the_id_and_the_secret(cli) -> None:
    run, _ = cli
    output = run(
        "client",
        "create",
        "--name",
        "市政服务门户",
        "--redirect-uri",
        "https://portal.example.gov.cn/callback",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--json",
    )

    created = json.loads(output)  # nothing but the JSON document on stdout
    assert created["client_id"].startswith("oc_")
    assert isinstance(created["client_secret"], str)
    assert len(created["client_secret"]) >= 40
    assert created["redirect_uris"] == ["https://portal.example.gov.cn/callback"]
    assert created["scopes"] == ["openid", "profile"]
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert created["status"] == "active"


def test_client_create_refuses_an_invalid_registration_without_a_traceback(cli) -> None:
    run, _ = cli
    output = run(
        "client",
        "create",
        "--name",
        "坏门户",
        "--redirect-uri",
        "http://portal.example.gov.cn/callback",
        code=2,
    )
    assert "invalid_uri" in output
    assert "Traceback" not in output


def test_client_list_and_show_never_print_the_secret(cli) -> None:
    run, _ = cli
    first = create_terminal(run)
    second = create_terminal(run)

    listed = run("client", "list")
    shown = run("client", "show", first["client_id"])

    for created in (first, second):
        line = next(row for row in listed.splitlines() if created["client_id"] in row)
        assert "active" in line
        assert "confidential" in line
        assert created["client_secret"] not in listed
    details = json.loads(shown)
    assert details["client_id"] == first["client_id"]
    assert details["name"] == "核验终端"
    assert "client_secret" not in details
    assert first["client_secret"] not in shown


def test_client_show_of_an_unknown_client_says_so(cli) -> None:
    run, _ = cli
    assert "client_not_found" in run("client", "show", "oc_nosuchclient", code=2)


def test_the_created_secret_works_at_the_token_endpoint(cli, server) -> None:
    run, _ = cli
    client, _ = server
    created = create_terminal(run)

    response = client_credentials(client, created["client_id"], created["client_secret"])

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "card:verify"


def test_rotate_secret_prints_a_new_secret_that_works_and_retires_the_old(cli, server) -> None:
    run, _ = cli
    client, runtime = server
    created = create_terminal(run)
    client_id, old = created["client_id"], created["client_secret"]
    assert client_credentials(client, client_id, old).status_code == 200

    new = run("client", "rotate-secret", client_id).strip()
    runtime.provider.clients.clear()  # stands in for the app's 5-second cache expiring

    assert new
    assert new != old
    assert client_credentials(client, client_id, new).status_code == 200
    refused = client_credentials(client, client_id, old)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_disable_stops_the_client_at_the_token_endpoint(cli, server) -> None:
    run, _ = cli
    client, runtime = server
    created = create_terminal(run)
    client_id, secret = created["client_id"], created["client_secret"]
    assert client_credentials(client, client_id, secret).status_code == 200

    output = run("client", "disable", client_id)
    runtime.provider.clients.clear()  # stands in for the app's 5-second cache expiring

    assert f"disabled {client_id}" in output
    line = next(row for row in run("client", "list").splitlines() if client_id in row)
    assert "disabled" in line
    assert json.loads(run("client", "show", client_id))["status"] == "disabled"
    refused = client_credentials(client, client_id, secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
