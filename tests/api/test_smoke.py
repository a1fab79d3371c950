"""End-to-end smoke test of the HTTP surface: health, registration, sign-in, me."""

from __future__ import annotations

from tests.factories import identity_number
from tests.oidc_flow import sign_in


def test_readyz_reports_database_and_keys(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "keys": "ok"}


def test_self_registration_then_sign_in_then_me(client, runtime) -> None:
    number = identity_number()
    registered = client.post(
        "/v1/persons/register",
        json={"name": "李四", "identity_number": number, "password": "a long passphrase"},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["assurance_level"] == 1
    assert body["identity_number_masked"] == number[:4] + "*" * 10 + number[-4:]
    assert number not in registered.text

    _, signed_in = sign_in(client, runtime, number, "a long passphrase")
    assert signed_in is not None
    assert signed_in.status_code == 200
    token = signed_in.json()["access_token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]
