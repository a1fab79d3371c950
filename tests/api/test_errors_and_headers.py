"""Error responses (RFC 9457 problem documents) and the security headers on every response."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import expect_problem, identity_number

PROBLEM_FIELDS = {"type", "title", "status", "code"}


def assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    # Served over plain http in tests: no HSTS.
    assert "Strict-Transport-Security" not in response.headers


def assert_problem_document(response) -> dict:  # type: ignore[no-untyped-def]
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == response.status_code
    assert isinstance(body["code"], str)
    assert body["code"]
    assert "Traceback" not in response.text
    return body


def test_security_headers_on_a_success(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert_security_headers(response)


def test_security_headers_on_the_openapi_document(client) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert_security_headers(response)


def test_hsts_when_served_over_https(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as client:
        ok = client.get("/healthz")
        missing = client.get("/no/such/route")

    for response in (ok, missing):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert_security_headers_but_hsts(response)


def assert_security_headers_but_hsts(response) -> None:  # type: ignore[no-untyped-def]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("get", "/v1/me", {}, 401, "token_missing"),
        ("get", "/v1/me", {"headers": {"Authorization": "Bearer oct_nope"}}, 401, "invalid_token"),
        ("delete", "/v1/persons/register", {}, 405, "method_not_allowed"),
        ("post", "/v1/persons/register", {"content": b"{not json"}, 422, "request_invalid"),
        ("post", "/v1/persons/register", {"json": {"name": "x"}}, 422, "request_invalid"),
        ("post", "/v1/persons/register", {"json": ["a", "list"]}, 422, "request_invalid"),
        (
            "post",
            "/v1/persons/register",
            {"json": {"name": "周九", "identity_number": "1" * 18, "password": "p" * 12}},
            422,
            "identity_number_check_character",
        ),
    ],
    ids=[
        "unknown-route",
        "no-token",
        "bad-token",
        "method",
        "malformed-json",
        "missing-field",
        "wrong-shape",
        "domain-422",
    ],
)
def test_every_error_is_a_problem_document_with_security_headers(
    client, method, path, kwargs, status, code
) -> None:
    response = getattr(client, method)(path, **kwargs)

    expect_problem(response, status, code)
    assert_problem_document(response)
    assert_security_headers(response)


def test_405_names_the_allowed_methods(client) -> None:
    response = client.put("/v1/persons/register", json={})

    expect_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_403_and_409_are_problem_documents(client, staff, citizen) -> None:
    person, citizen_headers, _ = citizen()
    _, registrar = staff("registrar")

    forbidden = client.get("/v1/persons", headers=citizen_headers)
    conflict = client.post(
        f"/v1/persons/{person.id}/reinstate", json={"reason": "x"}, headers=registrar
    )

    for response, status in ((forbidden, 403), (conflict, 409)):
        assert response.status_code == status
        assert_problem_document(response)
        assert_security_headers(response)


def test_malformed_path_parameter_is_422_not_404_or_500(client, staff) -> None:
    _, registrar = staff("registrar")

    response = client.get("/v1/persons/12345", headers=registrar)

    expect_problem(response, 422, "request_invalid")


def test_validation_errors_name_the_field_without_its_value(client) -> None:
    number = identity_number()
    response = client.post(
        "/v1/persons/register",
        json={"name": "x", "identity_number": number, "password": 12345678901, "extra": number},
    )

    body = expect_problem(response, 422, "request_invalid")
    locations = {error["location"] for error in body["errors"]}
    assert {"body.password", "body.extra"} <= locations
    assert number not in response.text
    assert "12345678901" not in response.text


def test_401_carries_www_authenticate_bearer(client) -> None:
    response = client.get("/v1/me/enterprises")

    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _exploding_client(runtime, secret: str):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from onecard.api.main import create_app

    app = create_app(runtime)

    def explode() -> None:
        raise RuntimeError(secret)

    app.add_api_route("/boom", explode)
    return TestClient(app, raise_server_exceptions=False)


def test_unexpected_error_is_a_500_problem_without_details(runtime) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    with _exploding_client(runtime, secret) as client:
        response = client.get("/boom")

    body = expect_problem(response, 500, "internal_error")
    assert_problem_document(response)
    assert secret not in response.text
    assert body["reference"]


def test_unexpected_error_still_carries_the_security_headers(runtime) -> None:
    with _exploding_client(runtime, "boom") as client:
        response = client.get("/boom")

    assert response.status_code == 500
    assert_security_headers(response)


def test_a_client_hanging_up_is_not_a_server_error(app, caplog) -> None:
    """A request body cut off by the client is counted as 499 and logged as nothing worse."""
    import asyncio

    from prometheus_client import REGISTRY

    def count(status: str) -> float:
        value = REGISTRY.get_sample_value(
            "onecard_http_requests_total",
            {"method": "POST", "route": "/oauth2/token", "status": status},
        )
        return value or 0.0

    before = count("499")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth2/token",
        "raw_path": b"/oauth2/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"host", b"testserver"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))

    assert not [m for m in sent if m["type"] == "http.response.start"]
    assert count("499") == before + 1
    assert "unhandled error" not in caplog.text
