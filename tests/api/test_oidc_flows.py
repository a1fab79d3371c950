"""The OpenID Connect provider through the browser flow, beyond the basic code flow: second
factors and assurance levels, the enterprise and identity scopes, tokens for another audience
or issuer, page languages, sign-in throttling over HTTP, ``private_key_jwt`` against a real
JWKS server, back-channel logout reaching a real portal, and logout confirmation.

Tokens are checked with pyjwt against the published JWKS, not with onecard's own code.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import select

from onecard.core.audit import Actor, AuditEvent
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jobs import JobContext, RunReport, run_due
from onecard.core.jose import sign_compact
from onecard.core.masking import mask_identity_number
from onecard.identity import credentials
from onecard.identity.actions import IdentityAction
from onecard.identity.credentials import TOTP_STEP, set_password
from onecard.identity.enterprises import NewEnterprise, register_enterprise
from onecard.identity.models import AssuranceLevel, Person
from onecard.identity.oidc.backchannel import LOGOUT_EVENT
from onecard.identity.oidc.client_auth import JWT_BEARER
from tests.factories import credit_code, fresh_runtime, identity_number, person
from tests.oidc_flow import (
    FlowResult,
    Portal,
    authorize,
    exchange,
    form_action,
    form_fields,
    make_portal,
)

PASSWORD = "correct horse battery"
ISSUER = "http://testserver"
TOKEN_ENDPOINT = ISSUER + "/oauth2/token"


# -- accounts and browsers ----------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    login: str  # the identity number: a login that always works
    totp: pyotp.TOTP | None = None


def make_account(runtime, *, level: int = 1) -> Account:  # type: ignore[no-untyped-def]
    number = identity_number()
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, level=AssuranceLevel(level), number=number)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
    return Account(member.id, number)


def enrol_totp(runtime, account: Account, step: int) -> Account:  # type: ignore[no-untyped-def]
    """Enrol an authenticator, confirmed with the code of ``step`` (which is then used up)."""
    with runtime.database.session() as session:
        member = session.get(Person, account.id)
        enrolment = credentials.begin_totp_enrolment(
            session, runtime.sealer, member, actor=Actor.system(), label="test"
        )
        totp = pyotp.TOTP(enrolment.secret)
        credentials.confirm_totp(
            session, runtime.sealer, member, totp.generate_otp(step), actor=Actor.system()
        )
    return Account(account.id, account.login, totp)


@pytest.fixture
def browser(app) -> Iterator[Callable[..., Any]]:  # type: ignore[no-untyped-def]
    """``browser()``: a new browser (its own cookie jar) at an address of its own, so the
    per-address sign-in throttle of one test never reaches another."""
    from fastapi.testclient import TestClient

    opened: list[TestClient] = []

    def make(address: str | None = None) -> TestClient:
        host = address or "10." + ".".join(str(b) for b in secrets.token_bytes(3))
        test_client = TestClient(app, client=(host, 50000))
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.close()


@pytest.fixture
def frozen_at_step() -> Iterator[tuple[FrozenClock, int]]:
    """The service clock frozen 10 s into a TOTP step (so "the current step" is never
    ambiguous), and that step."""
    at = datetime.fromtimestamp((int(time.time()) // TOTP_STEP) * TOTP_STEP + 10, UTC)
    with use_clock(FrozenClock(at)) as clock:
        yield clock, int(at.timestamp()) // TOTP_STEP  # type: ignore[misc]


def tokens_of(client, portal: Portal, result: FlowResult) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert result.code, (result.pages, result.page_error, result.params)
    response = exchange(client, portal, result.code)
    assert response.status_code == 200, response.text
    return response.json()


def verified_id_token(client, token: str, portal: Portal) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    header = jwt.get_unverified_header(token)
    keys = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    return jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=[header["alg"]],
        audience=portal.client_id,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},  # tests may freeze the service clock
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def reveal_events(runtime, person_id: uuid.UUID) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.person_id == person_id,
                    AuditEvent.action == IdentityAction.PERSON_REVEAL,
                )
            )
        )


# -- second factor ------------------------------------------------------------------------


def test_level_2_sign_in_asks_password_then_totp_and_asserts_loa2_with_pwd_and_otp(
    runtime, browser, frozen_at_step
) -> None:
    _, step = frozen_at_step
    account = enrol_totp(runtime, make_account(runtime, level=2), step - 1)
    portal = make_portal(runtime)
    client = browser()

    result = authorize(
        client, portal, login=account.login, password=PASSWORD, totp=account.totp.now()
    )

    assert result.pages == ["login", "totp", "consent"]
    claims = verified_id_token(client, tokens_of(client, portal, result)["id_token"], portal)
    assert claims["acr"] == "urn:onecard:loa:2"
    assert {"pwd", "otp"} <= set(claims["amr"])


def test_a_totp_code_is_accepted_once_even_from_another_browser(
    runtime, browser, frozen_at_step
) -> None:
    _, step = frozen_at_step
    account = enrol_totp(runtime, make_account(runtime, level=2), step - 1)
    portal = make_portal(runtime)
    code = account.totp.generate_otp(step)

    first = authorize(browser(), portal, login=account.login, password=PASSWORD, totp=code)
    assert first.code
    second = authorize(browser(), portal, login=account.login, password=PASSWORD, totp=code)

    assert second.code is None
    assert second.pages == ["login", "totp", "totp"]
    assert second.page_error == "totp_invalid"


def test_a_recovery_code_replaces_the_totp_code_once(runtime, browser, frozen_at_step) -> None:
    _, step = frozen_at_step
    account = enrol_totp(runtime, make_account(runtime, level=2), step - 1)
    with runtime.database.session() as session:
        codes = credentials.generate_recovery_codes(
            session, runtime.sealer, session.get(Person, account.id), actor=Actor.system()
        )
    portal = make_portal(runtime)
    client = browser()

    used = authorize(client, portal, login=account.login, password=PASSWORD, recovery_code=codes[0])
    again = authorize(
        browser(), portal, login=account.login, password=PASSWORD, recovery_code=codes[0]
    )

    assert used.pages == ["login", "totp", "consent"]
    claims = verified_id_token(client, tokens_of(client, portal, used)["id_token"], portal)
    assert claims["acr"] == "urn:onecard:loa:2"
    assert again.code is None
    assert again.page_error == "recovery_code_invalid"


def test_repeated_wrong_totp_codes_are_throttled_and_then_even_the_right_code_waits(
    runtime, browser, frozen_at_step, settings
) -> None:
    _, step = frozen_at_step
    account = enrol_totp(runtime, make_account(runtime, level=2), step - 1)
    portal = make_portal(runtime)
    client = browser()
    wrong = str((int(account.totp.generate_otp(step)) + 1) % 1_000_000).zfill(6)

    failures = [
        authorize(client, portal, login=account.login, password=PASSWORD, totp=wrong).page_error
        for _ in range(settings.login_max_failures)
    ]
    locked = authorize(
        client, portal, login=account.login, password=PASSWORD, totp=account.totp.now()
    )

    assert failures == ["totp_invalid"] * settings.login_max_failures
    assert locked.code is None
    assert locked.response.status_code == 429
    assert locked.page_error == "throttled"
    assert int(locked.response.headers["Retry-After"]) > 0


def test_step_up_to_level_2_without_an_authenticator_says_so_and_issues_no_code(
    runtime, browser
) -> None:
    account = make_account(runtime, level=2)
    portal = make_portal(runtime)
    client = browser()
    first = authorize(
        client, portal, login=account.login, password=PASSWORD, acr_values="urn:onecard:loa:1"
    )
    assert first.pages == ["login", "consent"]
    claims = verified_id_token(client, tokens_of(client, portal, first)["id_token"], portal)
    assert claims["acr"] == "urn:onecard:loa:1"  # a level-2 identity, signed in with one factor

    step_up = authorize(client, portal, acr_values="urn:onecard:loa:2")

    assert step_up.pages == ["totp"]
    assert step_up.code is None
    assert "尚未绑定身份验证器" in step_up.response.text
    assert 'name="code"' not in step_up.response.text  # nothing to type a code into


def test_fresh_sign_in_at_level_2_without_an_authenticator_says_so(runtime, browser) -> None:
    account = make_account(runtime, level=2)
    portal = make_portal(runtime)

    result = authorize(
        browser(), portal, login=account.login, password=PASSWORD, acr_values="urn:onecard:loa:2"
    )

    assert result.pages == ["login", "totp"]
    assert result.code is None
    assert "尚未绑定身份验证器" in result.response.text
    assert 'name="code"' not in result.response.text


def test_a_portal_needing_level_2_refuses_a_level_1_citizen_after_the_password(
    runtime, browser
) -> None:
    account = make_account(runtime, level=1)
    portal = make_portal(runtime, min_level=2)

    result = authorize(browser(), portal, login=account.login, password=PASSWORD, state="s9")

    assert result.pages == ["login"]
    assert result.code is None
    assert result.params["error"] == "access_denied"
    assert result.params["state"] == "s9"
    assert result.params["iss"] == ISSUER


# -- the enterprise scope -----------------------------------------------------------------


def register_company(runtime, representative: uuid.UUID, name: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        enterprise = register_enterprise(
            session, NewEnterprise(name, credit_code(), representative), actor=Actor.system()
        )
        session.flush()
        return str(enterprise.id), enterprise.credit_code


def test_a_legal_representative_chooses_their_enterprise_and_userinfo_names_it(
    runtime, browser
) -> None:
    account = make_account(runtime)
    enterprise_id, code = register_company(runtime, account.id, "某某科技有限公司")
    portal = make_portal(runtime)
    client = browser()

    result = authorize(
        client,
        portal,
        login=account.login,
        password=PASSWORD,
        enterprise_id=enterprise_id,
        scope="openid enterprise",
    )

    assert result.pages == ["login", "enterprise", "consent"]
    body = tokens_of(client, portal, result)
    info = client.get("/oauth2/userinfo", headers=bearer(body["access_token"])).json()
    assert info["enterprise"] == {
        "id": enterprise_id,
        "name": "某某科技有限公司",
        "credit_code": code,
    }
    assert "legal_representative" in info["enterprise_roles"]


def test_the_enterprise_page_lists_the_citizens_enterprises(runtime, browser) -> None:
    account = make_account(runtime)
    enterprise_id, _ = register_company(runtime, account.id, "某某贸易有限公司")
    result = authorize(
        browser(),
        make_portal(runtime),
        login=account.login,
        password=PASSWORD,
        scope="openid enterprise",
    )
    assert result.pages == ["login", "enterprise"]
    assert "某某贸易有限公司" in result.response.text
    assert f'value="{enterprise_id}"' in result.response.text


def test_choosing_someone_elses_enterprise_does_not_get_through(runtime, browser) -> None:
    account = make_account(runtime)
    register_company(runtime, account.id, "自己的公司")
    stranger = make_account(runtime)
    foreign_id, _ = register_company(runtime, stranger.id, "别人的公司")
    portal = make_portal(runtime)

    result = authorize(
        browser(),
        portal,
        login=account.login,
        password=PASSWORD,
        enterprise_id=foreign_id,
        scope="openid enterprise",
    )

    assert result.code is None
    assert "consent" not in result.pages
    assert result.pages[-1] == "enterprise"
    assert "别人的公司" not in result.response.text


# -- the identity scope -------------------------------------------------------------------


def test_identity_scope_releases_the_masked_number_and_the_level_only(runtime, browser) -> None:
    account = make_account(runtime, level=2)
    portal = make_portal(runtime)
    client = browser()
    # A level-2 identity without an authenticator signs in at level 1; the claim says 2.
    result = authorize(
        client, portal, login=account.login, password=PASSWORD, scope="openid identity"
    )

    response = client.get(
        "/oauth2/userinfo", headers=bearer(tokens_of(client, portal, result)["access_token"])
    )

    info = response.json()
    assert info["identity_number_masked"] == mask_identity_number(account.login)
    assert info["assurance_level"] == 2
    assert "identity_number" not in info
    assert account.login not in response.text
    assert reveal_events(runtime, account.id) == []


def test_a_client_allowed_the_full_identity_number_gets_it_and_the_release_is_audited(
    runtime, browser
) -> None:
    account = make_account(runtime)
    portal = make_portal(runtime, full_identity_number=True)
    client = browser()
    result = authorize(
        client, portal, login=account.login, password=PASSWORD, scope="openid identity"
    )
    assert result.pages == ["login", "consent"]

    info = client.get(
        "/oauth2/userinfo", headers=bearer(tokens_of(client, portal, result)["access_token"])
    ).json()

    assert info["identity_number"] == account.login
    (event,) = reveal_events(runtime, account.id)
    assert event.action == "identity:person:reveal_identity_number"
    assert (event.actor_kind, event.actor_id) == ("client", portal.client_id)


# -- tokens for another audience or issuer ------------------------------------------------


def resigned(runtime, token: str, **changes: str) -> str:  # type: ignore[no-untyped-def]
    """``token``'s claims with ``changes``, signed with onecard's own access-token key."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    with runtime.database.session() as session:
        signer = runtime.keyring.signer(session, "token", "ES256")
    return sign_compact(signer, claims, typ="at+jwt")


