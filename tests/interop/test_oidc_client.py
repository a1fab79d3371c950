"""Full flows driven by an independent OpenID Connect client: Authlib's OAuth2Session (over
real HTTP to onecard served by uvicorn on 127.0.0.1) for the protocol, and joserfc with
Authlib's ``CodeIDToken`` rules for validating every ID token (iss, aud, exp, iat, nonce,
at_hash). Only the citizen's browser steps (the HTML forms) are ours.
"""

from __future__ import annotations

import re
import secrets
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet

from onecard.core.audit import Actor
from onecard.identity.credentials import set_password
from tests.factories import person
from tests.interop.live_server import live_onecard
from tests.oidc_flow import make_portal

PASSWORD = "correct horse battery"
REDIRECT = "https://portal.example.gov.cn/callback"


@pytest.fixture(scope="module")
def server(database_factory, master_key, tmp_path_factory):  # type: ignore[no-untyped-def]
    with live_onecard(database_factory, master_key, tmp_path_factory, "interop") as live:
        yield live.base, live.runtime


@pytest.fixture
def citizen_login(server) -> str:  # type: ignore[no-untyped-def]
    _, runtime = server
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, with_phone=True)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
        return member.phone


def metadata(base: str) -> dict:
    return requests.get(base + "/.well-known/openid-configuration", timeout=5).json()


def browser_sign_in(url: str, login: str) -> tuple[str, requests.Session]:
    """The citizen's part: fill the forms the authorization endpoint shows; the redirect and
    the browser (its cookies hold the sign-on session)."""
    browser = requests.Session()
    response = browser.get(url, allow_redirects=False, timeout=5)
    for _ in range(5):
        if response.status_code in (302, 303):
            return response.headers["location"], browser
        html = response.text
        action = unescape(re.search(r'<form[^>]*action="([^"]+)"', html).group(1))
        fields = {
            unescape(m.group(1)): unescape(m.group(2))
            for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
        }
        data = {"csrf_token": fields["csrf_token"], "txn": fields["txn"]}
        data.update(
            {"login": login, "password": PASSWORD, "action": "login"}
            if action.endswith("/login")
            else {"action": "allow"}
        )
        base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        response = browser.post(base + action, data=data, allow_redirects=False, timeout=5)
    raise AssertionError("the flow did not finish")


def validate_id_token(
    base: str, id_token: str, client_id: str, nonce: str | None, access_token: str
) -> dict:
    keys = KeySet.import_key_set(requests.get(metadata(base)["jwks_uri"], timeout=5).json())
    token = jose_jwt.decode(id_token, keys, algorithms=["RS256", "ES256"])
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={"iss": {"essential": True, "value": base}},
        params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate()  # iss, aud, exp, iat, nonce, at_hash, auth_time
    return dict(claims)


def test_code_flow_with_pkce_refresh_userinfo_introspection_revocation_and_logout(
    server, citizen_login
) -> None:
    base, runtime = server
    portal = make_portal(runtime, post_logout_redirect_uris=("https://portal.example.gov.cn/bye",))
    meta = metadata(base)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    oauth = OAuth2Session(
        portal.client_id,
        portal.secret,
        scope="openid profile phone",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    url, _state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback, browser = browser_sign_in(url, citizen_login)
    assert parse_qs(urlsplit(callback).query)["iss"] == [base]
    token = oauth.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    claims = validate_id_token(
        base, token["id_token"], portal.client_id, nonce, token["access_token"]
    )

    info = oauth.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"]
    assert info["phone_number"] == "+86" + citizen_login  # E.164

    refreshed = oauth.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    # OIDC Core §12.2: the refreshed ID token, validated the same way (no nonce this time).
    again = validate_id_token(
        base, refreshed["id_token"], portal.client_id, None, refreshed["access_token"]
    )
    assert (again["sub"], again["auth_time"], again["sid"]) == (
        claims["sub"],
        claims["auth_time"],
        claims["sid"],
    )
    assert "nonce" not in again

    introspected = oauth.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    ).json()
    assert introspected["active"] is True
    assert introspected["sub"] == claims["sub"]

    oauth.revoke_token(
        meta["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert oauth.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    ).json() == {"active": False}

    second = OAuth2Session(portal.client_id, portal.secret, scope="openid", redirect_uri=REDIRECT)
    silent_url, _ = second.create_authorization_url(meta["authorization_endpoint"], prompt="none")
    logout = browser.get(
        meta["end_session_endpoint"],
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": "https://portal.example.gov.cn/bye",
            "state": "s",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert logout.status_code == 303
    assert logout.headers["location"] == "https://portal.example.gov.cn/bye?state=s"
    after = browser.get(silent_url, allow_redirects=False, timeout=5)
    assert parse_qs(urlsplit(after.headers["location"]).query)["error"] == ["login_required"]


def test_client_credentials_with_private_key_jwt(server) -> None:
    base, runtime = server
    private = ec.generate_private_key(ec.SECP256R1())
    key = ECKey.import_key(private)
    jwk = key.as_dict(private=False)
    jwk["kid"] = "terminal-1"
    terminal = make_portal(
        runtime,
        grant_types=("client_credentials",),
        redirect_uris=(),
        post_logout_redirect_uris=(),
        scopes=("card:verify",),
        auth_method="private_key_jwt",
        jwks={"keys": [jwk]},
    )
    meta = metadata(base)
    oauth = OAuth2Session(
        terminal.client_id,
        key,
        token_endpoint_auth_method=PrivateKeyJWT(
            meta["token_endpoint"], alg="ES256", headers={"kid": "terminal-1"}
        ),
        scope="card:verify",
    )
    token = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"].lower() == "bearer"
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    decoded = jose_jwt.decode(token["access_token"], keys, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["client_id"] == terminal.client_id
    assert decoded.claims["aud"] == base
