"""Administrators manage clients over ``/v1/admin/clients``: who may, the secret shown once,
pagination, and changes (redirect URIs, secret rotation, disabling) taking effect at the
OpenID Connect endpoints; invalid registrations are refused with a stable code.

The provider caches each client for up to 5 s per process (``ClientCache``, DESIGN.md §2), so
a change reaches the protocol endpoints "within seconds". These tests do not sleep through
that window: after a change they call ``runtime.provider.clients.clear()``, standing in for
the cache entry expiring.
"""

from __future__ import annotations

from typing import Any

import pytest

from onecard.core.audit import Actor
from onecard.identity.credentials import set_password
from tests.factories import expect_problem, identity_number, person
from tests.oidc_flow import REDIRECT_URI, Portal, authorize, exchange

PASSWORD = "correct horse battery"
CLIENTS = "/v1/admin/clients"
NEW_REDIRECT_URI = "https://portal.example.gov.cn/new-callback"


def portal_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "市政服务门户",
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": ["https://portal.example.gov.cn/bye"],
        "scopes": ["openid", "profile"],
    }
    body.update(fields)
    return body


def terminal_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "核验终端",
        "grant_types": ["client_credentials"],
        "scopes": ["card:verify"],
    }
    body.update(fields)
    return body


@pytest.fixture
def admin(staff) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return staff("admin")[1]


def register(client, admin: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.post(CLIENTS, json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def login_of(runtime) -> str:  # type: ignore[no-untyped-def]
    """A level-1 citizen with a password; their login (the identity number)."""
    number = identity_number()
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, number=number)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
    return number


def client_credentials(client, client_id: str, secret: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "card:verify"},
        auth=(client_id, secret),
    )


def authorize_page(client, client_id: str, redirect_uri: str):  # type: ignore[no-untyped-def]
    return client.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
        },
        follow_redirects=False,
    )


# -- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["registrar", "auditor"])
def test_staff_without_the_admin_role_cannot_register_clients(client, staff, role) -> None:
    _, headers = staff(role)
    response = client.post(CLIENTS, json=portal_body(), headers=headers)
    assert response.status_code == 403
    assert client.get(CLIENTS, headers=headers).status_code == 403


def test_a_citizen_cannot_register_or_list_clients(client, citizen) -> None:
    _, headers, _ = citizen()
    assert client.post(CLIENTS, json=portal_body(), headers=headers).status_code == 403
    assert client.get(CLIENTS, headers=headers).status_code == 403


def test_registering_without_a_token_is_unauthenticated(client) -> None:
    response = client.post(CLIENTS, json=portal_body())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- the secret ---------------------------------------------------------------------------


def test_the_secret_is_returned_once_and_never_shown_again(client, admin) -> None:
    created = register(client, admin, terminal_body())
    secret = created["client_secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 40  # 256 bits, base64url

    shown = client.get(f"{CLIENTS}/{created['client_id']}", headers=admin)
    listed = client.get(CLIENTS, params={"limit": 200}, headers=admin)

    assert shown.status_code == 200
    assert "client_secret" not in shown.json()
    assert secret not in shown.text
    assert secret not in listed.text
    assert client_credentials(client, created["client_id"], secret).status_code == 200


def test_a_key_based_client_gets_no_secret(client, admin) -> None:
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "k1"}]}  # fmt: skip
    created = register(client, admin, terminal_body(auth_method="private_key_jwt", jwks=jwks))
    assert created["client_secret"] is None
    assert created["jwks"] == jwks


# -- listing ------------------------------------------------------------------------------


