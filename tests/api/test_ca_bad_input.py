"""Bad input to the CA's endpoints gets a clear 4xx (OCSP: ``malformedRequest``), never a 500,
and never issues anything: random bytes to the OCSP responder (POST and GET), random and
mutated certificate requests and JSON bodies to issuance, random serials to look-ups."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ca import csr_factory
from tests.ca.conftest import counts

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
GOOD_DER = csr_factory.csr(encoding=serialization.Encoding.DER)


@pytest.fixture(scope="module")
def browser(app):  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def owner(runtime) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from tests.factories import signed_in_citizen

    return signed_in_citizen(runtime)[1]


@SETTINGS
@given(st.binary(max_size=600))
def test_random_ocsp_posts_are_malformed_requests(browser, data: bytes) -> None:
    response = browser.post(
        "/ocsp", content=data, headers={"Content-Type": "application/ocsp-request"}
    )
    assert response.status_code in (200, 400)
    answer = ocsp.load_der_ocsp_response(response.content)
    if response.status_code == 400:
        assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@SETTINGS
@given(st.binary(max_size=300))
def test_random_ocsp_gets_are_malformed_requests(browser, data: bytes) -> None:
    encoded = quote(base64.b64encode(data).decode(), safe="")
    response = browser.get(f"/ocsp/{encoded}")
    assert response.status_code in (200, 400)
    ocsp.load_der_ocsp_response(response.content)


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
        # One byte of a real request changed: truncations, wrong tags, broken signatures.
        st.tuples(st.integers(0, len(GOOD_DER) - 1), st.integers(0, 255)).map(
            lambda m: base64.b64encode(
                GOOD_DER[: m[0]] + bytes([m[1]]) + GOOD_DER[m[0] + 1 :]
            ).decode()
        ),
    )
)
def test_random_and_mutated_requests_issue_nothing(browser, owner, runtime, csr: str) -> None:
    before = counts(runtime.database)
    response = browser.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": csr}, headers=owner
    )
    assert response.status_code < 500, response.text
    if response.status_code != 201:
        assert response.headers["content-type"] == "application/problem+json"
        assert counts(runtime.database) == before


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["profile", "csr", "person_id", "dns_names", "passphrase", "extra"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.text(max_size=5))),
        max_size=5,
    )
)
def test_random_json_bodies_get_4xx(browser, owner, body: dict) -> None:
    for path in ("/v1/me/certificates", "/v1/me/certificates/pkcs12", "/v1/certificates"):
        response = browser.post(path, json=body, headers=owner)
        assert 400 <= response.status_code < 500, response.text


@SETTINGS
@given(st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s and s not in (".", "..")))
def test_random_serials_get_4xx(browser, owner, serial: str) -> None:
    response = browser.get(f"/v1/certificates/{quote(serial, safe='')}", headers=owner)
    assert response.status_code in (403, 404, 422), response.text
