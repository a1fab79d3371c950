"""The OpenID Connect provider over HTTP: the behaviours of the OpenID certification suite's
Basic, Config and logout plans, and the security properties RFC 9700 asks for.

The browser is the TestClient (its cookie jar holds the SSO session); tokens are verified with
pyjwt against the published JWKS, not with our own code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from onecard.core.audit import Actor
from onecard.core.clock import FrozenClock, use_clock
from onecard.identity.credentials import set_password
from tests.factories import person
from tests.oidc_flow import REDIRECT_URI, authorize, exchange, make_portal, pkce_pair

PASSWORD = "correct horse battery"


@pytest.fixture
def account(runtime):  # type: ignore[no-untyped-def]
    """A level-1 citizen with a password and a phone and email: (person, login)."""
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, with_phone=True)
        member.email = f"{member.id.hex[:12]}@example.cn"
        session.add(member)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
    return member, member.phone


@pytest.fixture
def portal(runtime):  # type: ignore[no-untyped-def]
    return make_portal(runtime)


def jwks(client) -> jwt.PyJWKSet:  # type: ignore[no-untyped-def]
    return jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())


def verify_id_token(client, token: str, portal, *, nonce: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    header = jwt.get_unverified_header(token)
    key = jwks(client)[header["kid"]]
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[header["alg"]],
        audience=portal.client_id,
        issuer="http://testserver",
        options={"verify_exp": False, "verify_iat": False},  # tests move the service clock
    )
    for name in ("iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "sid"):
        assert name in claims, name
    if nonce is not None:
        assert claims["nonce"] == nonce
    else:
        assert "nonce" not in claims
    return claims


def login_flow(client, portal, login, **params):  # type: ignore[no-untyped-def]
    result = authorize(client, portal, login=login, password=PASSWORD, **params)
    assert result.code, (result.pages, result.response.status_code, result.response.text[:300])
    return result


def tokens(client, portal, code, **extra):  # type: ignore[no-untyped-def]
    response = exchange(client, portal, code, **extra)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def test_discovery_is_complete_and_truthful(client) -> None:
    meta = client.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == "http://testserver"
    for endpoint in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ):
        assert meta[endpoint].startswith("http://testserver/")
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["request_parameter_supported"] is False
    assert {"RS256", "ES256"} == set(meta["id_token_signing_alg_values_supported"])
    algs = {k["alg"] for k in client.get(urlsplit(meta["jwks_uri"]).path).json()["keys"]}
    assert {"RS256", "ES256"} <= algs


def test_happy_path_code_flow_with_nonce_iss_and_at_hash(client, portal, account) -> None:
    _, login = account
    result = login_flow(client, portal, login, nonce="n-0S6_WzA2Mj", scope="openid profile")
    assert result.params["iss"] == "http://testserver"  # RFC 9207
    assert result.pages == ["login", "consent"]
    body = tokens(client, portal, result.code)
    claims = verify_id_token(client, body["id_token"], portal, nonce="n-0S6_WzA2Mj")
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert claims["acr"] == "urn:onecard:loa:1"
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


def test_nonce_is_optional_in_the_code_flow(client, portal, account) -> None:
    result = login_flow(client, portal, account[1])
    verify_id_token(client, tokens(client, portal, result.code)["id_token"], portal)


def test_missing_response_type_is_an_error_redirect(client, portal) -> None:
    response = client.get(
        "/oauth2/authorize",
        params={
            "client_id": portal.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "s1",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    params = parse_qs(urlsplit(response.headers["location"]).query)
    assert params["error"] == ["invalid_request"]
    assert params["state"] == ["s1"]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        REDIRECT_URI + "/extra",
        REDIRECT_URI + "?x=1",
        "https://portal.example.gov.cn/CALLBACK",
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(
    client, portal, redirect_uri
) -> None:
    response = client.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": portal.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
        },
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def test_unknown_parameters_are_tolerated_and_request_objects_refused(
    client, portal, account
) -> None:
    login_flow(client, portal, account[1], extra_param="foobar")
    response = client.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": portal.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "request": "eyJ...",
        },
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == [
        "request_not_supported"
    ]


def test_userinfo_by_get_and_post_with_scoped_claims(client, portal, account) -> None:
    member, login = account
    result = login_flow(client, portal, login, scope="openid profile email phone")
    body = tokens(client, portal, result.code)
    sub = verify_id_token(client, body["id_token"], portal)["sub"]
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    got = client.get("/oauth2/userinfo", headers=auth).json()
    posted = client.post("/oauth2/userinfo", headers=auth).json()
    assert got == posted
    assert got["sub"] == sub
    assert got["name"] == member.name
    assert got["phone_number"] == "+86" + member.phone  # E.164
    assert got["email"] == member.email
    assert "identity_number_masked" not in got


def test_essential_claims_through_the_claims_parameter(client, portal, account) -> None:
    member, login = account
    claims = {"userinfo": {"name": {"essential": True}}, "id_token": {"email": {"essential": True}}}
    result = login_flow(client, portal, login, claims=json.dumps(claims))
    body = tokens(client, portal, result.code)
    assert verify_id_token(client, body["id_token"], portal)["email"] == member.email
    info = client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    ).json()
    assert info["name"] == member.name


def test_prompt_none_without_a_session_is_login_required(client, portal) -> None:
    result = authorize(client, portal, prompt="none", state="xyz")
    assert result.params["error"] == "login_required"
    assert result.params["state"] == "xyz"


def test_prompt_none_with_a_session_is_silent_with_the_same_sub_and_auth_time(
    client, portal, account
) -> None:
    first = tokens(client, portal, login_flow(client, portal, account[1]).code)
    silent = authorize(client, portal, prompt="none")
    assert silent.code
    assert silent.pages == []
    second = tokens(client, portal, silent.code)
    a = verify_id_token(client, first["id_token"], portal)
    b = verify_id_token(client, second["id_token"], portal)
    assert (a["sub"], a["auth_time"], a["sid"]) == (b["sub"], b["auth_time"], b["sid"])


def test_prompt_login_and_max_age_force_a_new_sign_in(client, portal, account) -> None:
    with use_clock(FrozenClock()) as frozen:
        first = tokens(client, portal, login_flow(client, portal, account[1]).code)
        frozen.advance(2)
        again = authorize(client, portal, login=account[1], password=PASSWORD, prompt="login")
        assert again.pages[0] == "login"
        assert again.code
        frozen.advance(2)
        aged = authorize(client, portal, login=account[1], password=PASSWORD, max_age="1")
        assert aged.pages[0] == "login"
        later = tokens(client, portal, aged.code)
    a = verify_id_token(client, first["id_token"], portal)
    b = verify_id_token(client, later["id_token"], portal)
    assert b["auth_time"] > a["auth_time"]


def test_id_token_hint_of_the_current_subject_is_silent(client, portal, account) -> None:
    first = tokens(client, portal, login_flow(client, portal, account[1]).code)
    silent = authorize(client, portal, prompt="none", id_token_hint=first["id_token"])
    assert silent.code


def test_acr_values_step_up_needs_a_second_factor(client, runtime, portal, account) -> None:
    _member, login = account
    result = authorize(
        client, portal, login=login, password=PASSWORD, acr_values="urn:onecard:loa:2"
    )
    assert result.params["error"] == "access_denied"  # a level-1 identity cannot reach level 2
    ok = login_flow(client, portal, login, acr_values="urn:onecard:loa:1")
    assert (
        verify_id_token(client, tokens(client, portal, ok.code)["id_token"], portal)["acr"]
        == "urn:onecard:loa:1"
    )


def test_code_reuse_is_invalid_grant_and_revokes_the_first_access_token(
    client, portal, account
) -> None:
    result = login_flow(client, portal, account[1])
    first = tokens(client, portal, result.code)
    auth = {"Authorization": f"Bearer {first['access_token']}"}
    assert client.get("/oauth2/userinfo", headers=auth).status_code == 200

    reused = exchange(client, portal, result.code)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    refused = client.get("/oauth2/userinfo", headers=auth)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert (
        client.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            headers=portal.basic(),
        ).json()["error"]
        == "invalid_grant"
    )


def test_refresh_rotates_is_bound_to_its_client_and_reuse_revokes_the_family(
    client, runtime, portal, account
) -> None:
    body = tokens(client, portal, login_flow(client, portal, account[1]).code)
    other = make_portal(runtime)
    stolen = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=other.basic(),
    )
    assert stolen.json()["error"] == "invalid_grant"

    rotated = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=portal.basic(),
    )
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["refresh_token"] != body["refresh_token"]
    verify_id_token(client, fresh["id_token"], portal)

    replay = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=portal.basic(),
    )
    assert replay.json()["error"] == "invalid_grant"
    after = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
        headers=portal.basic(),
    )
    assert after.json()["error"] == "invalid_grant"  # the whole family is revoked
    assert (
        client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        ).status_code
        == 401
    )


def test_pkce_required_for_public_clients_and_never_downgraded(client, runtime, account) -> None:
    public = make_portal(runtime, client_type="public", auth_method="none")
    no_pkce = authorize(client, public)
    assert no_pkce.params["error"] == "invalid_request"
    plain = authorize(client, public, code_challenge="a" * 43, code_challenge_method="plain")
    assert plain.params["error"] == "invalid_request"

    _verifier, challenge = pkce_pair()
    result = authorize(
        client,
        public,
        login=account[1],
        password=PASSWORD,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    base = {
        "grant_type": "authorization_code",
        "code": result.code,
        "redirect_uri": REDIRECT_URI,
        "client_id": public.client_id,
    }
    wrong = client.post("/oauth2/token", data={**base, "code_verifier": pkce_pair()[0]})
    assert wrong.json()["error"] == "invalid_grant"


def test_a_verifier_without_a_challenge_is_refused(client, portal, account) -> None:
    result = login_flow(client, portal, account[1])
    response = exchange(client, portal, result.code, code_verifier=pkce_pair()[0])
    assert response.json()["error"] == "invalid_grant"


def test_client_credentials_introspection_and_revocation(client, runtime) -> None:
    terminal = make_portal(
        runtime,
        grant_types=("client_credentials",),
        redirect_uris=(),
        post_logout_redirect_uris=(),
        scopes=("card:verify",),
    )
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "card:verify"},
        headers=terminal.basic(),
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert "refresh_token" not in response.json()
    active = client.post(
        "/oauth2/introspect", data={"token": token}, headers=terminal.basic()
    ).json()
    assert active["active"] is True
    assert active["client_id"] == terminal.client_id
    assert active["scope"] == "card:verify"
    assert (
        client.post("/oauth2/revoke", data={"token": token}, headers=terminal.basic()).status_code
        == 200
    )
    assert client.post(
        "/oauth2/introspect", data={"token": token}, headers=terminal.basic()
    ).json() == {"active": False}
    wrong = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "card:verify"},
        headers=make_portal(runtime).basic(),
    )
    assert wrong.json()["error"] == "unauthorized_client"
    bad_secret = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{terminal.client_id}:nope".encode()).decode()
        },
    )
    assert bad_secret.status_code == 401
    assert bad_secret.headers["WWW-Authenticate"].startswith("Basic")


def _forged(client, token: str, runtime) -> list[str]:  # type: ignore[no-untyped-def]
    _header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    none_token = jwt.encode(claims, None, algorithm="none")
    rsa_public = next(
        k for k in client.get("/.well-known/jwks.json").json()["keys"] if k["kty"] == "RSA"
    )
    hs_header = {"alg": "HS256", "typ": "at+jwt", "kid": rsa_public["kid"]}
    signing_input = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in (hs_header, claims)
    )
    mac = hmac.new(json.dumps(rsa_public).encode(), signing_input.encode(), hashlib.sha256)
    hs_token = signing_input + "." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    return [none_token, hs_token]


def test_alg_none_and_hs256_with_a_public_key_are_refused_everywhere(
    client, runtime, portal, account
) -> None:
    body = tokens(client, portal, login_flow(client, portal, account[1]).code)
    for forged in _forged(client, body["access_token"], runtime):
        assert (
            client.get(
                "/oauth2/userinfo", headers={"Authorization": f"Bearer {forged}"}
            ).status_code
            == 401
        )
        assert (
            client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        )
        assert client.post(
            "/oauth2/introspect", data={"token": forged}, headers=portal.basic()
        ).json() == {"active": False}
    for forged in _forged(client, body["id_token"], runtime):
        response = client.get(
            "/oauth2/logout",
            params={
                "id_token_hint": forged,
                "post_logout_redirect_uri": "https://portal.example.gov.cn/bye",
            },
            follow_redirects=False,
        )
        assert response.status_code == 400
        assert "location" not in response.headers


def test_portal_tokens_cannot_use_onecards_own_apis(client, portal, account) -> None:
    body = tokens(
        client, portal, login_flow(client, portal, account[1], scope="openid profile").code
    )
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_rp_initiated_logout_redirects_only_to_a_registered_uri_and_ends_the_session(
    client, portal, account
) -> None:
    body = tokens(client, portal, login_flow(client, portal, account[1]).code)
    bad = client.get(
        "/oauth2/logout",
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert bad.status_code == 400
    response = client.get(
        "/oauth2/logout",
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://portal.example.gov.cn/bye",
            "state": "st",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://portal.example.gov.cn/bye?state=st"
    assert authorize(client, portal, prompt="none").params["error"] == "login_required"
    assert (
        client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        ).status_code
        == 401
    )


def test_consent_is_remembered_listed_and_withdrawable(client, runtime, portal, account) -> None:
    member, login = account
    first = login_flow(client, portal, login, scope="openid profile")
    assert "consent" in first.pages
    body = tokens(client, portal, first.code)
    again = authorize(client, portal, scope="openid profile")
    assert again.code
    assert "consent" not in again.pages
    wider = authorize(client, portal, scope="openid profile email")
    assert wider.pages == ["consent"]
    from onecard.identity.oidc.clients import get_client
    from onecard.identity.oidc.consent import withdraw_consent

    with runtime.database.session() as session:
        withdraw_consent(
            session, member.id, get_client(session, portal.client_id), actor=Actor.person(member.id)
        )
    refresh = client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=portal.basic(),
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_forms_need_the_csrf_token(client, portal) -> None:
    page = authorize(client, portal)
    assert page.pages == ["login"]
    response = client.post(
        "/oauth2/authorize/login",
        data={"csrf_token": "x", "txn": "y", "login": "a", "password": "b", "action": "login"},
    )
    assert response.status_code == 403


def test_pairwise_subjects_differ_per_sector(client, runtime, account) -> None:
    a = make_portal(
        runtime, subject_type="pairwise", redirect_uris=("https://a.example.gov.cn/cb",)
    )
    b = make_portal(
        runtime, subject_type="pairwise", redirect_uris=("https://b.example.gov.cn/cb",)
    )
    subs = []
    for p in (a, b):
        client.cookies.clear()
        result = login_flow(client, p, account[1])
        subs.append(verify_id_token(client, tokens(client, p, result.code)["id_token"], p)["sub"])
    assert subs[0] != subs[1]
    assert str(account[0].id) not in subs


def test_expired_access_token_is_refused(client, portal, account) -> None:
    with use_clock(FrozenClock()) as frozen:
        body = tokens(client, portal, login_flow(client, portal, account[1]).code)
        frozen.advance(body["expires_in"] + 6)
        response = client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
    assert response.status_code == 401
    assert time.time() > 0


def test_a_sign_in_form_expires_after_ten_minutes(client, portal, account) -> None:
    from tests.oidc_flow import form_fields

    with use_clock(FrozenClock()) as frozen:
        page = client.get(
            "/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": portal.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "openid",
            },
        )
        fields = form_fields(page.text)
        frozen.advance(601)
        response = client.post(
            "/oauth2/authorize/login",
            data={
                "csrf_token": fields["csrf_token"],
                "txn": fields["txn"],
                "login": account[1],
                "password": PASSWORD,
                "action": "login",
            },
            follow_redirects=False,
        )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "interaction_expired" in response.text


def test_the_request_state_is_bound_to_its_browser(client, runtime, portal) -> None:
    from fastapi.testclient import TestClient

    from tests.oidc_flow import form_fields

    page = client.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": portal.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
        },
    )
    fields = form_fields(page.text)
    with TestClient(client.app) as other:
        other.get(
            "/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": portal.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "openid",
            },
        )  # the other browser has a CSRF cookie of its own
        stolen = other.post(
            "/oauth2/authorize/login",
            data={**fields, "login": "x", "password": "y", "action": "login"},
            follow_redirects=False,
        )
    assert stolen.status_code == 403


def test_the_consent_page_names_the_identifier_for_what_it_is(client, runtime, account) -> None:
    from onecard.api.i18n import MESSAGES

    for subject_type, key in (("public", "attr.sub_public"), ("pairwise", "attr.sub")):
        client.cookies.clear()
        portal = make_portal(runtime, subject_type=subject_type)
        result = authorize(client, portal, login=account[1], password=PASSWORD, consent=False)
        assert "consent" in result.pages
        page = client.get(
            "/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": portal.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "openid",
            },
        )
        assert MESSAGES["zh-CN"][key] in page.text


def test_another_package_supplies_the_card_claims_through_the_hook(client, portal, account) -> None:
    from onecard.identity.oidc import claims as claims_module

    def card_claims(session, person):  # type: ignore[no-untyped-def]
        return {"card_status": "active", "card_kinds": ["transit"], "not_asked": True}

    claims_module.register_claims_provider("card", card_claims)
    try:
        result = login_flow(client, portal, account[1], scope="openid card")
        body = tokens(client, portal, result.code)
        info = client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        ).json()
    finally:
        claims_module._providers.pop("card")
    assert info["card_status"] == "active"
    assert info["card_kinds"] == ["transit"]
    assert "not_asked" not in info  # only the claims of the scope asked for