@pytest.mark.parametrize(
    "changes",
    [{"aud": "https://other.example"}, {"iss": "https://evil.example"}],
    ids=["aud", "iss"],
)
def test_our_own_signature_on_a_token_for_another_audience_or_issuer_is_refused(
    runtime, browser, changes
) -> None:
    account = make_account(runtime)
    portal = make_portal(runtime)
    client = browser()
    result = authorize(
        client, portal, login=account.login, password=PASSWORD, scope="openid account"
    )
    genuine = tokens_of(client, portal, result)["access_token"]
    # The same claims re-signed unchanged are accepted: only the changed claim can explain a 401.
    control = resigned(runtime, genuine)
    assert client.get("/oauth2/userinfo", headers=bearer(control)).status_code == 200
    assert client.get("/v1/me", headers=bearer(control)).status_code == 200

    forged = resigned(runtime, genuine, **changes)

    userinfo = client.get("/oauth2/userinfo", headers=bearer(forged))
    assert userinfo.status_code == 401
    assert 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]
    assert client.get("/v1/me", headers=bearer(forged)).status_code == 401
    assert client.post(
        "/oauth2/introspect", data={"token": forged}, headers=portal.basic()
    ).json() == {"active": False}
    assert client.post(
        "/oauth2/introspect", data={"token": control}, headers=portal.basic()
    ).json()["active"]


