"""Sign-on sessions and consents, as the citizen sees them (``/v1/me/sessions``,
``/v1/me/consents``) and as staff act on them (``/v1/persons/{id}/sessions``, suspension).

Every session here is made by the real browser flow; the citizen's ``/v1`` token is the access
token a portal allowed the ``account`` scope got in that flow.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from sqlmodel import select

from onecard.core.audit import Actor
from onecard.core.jobs import Job
from onecard.identity.credentials import set_password
from onecard.identity.oidc.backchannel import BACKCHANNEL_LOGOUT
from onecard.identity.oidc.clients import get_client
from tests.factories import identity_number, person
from tests.oidc_flow import Portal, authorize, exchange, make_portal

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    login: str


@dataclass(frozen=True)
class SignedIn:
    """What one portal got from one sign-in: its tokens and the session they name."""

    portal: Portal
    tokens: dict[str, Any]
    sid: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def refresh(self, client):  # type: ignore[no-untyped-def]
        return client.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": self.tokens["refresh_token"]},
            headers=self.portal.basic(),
        )


def make_account(runtime) -> Account:  # type: ignore[no-untyped-def]
    number = identity_number()
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, number=number)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
    return Account(member.id, number)


def sign_in(browser, portal: Portal, account: Account, scope: str) -> SignedIn:  # type: ignore[no-untyped-def]
    result = authorize(browser, portal, login=account.login, password=PASSWORD, scope=scope)
    assert result.code, (result.pages, result.page_error, result.params)
    response = exchange(browser, portal, result.code)
    assert response.status_code == 200, response.text
    body = response.json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    return SignedIn(portal, body, claims["sid"])


def dead_uri() -> str:
    """A back-channel logout URI where nothing listens (jobs here are only queued)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/backchannel-logout"


def backchannel_jobs(runtime, sid: str) -> list[Job]:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        jobs = session.exec(select(Job).where(Job.kind == BACKCHANNEL_LOGOUT)).all()
        return [job for job in jobs if job.payload.get("sid") == sid]


def row_id(runtime, portal: Portal) -> str:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        return str(get_client(session, portal.client_id).id)


def signed_out(browser, portal: Portal) -> bool:  # type: ignore[no-untyped-def]
    silent = authorize(browser, portal, prompt="none")
    if silent.code:
        return False
    assert silent.params["error"] == "login_required", silent.params
    return True


@pytest.fixture
def new_browser(app):  # type: ignore[no-untyped-def]
    """``new_browser()``: another browser with a cookie jar of its own."""
    from fastapi.testclient import TestClient

    opened: list[TestClient] = []

    def make() -> TestClient:
        opened.append(TestClient(app))
        return opened[-1]

    yield make
    for browser in opened:
        browser.close()


@pytest.fixture
def portals(runtime) -> tuple[Portal, Portal]:  # type: ignore[no-untyped-def]
    """Portal A (allowed ``account``, no back channel) and portal B (back-channel logout)."""
    return make_portal(runtime), make_portal(runtime, backchannel_logout_uri=dead_uri())


# -- the citizen's sessions ---------------------------------------------------------------


def test_my_sessions_list_the_one_sso_session_shared_by_two_portals(
    client, runtime, portals
) -> None:
    a, b = portals
    account = make_account(runtime)
    at_a = sign_in(client, a, account, "openid account")
    at_b = sign_in(client, b, account, "openid profile")  # single sign-on: no password asked

    response = client.get("/v1/me/sessions", headers=at_a.bearer)

    assert response.status_code == 200, response.text
    assert at_a.sid == at_b.sid
    (listed,) = response.json()
    assert listed["sid"] == at_a.sid
    assert (listed["level"], listed["amr"]) == (1, ["pwd"])


def test_ending_my_session_signs_that_browser_out_and_queues_backchannel_logouts(
    client, runtime, portals, new_browser
) -> None:
    a, b = portals
    account = make_account(runtime)
    first = sign_in(client, a, account, "openid account")
    sign_in(client, b, account, "openid profile")
    other_browser = new_browser()
    second = sign_in(other_browser, a, account, "openid account")
    assert backchannel_jobs(runtime, first.sid) == []

    response = client.delete(f"/v1/me/sessions/{first.sid}", headers=second.bearer)

    assert response.status_code == 204
    assert signed_out(client, a)
    assert not signed_out(other_browser, a)
    assert client.get("/v1/me", headers=first.bearer).status_code == 401  # its grants revoked
    (job,) = backchannel_jobs(runtime, first.sid)  # portal B only: A has no back channel
    assert job.payload["client"] == row_id(runtime, b)
    listed = client.get("/v1/me/sessions", headers=second.bearer).json()
    assert [s["sid"] for s in listed] == [second.sid]
    again = client.delete(f"/v1/me/sessions/{first.sid}", headers=second.bearer)
    assert again.status_code == 404