def test_the_client_list_is_paginated_without_gaps_or_repeats(client, admin) -> None:
    made = {register(client, admin, terminal_body(name=f"终端{n}"))["client_id"] for n in range(3)}

    first = client.get(CLIENTS, params={"limit": 2}, headers=admin).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    seen = [item["client_id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(CLIENTS, params={"limit": 200, "cursor": cursor}, headers=admin)
        assert page.status_code == 200, page.text
        seen += [item["client_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]

    assert len(seen) == len(set(seen))
    assert made <= set(seen)
    assert all("client_secret" not in item for item in first["items"])


def test_an_unknown_client_is_404(client, admin) -> None:
    expect_problem(client.get(f"{CLIENTS}/oc_nosuchclient", headers=admin), 404, "client_not_found")


# -- changes reach the protocol endpoints -------------------------------------------------


def test_patched_redirect_uris_replace_the_old_one_at_the_authorization_endpoint(
    client, runtime, admin
) -> None:
    created = register(client, admin, portal_body())
    client_id = created["client_id"]
    assert authorize_page(client, client_id, REDIRECT_URI).status_code == 200  # cached now

    patched = client.patch(
        f"{CLIENTS}/{client_id}", json={"redirect_uris": [NEW_REDIRECT_URI]}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["redirect_uris"] == [NEW_REDIRECT_URI]
    assert patched.json()["name"] == created["name"]  # absent fields keep their value
    runtime.provider.clients.clear()  # stands in for the 5-second cache entry expiring

    old = authorize_page(client, client_id, REDIRECT_URI)
    new = authorize_page(client, client_id, NEW_REDIRECT_URI)
    assert old.status_code == 400
    assert "location" not in old.headers
    assert old.headers["content-type"].startswith("text/html")
    assert new.status_code == 200
    assert 'action="/oauth2/authorize/login"' in new.text


def test_a_patch_breaking_the_rules_is_refused_and_changes_nothing(client, admin) -> None:
    created = register(client, admin, portal_body())
    url = f"{CLIENTS}/{created['client_id']}"

    response = client.patch(
        url, json={"redirect_uris": ["http://portal.example.gov.cn/cb"]}, headers=admin
    )

    expect_problem(response, 422, "invalid_uri")
    assert client.get(url, headers=admin).json()["redirect_uris"] == [REDIRECT_URI]


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "redirect_uris",
        "post_logout_redirect_uris",
        "scopes",
        "grant_types",
        "full_identity_number",
        "min_level",
        "subject_type",
        "id_token_alg",
    ],
)
def test_a_patch_nulling_a_required_field_is_refused_not_a_crash(client, admin, field) -> None:
    created = register(client, admin, portal_body())
    url = f"{CLIENTS}/{created['client_id']}"

    response = client.patch(url, json={field: None}, headers=admin)

    assert response.status_code == 422, response.text
    assert client.get(url, headers=admin).json()[field] == created[field]


def test_rotating_the_secret_retires_the_old_one(client, runtime, admin) -> None:
    created = register(client, admin, terminal_body())
    client_id, old = created["client_id"], created["client_secret"]
    assert client_credentials(client, client_id, old).status_code == 200

    rotated = client.post(f"{CLIENTS}/{client_id}/rotate-secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    runtime.provider.clients.clear()  # stands in for the 5-second cache entry expiring

    refused = client_credentials(client, client_id, old)
    assert new != old
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert client_credentials(client, client_id, new).status_code == 200


def test_a_disabled_client_is_refused_at_the_token_endpoint_and_its_tokens_stop_working(
    client, runtime, admin
) -> None:
    created = register(client, admin, portal_body())
    portal = Portal(created["client_id"], created["client_secret"])
    result = authorize(client, portal, login=login_of(runtime), password=PASSWORD)
    issued = exchange(client, portal, result.code).json()
    access = {"Authorization": f"Bearer {issued['access_token']}"}
    assert client.get("/oauth2/userinfo", headers=access).status_code == 200

    disabled = client.post(f"{CLIENTS}/{portal.client_id}/disable", headers=admin)
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    runtime.provider.clients.clear()  # stands in for the 5-second cache entry expiring

    refresh = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=portal.basic(),
    )
    assert refresh.status_code == 401
    assert refresh.json()["error"] == "invalid_client"
    assert client.get("/oauth2/userinfo", headers=access).status_code == 401
    assert authorize_page(client, portal.client_id, REDIRECT_URI).status_code == 400


def test_an_enabled_client_works_again(client, runtime, admin) -> None:
    created = register(client, admin, terminal_body())
    client_id, secret = created["client_id"], created["client_secret"]
    client.post(f"{CLIENTS}/{client_id}/disable", headers=admin)
    runtime.provider.clients.clear()
    assert client_credentials(client, client_id, secret).status_code == 401

    enabled = client.post(f"{CLIENTS}/{client_id}/enable", headers=admin)
    runtime.provider.clients.clear()

    assert enabled.json()["status"] == "active"
    assert client_credentials(client, client_id, secret).status_code == 200


# -- invalid registrations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"redirect_uris": ["http://portal.example.gov.cn/cb"]}, "invalid_uri"),
        ({"redirect_uris": ["https://portal.example.gov.cn/cb#done"]}, "invalid_uri"),
        ({"client_type": "public", "auth_method": "client_secret_basic"}, "invalid_auth"),
        ({"auth_method": "private_key_jwt"}, "jwks_required"),
        ({"scopes": ["openid", "everything"]}, "invalid_scope"),
        ({"redirect_uris": []}, "redirect_uri_required"),
    ],
    ids=[
        "http-redirect",
        "fragment",
        "public-with-secret",
        "key-auth-without-jwks",
        "unknown-scope",
        "code-without-redirect",
    ],
)
def test_invalid_registrations_are_refused_with_a_code(client, admin, fields, code) -> None:
    name = f"被拒绝的门户 {code}"
    response = client.post(CLIENTS, json=portal_body(name=name, **fields), headers=admin)

    expect_problem(response, 422, code)


def test_http_redirect_uris_are_allowed_for_localhost_only(client, admin) -> None:
    created = register(client, admin, portal_body(redirect_uris=["http://localhost:8080/cb"]))
    assert created["redirect_uris"] == ["http://localhost:8080/cb"]