# -- page language ------------------------------------------------------------------------


def test_ui_locales_en_renders_english_and_the_default_is_chinese(runtime, browser) -> None:
    portal = make_portal(runtime)
    account = make_account(runtime)

    english = authorize(browser(), portal, ui_locales="en")
    default = authorize(browser(), portal)
    # The language travels with the request: the page after a wrong password is English too.
    retried = authorize(browser(), portal, login=account.login, password="wrong", ui_locales="en")

    assert english.pages == default.pages == ["login"]
    assert '<html lang="en">' in english.response.text
    assert '<html lang="zh-CN">' in default.response.text
    assert retried.page_error == "invalid_credentials"
    assert '<html lang="en">' in retried.response.text


# -- throttling over HTTP -----------------------------------------------------------------


def wrong_password_attempts(client, portal: Portal, login: str, count: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    outcomes = []
    for _ in range(count):
        result = authorize(client, portal, login=login, password="not the password")
        outcomes.append(
            (
                result.response.status_code,
                result.page_error,
                "Retry-After" in result.response.headers,
            )
        )
    return outcomes


def test_repeated_wrong_passwords_are_throttled_with_retry_after_then_the_lockout_ends(
    runtime, browser, settings
) -> None:
    account = make_account(runtime)
    portal = make_portal(runtime)
    client = browser()
    limit = settings.login_max_failures

    with use_clock(FrozenClock()) as frozen:
        outcomes = wrong_password_attempts(client, portal, account.login, limit + 1)
        locked = authorize(client, portal, login=account.login, password=PASSWORD)
        frozen.advance(settings.login_lockout_seconds + 1)
        later = authorize(client, portal, login=account.login, password=PASSWORD)

    assert outcomes[:limit] == [(200, "invalid_credentials", False)] * limit
    assert outcomes[limit] == (429, "throttled", True)
    # While locked, even the right password is refused, and told when to come back.
    assert locked.response.status_code == 429
    assert locked.page_error == "throttled"
    retry_after = int(locked.response.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_lockout_seconds + 1
    assert later.code  # the lockout expired by itself


def test_an_unknown_login_is_throttled_exactly_like_a_known_one(runtime, browser, settings) -> None:
    account = make_account(runtime)
    portal = make_portal(runtime)
    attempts = settings.login_max_failures + 2

    known = wrong_password_attempts(browser(), portal, account.login, attempts)
    unknown = wrong_password_attempts(browser(), portal, identity_number(), attempts)

    assert unknown == known
    assert known[-1] == (429, "throttled", True)


# -- private_key_jwt ----------------------------------------------------------------------


class JwksServer:
    """A client's JWKS endpoint on 127.0.0.1 (a real HTTP server, fetched by onecard)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/jwks.json"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def key_client(runtime) -> Iterator[tuple[Portal, ec.EllipticCurvePrivateKey, JwksServer]]:  # type: ignore[no-untyped-def]
    """A terminal authenticating with private_key_jwt, its key set served by URI."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    public.update(kid="terminal-key-1", use="sig", alg="ES256")
    with JwksServer({"keys": [public]}) as server:
        terminal = make_portal(
            runtime,
            grant_types=("client_credentials",),
            redirect_uris=(),
            post_logout_redirect_uris=(),
            scopes=("card:verify",),
            auth_method="private_key_jwt",
            jwks_uri=server.uri,
        )
        yield terminal, private_key, server


def assertion(client_id: str, key: object, *, alg: str = "ES256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    headers = {"kid": "terminal-key-1"} if alg == "ES256" else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def token_with_assertion(client, signed: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "scope": "card:verify",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": signed,
        },
    )


def test_private_key_jwt_client_gets_a_token_with_a_key_fetched_from_its_jwks_uri(
    client, key_client
) -> None:
    terminal, key, server = key_client
    assert terminal.secret is None

    response = token_with_assertion(client, assertion(terminal.client_id, key))

    assert response.status_code == 200, response.text
    assert response.json()["token_type"].lower() == "bearer"
    assert server.requests >= 1
    introspected = client.post(
        "/oauth2/introspect",
        data={
            "token": response.json()["access_token"],
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(
                terminal.client_id, key, aud=ISSUER + "/oauth2/introspect"
            ),
        },
    ).json()
    assert introspected["active"] is True
    assert introspected["client_id"] == terminal.client_id


def test_a_replayed_client_assertion_is_refused(client, key_client) -> None:
    terminal, key, _ = key_client
    signed = assertion(terminal.client_id, key)
    assert token_with_assertion(client, signed).status_code == 200

    replay = token_with_assertion(client, signed)

    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_an_hs256_assertion_keyed_with_the_client_id_is_refused(client, key_client) -> None:
    terminal, _, _ = key_client
    forged = assertion(terminal.client_id, terminal.client_id, alg="HS256")

    response = token_with_assertion(client, forged)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_an_assertion_for_another_audience_is_refused(client, key_client) -> None:
    terminal, key, _ = key_client

    response = token_with_assertion(
        client, assertion(terminal.client_id, key, aud="https://other.example/oauth2/token")
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_an_assertion_is_spent_even_when_its_token_request_fails(client, key_client) -> None:
    terminal, key, _ = key_client
    signed = assertion(terminal.client_id, key)
    failed = client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "scope": "openid",  # not allowed to this terminal: invalid_scope after client auth
            "client_assertion_type": JWT_BEARER,
            "client_assertion": signed,
        },
    )
    assert failed.json()["error"] == "invalid_scope"

    replay = token_with_assertion(client, signed)

    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


