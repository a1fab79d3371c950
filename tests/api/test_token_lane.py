"""The token endpoint's fast lane answers exactly what the router would, and hands on the rest."""

from __future__ import annotations

import base64

import jwt
from prometheus_client import REGISTRY

from tests.oidc_flow import make_portal

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def terminal(runtime):  # type: ignore[no-untyped-def]
    return make_portal(
        runtime,
        grant_types=("client_credentials",),
        redirect_uris=(),
        post_logout_redirect_uris=(),
        scopes=("card:verify",),
    )


def token_requests() -> float:
    value = REGISTRY.get_sample_value(
        "onecard_http_requests_total",
        {"method": "POST", "route": "/oauth2/token", "status": "200"},
    )
    return value or 0.0


def test_cold_and_warm_caches_give_the_same_kind_of_answer(client, runtime) -> None:
    portal = terminal(runtime)
    runtime.provider.clients.clear()  # cold: the router answers from the database
    cold = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=portal.basic()
    )
    warm = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=portal.basic()
    )
    for response in (cold, warm):
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


def test_answers_of_the_lane_are_counted_under_the_route(client, runtime) -> None:
    portal = terminal(runtime)
    client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=portal.basic())
    before = token_requests()
    response = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=portal.basic()
    )
    assert response.status_code == 200
    assert token_requests() == before + 1


def test_a_wrong_secret_is_refused_the_same_way_on_both_paths(client, runtime) -> None:
    portal = terminal(runtime)
    wrong = {
        "Authorization": "Basic " + base64.b64encode(f"{portal.client_id}:nope".encode()).decode()
    }
    answers = []
    for clear in (True, False):
        if clear:
            runtime.provider.clients.clear()
        response = client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, headers=wrong
        )
        answers.append(
            (response.status_code, response.json()["error"], response.headers["WWW-Authenticate"])
        )
    assert answers[0] == answers[1] == (401, "invalid_client", 'Basic realm="onecard"')


def test_requests_the_lane_does_not_take_are_answered_by_the_router(client, runtime) -> None:
    portal = terminal(runtime)
    repeated = client.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={**FORM, **portal.basic()},
    )
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"
    huge = client.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials&scope=" + b"x" * 20_000,
        headers={**FORM, **portal.basic()},
    )
    assert huge.status_code == 400
    assert huge.json()["error"] == "invalid_scope"
    not_a_form = client.post(
        "/oauth2/token", json={"grant_type": "client_credentials"}, headers=portal.basic()
    )
    assert not_a_form.status_code == 400
    assert not_a_form.json()["error"] == "invalid_request"
