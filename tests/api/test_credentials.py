"""Credentials over HTTP: my record, password change, TOTP, recovery codes, sign-in, lockout."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pyotp

from onecard.core.clock import FrozenClock, use_clock
from tests.factories import bearer, expect_problem, identity_number, identity_number_ending_in_x
from tests.oidc_flow import authorize, exchange, make_portal

PASSWORD = "a long passphrase"


@dataclass
class Outcome:
    """A sign-in through the authorization flow: the token response or the page's error."""

    status_code: int
    error: str | None
    body: dict
    headers: dict = field(default_factory=dict)

    def json(self) -> dict:
        return self.body


def sign_in(client, login: str, password: str = PASSWORD, **factors):  # type: ignore[no-untyped-def]
    portal = _portal(client)
    result = authorize(
        client,
        portal,
        login=login,
        password=password,
        totp=factors.get("totp_code"),
        recovery_code=factors.get("recovery_code"),
        scope="openid account",
    )
    client.cookies.clear()  # each sign-in is a new browser
    if result.code is None:
        if result.pages and result.pages[-1] == "totp" and result.page_error is None:
            return Outcome(401, "totp_required", {})
        response = result.response
        return Outcome(response.status_code, result.page_error, {}, response.headers)
    token = exchange(client, portal, result.code)
    return Outcome(token.status_code, None, token.json())


def _portal(client):  # type: ignore[no-untyped-def]
    runtime = client.app.state.runtime
    cached = getattr(runtime, "_test_portal", None)
    if cached is None:
        cached = make_portal(runtime)
        runtime._test_portal = cached
    return cached


def refused(outcome: Outcome, error: str) -> None:
    assert outcome.status_code != 200 or outcome.error, outcome
    assert outcome.error == error, outcome