# -- back-channel logout, end to end ------------------------------------------------------


class LogoutReceiver:
    """A portal's back-channel logout endpoint on 127.0.0.1 that records what it gets."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(parse_qs(body.decode("ascii")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/backchannel-logout"

    def __enter__(self) -> LogoutReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def isolated(settings, fresh_db):  # type: ignore[no-untyped-def]
    """A browser and runtime on a database of their own: run_due sees only this test's jobs."""
    from fastapi.testclient import TestClient

    from onecard.api.main import create_app

    runtime = fresh_runtime(settings, fresh_db())
    with TestClient(create_app(runtime)) as test_client:
        yield test_client, runtime


def test_rp_initiated_logout_reaches_the_portal_by_back_channel_after_the_response(
    isolated,
) -> None:
    client, runtime = isolated
    with LogoutReceiver() as receiver:
        portal = make_portal(runtime, backchannel_logout_uri=receiver.uri)
        account = make_account(runtime)
        result = authorize(client, portal, login=account.login, password=PASSWORD)
        id_token = tokens_of(client, portal, result)["id_token"]
        signed_in = verified_id_token(client, id_token, portal)

        logout = client.get(
            "/oauth2/logout",
            params={
                "id_token_hint": id_token,
                "post_logout_redirect_uri": "https://portal.example.gov.cn/bye",
            },
            follow_redirects=False,
        )
        assert logout.status_code == 303
        assert receiver.received == []  # the logout did not wait on the portal

        assert run_due(JobContext.from_runtime(runtime)) == RunReport(done=1)

    (form,) = receiver.received
    (logout_token,) = form["logout_token"]
    header = jwt.get_unverified_header(logout_token)
    assert header["typ"] == "logout+jwt"
    keys = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    claims = jwt.decode(
        logout_token,
        keys[header["kid"]].key,
        algorithms=[header["alg"]],
        audience=portal.client_id,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"]},
    )
    assert claims["sid"] == signed_in["sid"]
    assert claims["sub"] == signed_in["sub"]
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims


