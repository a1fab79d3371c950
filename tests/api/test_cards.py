"""The one-card over HTTP: a citizen gets a card and a live QR code, an administrator registers
a terminal, the terminal verifies the code once with client credentials and learns what its
purpose allows; the trust list with its ETag; refusals as problem documents."""

from __future__ import annotations

import pytest

from tests import factories
from tests.api.test_clients_admin import client_credentials
from tests.factories import expect_problem


@pytest.fixture
def citizen(runtime, client):  # type: ignore[no-untyped-def]
    person, headers, _ = factories.signed_in_citizen(runtime, level=2)
    assert client.post("/v1/cards/me", headers=headers).status_code == 201
    return person, headers


def _terminal(client, runtime, purpose: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    _, admin = factories.staff_member(runtime, "admin")
    made = client.post(
        "/v1/admin/terminals",
        json={
            "name": "Gate 3",
            "location": "Line 1, People's Square",
            "organisation": "City Metro",
            "purpose": purpose,
        },
        headers=admin,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    token = client_credentials(client, body["client_id"], body["client_secret"])
    assert token.status_code == 200, token.text
    return factories.bearer(token.json()["access_token"])


def test_a_citizen_gets_a_card_and_a_live_code(client, citizen) -> None:  # type: ignore[no-untyped-def]
    _, headers = citizen
    card = client.get("/v1/cards/me", headers=headers).json()
    assert card["status"] == "active"
    assert "reference" not in card
    code = client.get("/v1/cards/me/qr", params={"purpose": "transit"}, headers=headers)
    assert code.status_code == 200
    assert code.headers["cache-control"] == "no-store"
    assert code.json()["token"].startswith("OC1:")
    png = client.get("/v1/cards/me/qr.png", headers=headers)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = client.get("/v1/cards/me/qr.svg", headers=headers)
    assert svg.headers["content-type"].startswith("image/svg+xml")


def test_a_terminal_verifies_a_code_once_and_learns_its_purpose_only(  # type: ignore[no-untyped-def]
    client, runtime, citizen
) -> None:
    person, headers = citizen
    terminal = _terminal(client, runtime, "social_security")
    token = client.get(
        "/v1/cards/me/qr", params={"purpose": "social_security"}, headers=headers
    ).json()["token"]
    verified = client.post("/v1/cards/verify", json={"token": token}, headers=terminal)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["name"] == person.name
    assert body["identity_number_masked"] == person.identity_number_masked
    assert body["bank_cards_masked"] is None
    expect_problem(
        client.post("/v1/cards/verify", json={"token": token}, headers=terminal), 422, "replayed"
    )
    seen = client.get("/v1/cards/me/verifications", headers=headers).json()["items"]
    assert [(v["terminal"], v["purpose"]) for v in seen] == [("Gate 3", "social_security")]


def test_verification_refusals_are_problems_and_record_nothing(  # type: ignore[no-untyped-def]
    client, runtime, citizen
) -> None:
    _, headers = citizen
    terminal = _terminal(client, runtime, "transit")
    for text, code in (
        ("not a code", "bad_prefix"),
        ("OC1:!!!", "bad_encoding"),
        ("OC1:" + "A" * 1100, "oversize"),
    ):
        expect_problem(
            client.post("/v1/cards/verify", json={"token": text}, headers=terminal), 422, code
        )
    bank_code = client.get("/v1/cards/me/qr", params={"purpose": "bank"}, headers=headers)
    expect_problem(
        client.post(
            "/v1/cards/verify", json={"token": bank_code.json()["token"]}, headers=terminal
        ),
        422,
        "wrong_purpose",
    )
    assert client.get("/v1/cards/me/verifications", headers=headers).json()["items"] == []


def test_only_terminals_verify(client, citizen) -> None:  # type: ignore[no-untyped-def]
    _, headers = citizen
    refused = client.post("/v1/cards/verify", json={"token": "OC1:x"}, headers=headers)
    assert refused.status_code == 403


def test_the_trust_list_changes_when_a_card_is_reported_lost(client, citizen) -> None:  # type: ignore[no-untyped-def]
    _, headers = citizen
    first = client.get("/v1/cards/trust-list")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/jwt")
    etag = first.headers["etag"]
    again = client.get("/v1/cards/trust-list", headers={"If-None-Match": etag})
    assert again.status_code == 304
    lost = client.post(
        "/v1/cards/me/report-lost", json={"reason": "left on the bus"}, headers=headers
    )
    assert lost.json()["status"] == "lost"
    changed = client.get("/v1/cards/trust-list", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    expect_problem(client.get("/v1/cards/me/qr", headers=headers), 409, "card_not_active")


def test_a_bank_card_needs_level_two(client, runtime) -> None:  # type: ignore[no-untyped-def]
    _, headers, _ = factories.signed_in_citizen(runtime, level=1)
    refused = client.post(
        "/v1/cards/me/links", json={"kind": "bank", "number": "4111111111111111"}, headers=headers
    )
    expect_problem(refused, 403, "assurance_level_too_low")


def test_a_card_officer_suspends_and_resumes_a_card_with_a_reason(client, runtime, citizen):  # type: ignore[no-untyped-def]
    person, headers = citizen
    _, officer = factories.staff_member(runtime, "card_officer")
    card = client.get(f"/v1/persons/{person.id}/card", headers=officer).json()
    expect_problem(
        client.post(f"/v1/cards/{card['id']}/suspend", json={}, headers=officer),
        422,
        "reason_required",
    )
    suspended = client.post(
        f"/v1/cards/{card['id']}/suspend", json={"reason": "fraud check"}, headers=officer
    )
    assert suspended.json()["status"] == "suspended"
    expect_problem(client.get("/v1/cards/me/qr", headers=headers), 409, "card_not_active")
    resumed = client.post(f"/v1/cards/{card['id']}/resume", json={}, headers=officer)
    assert resumed.json()["status"] == "active"
    # Citizens do not manage other people's cards.
    refused = client.post(f"/v1/cards/{card['id']}/suspend", json={"reason": "x"}, headers=headers)
    assert refused.status_code == 403