def registered(client, **fields) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A self-registered citizen: (identity number, headers of a fresh sign-in)."""
    number = fields.pop("identity_number", None) or identity_number()
    body = {"name": "孙八", "identity_number": number, "password": PASSWORD, **fields}
    response = client.post("/v1/persons/register", json=body)
    assert response.status_code == 201, response.text
    signed_in = sign_in(client, number)
    assert signed_in.status_code == 200, signed_in.text
    return number, bearer(signed_in.json()["access_token"])


def enrol_totp(client, headers) -> pyotp.TOTP:  # type: ignore[no-untyped-def]
    started = client.post("/v1/me/totp", headers=headers)
    assert started.status_code == 201, started.text
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = client.post("/v1/me/totp/confirm", json={"code": totp.now()}, headers=headers)
    assert confirmed.status_code == 204, confirmed.text
    return totp


def next_step_code(totp: pyotp.TOTP) -> str:
    """The code of the step after the current one (accepted for clock drift, never used yet)."""
    return totp.at(time.time() + 30)


# -- me -----------------------------------------------------------------------------------


def test_me_shows_my_own_contact_details_in_full(client) -> None:
    number = identity_number()
    phone_number = f"139{uuid.uuid4().int % 10**8:08d}"
    _, headers = registered(client, identity_number=number, phone=phone_number)

    me = client.get("/v1/me", headers=headers).json()

    assert me["phone"] == phone_number
    assert me["identity_number_masked"] == number[:4] + "*" * 10 + number[-4:]
    assert me["totp_enrolled"] is False
    assert me["staff_roles"] == []


def test_sign_in_accepts_the_number_in_any_case_and_the_phone(client) -> None:
    number = identity_number_ending_in_x()
    phone_number = f"137{uuid.uuid4().int % 10**8:08d}"
    registered(client, identity_number=number, phone=phone_number)

    for login in (number.lower(), f" {number} ", phone_number, f"+86{phone_number}"):
        assert sign_in(client, login).status_code == 200, login


def test_revoking_the_token_refuses_it_at_once(client) -> None:
    _, headers = registered(client)
    token = headers["Authorization"].removeprefix("Bearer ")

    revoked = client.post("/oauth2/revoke", data={"token": token}, headers=_portal(client).basic())
    assert revoked.status_code == 200

    expect_problem(client.get("/v1/me", headers=headers), 401, "invalid_token")


# -- password -----------------------------------------------------------------------------


def test_changed_password_replaces_the_old_one(client) -> None:
    number, headers = registered(client)

    response = client.put(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=headers,
    )

    assert response.status_code == 204, response.text
    refused(sign_in(client, number), "invalid_credentials")
    assert sign_in(client, number, "a brand new passphrase").status_code == 200


def test_password_change_with_a_wrong_current_password_is_refused(client) -> None:
    number, headers = registered(client)

    response = client.put(
        "/v1/me/password",
        json={"current_password": "not my password", "new_password": "a brand new passphrase"},
        headers=headers,
    )

    expect_problem(response, 422, "password_incorrect")
    assert "not my password" not in response.text
    assert sign_in(client, number).status_code == 200


def test_password_change_to_a_weak_password_is_refused(client) -> None:
    number, headers = registered(client)

    response = client.put(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=headers,
    )

    expect_problem(response, 422, "password_too_short")
    assert sign_in(client, number).status_code == 200


def test_password_change_to_one_containing_my_identity_number_is_refused(client) -> None:
    number, headers = registered(client)

    response = client.put(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": f"id {number}"},
        headers=headers,
    )

    expect_problem(response, 422, "password_contains_personal_data")


# -- TOTP ---------------------------------------------------------------------------------


def test_totp_is_required_once_enrolled_and_each_code_works_once(client) -> None:
    number, headers = registered(client)
    totp = enrol_totp(client, headers)
    assert client.get("/v1/me", headers=headers).json()["totp_enrolled"] is True

    refused(sign_in(client, number), "totp_required")
    code = next_step_code(totp)
    first = sign_in(client, number, totp_code=code)
    assert first.status_code == 200, first.text

    refused(sign_in(client, number, totp_code=code), "totp_invalid")


def test_code_used_to_confirm_cannot_sign_in(client) -> None:
    number, headers = registered(client)
    started = client.post("/v1/me/totp", headers=headers).json()
    totp = pyotp.TOTP(started["secret"])
    code = totp.now()
    client.post("/v1/me/totp/confirm", json={"code": code}, headers=headers)

    refused(sign_in(client, number, totp_code=code), "totp_invalid")


def test_wrong_totp_code_is_refused(client) -> None:
    number, headers = registered(client)
    totp = enrol_totp(client, headers)
    wrong = f"{(int(next_step_code(totp)) + 1) % 10**6:06d}"

    refused(sign_in(client, number, totp_code=wrong), "totp_invalid")
    refused(sign_in(client, number, totp_code="abcdef"), "totp_invalid")


def test_totp_with_a_wrong_password_says_invalid_credentials(client) -> None:
    number, headers = registered(client)
    totp = enrol_totp(client, headers)

    response = sign_in(client, number, "not my password", totp_code=next_step_code(totp))

    refused(response, "invalid_credentials")


def test_totp_confirmation_errors(client) -> None:
    _, headers = registered(client)
    expect_problem(
        client.post("/v1/me/totp/confirm", json={"code": "123456"}, headers=headers),
        404,
        "totp_not_enrolled",
    )
    client.post("/v1/me/totp", headers=headers)
    expect_problem(
        client.post("/v1/me/totp/confirm", json={"code": "000000x"}, headers=headers),
        422,
        "totp_invalid",
    )
    expect_problem(
        client.post("/v1/me/totp/confirm", json={"code": "12"}, headers=headers),
        422,
        "request_invalid",
    )


def test_second_enrolment_is_refused_once_confirmed(client) -> None:
    _, headers = registered(client)
    enrol_totp(client, headers)

    expect_problem(client.post("/v1/me/totp", headers=headers), 409, "totp_already_enrolled")


def test_totp_removal_needs_a_valid_code(client) -> None:
    number, headers = registered(client)
    totp = enrol_totp(client, headers)

    expect_problem(
        client.post("/v1/me/totp/remove", json={"code": "000000"}, headers=headers),
        422,
        "totp_invalid",
    )
    removed = client.post(
        "/v1/me/totp/remove", json={"code": next_step_code(totp)}, headers=headers
    )
    assert removed.status_code == 204, removed.text
    assert sign_in(client, number).status_code == 200


# -- recovery codes -----------------------------------------------------------------------


def test_recovery_codes_need_an_enrolled_authenticator(client) -> None:
    _, headers = registered(client)

    expect_problem(client.post("/v1/me/recovery-codes", headers=headers), 409, "totp_not_enrolled")

    client.post("/v1/me/totp", headers=headers)  # started, not confirmed
    expect_problem(client.post("/v1/me/recovery-codes", headers=headers), 409, "totp_not_enrolled")


def test_each_recovery_code_signs_in_once(client) -> None:
    number, headers = registered(client)
    enrol_totp(client, headers)
    response = client.post("/v1/me/recovery-codes", headers=headers)
    assert response.status_code == 201, response.text
    codes = response.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10

    assert sign_in(client, number, recovery_code=codes[0]).status_code == 200
    refused(sign_in(client, number, recovery_code=codes[0]), "recovery_code_invalid")
    assert sign_in(client, number, recovery_code=codes[1].upper()).status_code == 200


def test_regenerating_recovery_codes_invalidates_the_old_ones(client) -> None:
    number, headers = registered(client)
    enrol_totp(client, headers)
    old = client.post("/v1/me/recovery-codes", headers=headers).json()["recovery_codes"]

    new = client.post("/v1/me/recovery-codes", headers=headers).json()["recovery_codes"]

    assert not set(old) & set(new)
    refused(sign_in(client, number, recovery_code=old[0]), "recovery_code_invalid")
    assert sign_in(client, number, recovery_code=new[0]).status_code == 200


# -- sign-in failures and lockout -------------------------------------------------------------


def test_unknown_login_and_wrong_password_get_the_same_answer(client) -> None:
    number, _ = registered(client)

    wrong_password = sign_in(client, number, "not my password")
    unknown_login = sign_in(client, identity_number(), "not my password")

    refused(wrong_password, "invalid_credentials")
    assert unknown_login == wrong_password


def test_five_wrong_passwords_lock_the_account_until_the_lock_expires(client, runtime) -> None:
    number, _ = registered(client)
    lockout = runtime.settings.login_lockout_seconds
    with use_clock(FrozenClock()) as frozen:
        for _ in range(runtime.settings.login_max_failures):
            refused(sign_in(client, number, "not my password"), "invalid_credentials")

        locked = sign_in(client, number)  # even the right password is refused now
        assert locked.status_code == 429
        refused(locked, "throttled")
        assert lockout - 5 <= int(locked.headers["Retry-After"]) <= lockout + 1

        frozen.advance(lockout - 10)
        refused(sign_in(client, number), "throttled")

        frozen.advance(11)
        assert sign_in(client, number).status_code == 200


def test_totp_code_of_fullwidth_digits_is_422_not_500(app) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        _, headers = registered(client)
        client.post("/v1/me/totp", headers=headers)

        response = client.post(
            "/v1/me/totp/confirm",
            json={"code": "\uff11\uff12\uff13\uff14\uff15\uff16"},
            headers=headers,
        )

    expect_problem(response, 422, "totp_invalid")