# -- logout confirmation ------------------------------------------------------------------


def signed_in_browser(runtime, browser) -> tuple[Any, Portal]:  # type: ignore[no-untyped-def]
    account = make_account(runtime)
    portal = make_portal(runtime)
    client = browser()
    assert authorize(client, portal, login=account.login, password=PASSWORD).code
    return client, portal


def confirmation_form(client) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    page = client.get("/oauth2/logout", follow_redirects=False)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return form_action(page.text), form_fields(page.text)


def test_logout_without_a_hint_asks_for_confirmation_and_ends_the_session_on_logout(
    runtime, browser
) -> None:
    client, portal = signed_in_browser(runtime, browser)

    action, fields = confirmation_form(client)
    assert action == "/oauth2/logout/confirm"
    assert re.fullmatch(r"[0-9a-f]{64}", fields["csrf_token"])
    assert authorize(client, portal, prompt="none").code  # asking did not sign anyone out

    response = client.post(action, data={"csrf_token": fields["csrf_token"], "action": "logout"})

    assert response.status_code == 200
    assert authorize(client, portal, prompt="none").params["error"] == "login_required"


def test_logout_confirmation_needs_the_csrf_token_and_cancel_keeps_the_session(
    runtime, browser
) -> None:
    client, portal = signed_in_browser(runtime, browser)
    action, fields = confirmation_form(client)

    forged = client.post(action, data={"csrf_token": "0" * 64, "action": "logout"})
    cancelled = client.post(action, data={"csrf_token": fields["csrf_token"], "action": "cancel"})

    assert forged.status_code == 403
    assert cancelled.status_code == 200
    assert authorize(client, portal, prompt="none").code  # still signed in