def test_a_citizen_cannot_end_someone_elses_session(client, runtime, portals, new_browser) -> None:
    a, _ = portals
    mine = sign_in(client, a, make_account(runtime), "openid account")
    their_browser = new_browser()
    theirs = sign_in(their_browser, a, make_account(runtime), "openid account")

    response = client.delete(f"/v1/me/sessions/{theirs.sid}", headers=mine.bearer)

    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
    assert not signed_out(their_browser, a)


# -- the citizen's consents ---------------------------------------------------------------


def test_my_consents_list_each_portal_with_its_scopes_and_claims(client, runtime, portals) -> None:
    a, b = portals
    account = make_account(runtime)
    at_a = sign_in(client, a, account, "openid account")
    sign_in(client, b, account, "openid profile email")

    response = client.get("/v1/me/consents", headers=at_a.bearer)

    assert response.status_code == 200, response.text
    consents = {c["client_id"]: c for c in response.json()}
    assert set(consents) == {a.client_id, b.client_id}
    assert consents[b.client_id]["client_name"] == "测试门户"
    assert consents[b.client_id]["scopes"] == ["email", "openid", "profile"]
    assert {"sub", "name", "email"} <= set(consents[b.client_id]["claims"])
    assert consents[a.client_id]["scopes"] == ["account", "openid"]


def test_withdrawing_consent_stops_that_portals_refresh_token_and_no_other(
    client, runtime, portals
) -> None:
    a, b = portals
    account = make_account(runtime)
    at_a = sign_in(client, a, account, "openid account")
    at_b = sign_in(client, b, account, "openid profile")

    response = client.delete(f"/v1/me/consents/{b.client_id}", headers=at_a.bearer)

    assert response.status_code == 204
    refused = at_b.refresh(client)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert client.get("/oauth2/userinfo", headers=at_b.bearer).status_code == 401
    still = at_a.refresh(client)
    assert still.status_code == 200, still.text
    remaining = client.get(
        "/v1/me/consents", headers={"Authorization": f"Bearer {still.json()['access_token']}"}
    ).json()
    assert [c["client_id"] for c in remaining] == [a.client_id]
    assert authorize(client, b, scope="openid profile").pages == ["consent"]  # asked again


def test_withdrawing_a_consent_never_given_is_404(client, runtime, portals) -> None:
    a, b = portals
    at_a = sign_in(client, a, make_account(runtime), "openid account")

    response = client.delete(f"/v1/me/consents/{b.client_id}", headers=at_a.bearer)

    assert response.status_code == 404
    assert response.json()["code"] == "consent_not_found"


# -- staff --------------------------------------------------------------------------------


def test_a_registrar_ends_every_session_of_a_person(
    client, runtime, staff, portals, new_browser
) -> None:
    _, registrar = staff("registrar")
    a, _ = portals
    account = make_account(runtime)
    other_browser = new_browser()
    sids = {sign_in(b, a, account, "openid account").sid for b in (client, other_browser)}
    sessions_url = f"/v1/persons/{account.id}/sessions"
    listed = client.get(sessions_url, headers=registrar)
    assert listed.status_code == 200, listed.text
    assert {s["sid"] for s in listed.json()} == sids

    response = client.post(f"{sessions_url}/end", headers=registrar)

    assert response.status_code == 200, response.text
    assert response.json() == {"ended": 2}
    assert signed_out(client, a)
    assert signed_out(other_browser, a)
    assert client.get(sessions_url, headers=registrar).json() == []
    assert client.post(f"{sessions_url}/end", headers=registrar).json() == {"ended": 0}


def test_a_citizen_cannot_end_sessions_through_the_staff_api(client, runtime, portals) -> None:
    a, _ = portals
    account = make_account(runtime)
    mine = sign_in(client, a, account, "openid account")

    response = client.post(f"/v1/persons/{account.id}/sessions/end", headers=mine.bearer)

    assert response.status_code == 403
    assert not signed_out(client, a)


def test_suspending_a_person_ends_their_sessions_and_their_refresh_tokens_fail(
    client, runtime, staff, portals
) -> None:
    _, registrar = staff("registrar")
    a, b = portals
    account = make_account(runtime)
    at_a = sign_in(client, a, account, "openid account")
    at_b = sign_in(client, b, account, "openid profile")

    response = client.post(
        f"/v1/persons/{account.id}/suspend", json={"reason": "x"}, headers=registrar
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    for signed in (at_a, at_b):
        refused = signed.refresh(client)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
        assert client.get("/oauth2/userinfo", headers=signed.bearer).status_code == 401
    assert signed_out(client, a)
    (job,) = backchannel_jobs(runtime, at_a.sid)  # portal B is told
    assert job.payload["client"] == row_id(runtime, b)
    # A suspended person cannot simply sign in again.
    again = authorize(client, a, login=account.login, password=PASSWORD)
    assert again.code is None
    assert again.page_error == "account_not_active"
