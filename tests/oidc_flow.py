"""Drive the real authorization code flow from tests: a browser (the TestClient with its
cookie jar) signs in through the HTML forms, and a portal exchanges the code.

Tests of onecard's own APIs get their tokens this way, so they exercise the same path a
citizen does. The independent-client tests are in tests/interop/.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

from onecard.core.audit import Actor
from onecard.identity.oidc.clients import ClientSpec, create_client

REDIRECT_URI = "https://portal.example.gov.cn/callback"


@dataclass
class Portal:
    client_id: str
    secret: str | None
    redirect_uri: str = REDIRECT_URI
    scopes: tuple[str, ...] = ()

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def make_portal(runtime, **spec) -> Portal:  # type: ignore[no-untyped-def]
    """Register a client (defaults: a confidential first-party portal with every scope)."""
    values = {
        "name": "测试门户",
        "redirect_uris": (REDIRECT_URI,),
        "post_logout_redirect_uris": ("https://portal.example.gov.cn/bye",),
        "scopes": (
            "openid",
            "profile",
            "phone",
            "email",
            "identity",
            "card",
            "enterprise",
            "account",
            "staff",
        ),
    }
    values.update(spec)
    with runtime.database.session() as session:
        client, secret = create_client(session, ClientSpec(**values), actor=Actor.system())
    redirect = values["redirect_uris"][0] if values["redirect_uris"] else ""
    return Portal(client.client_id, secret, redirect, values["scopes"])


def form_fields(html: str) -> dict[str, str]:
    return {
        unescape(m.group(1)): unescape(m.group(2))
        for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
    }


def form_action(html: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert match, html[:500]
    return unescape(match.group(1))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


@dataclass
class FlowResult:
    response: object  # the last HTTP response
    code: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    pages: list[str] = field(default_factory=list)

    @property
    def page_error(self) -> str | None:
        """The error code the last page shows (``data-error``), if any."""
        match = re.search(r'data-error="([^"]*)"', getattr(self.response, "text", ""))
        return match.group(1) if match and match.group(1) else None


def authorize(
    browser,  # type: ignore[no-untyped-def]
    portal: Portal,
    *,
    login: str | None = None,
    password: str | None = None,
    totp: str | None = None,
    recovery_code: str | None = None,
    enterprise_id: str | None = None,
    consent: bool = True,
    **params: str,
) -> FlowResult:
    """Walk the authorization flow, answering each page, until a redirect to the portal."""
    query = {
        "response_type": "code",
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
    }
    query.update(params)
    response = browser.get("/oauth2/authorize?" + urlencode(query), follow_redirects=False)
    result = FlowResult(response)
    for _ in range(6):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            result.params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            result.code = result.params.get("code")
            return result
        if response.status_code not in (200, 429) or "<form" not in response.text:
            return result
        html = response.text
        action = form_action(html)
        step = action.rsplit("/", 1)[-1]
        result.pages.append(step)
        fields = form_fields(html)
        data = {"csrf_token": fields["csrf_token"], "txn": fields["txn"]}
        if step == "login":
            if login is None or (len(result.pages) > 1 and result.pages[-2] == "login"):
                return result
            data.update(login=login, password=password or "", action="login")
        elif step == "totp":
            if (totp is None and recovery_code is None) or result.pages.count("totp") > 1:
                return result
            data.update(action="verify")
            data.update({"code": totp} if totp else {"recovery_code": recovery_code or ""})
        elif step == "enterprise":
            if enterprise_id is None:
                return result
            data.update(action="choose", enterprise_id=enterprise_id)
        elif step == "consent":
            data.update(action="allow" if consent else "deny")
        else:
            return result
        response = browser.post(action, data=data, follow_redirects=False)
        result.response = response
    return result


def exchange(browser, portal: Portal, code: str, **extra: str):  # type: ignore[no-untyped-def]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": portal.redirect_uri}
    data.update(extra)
    return browser.post("/oauth2/token", data=data, headers=portal.basic())


def sign_in(
    browser,
    runtime,
    login: str,
    password: str,
    *,
    totp: str | None = None,
    scope: str = "openid account",
    portal: Portal | None = None,
    **params: str,
):  # type: ignore[no-untyped-def]
    """Sign in through the code flow; returns (FlowResult, token response or None)."""
    portal = portal or make_portal(runtime)
    result = authorize(
        browser, portal, login=login, password=password, totp=totp, scope=scope, **params
    )
    if result.code is None:
        return result, None
    return result, exchange(browser, portal, result.code)


def bearer_of(token_response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert token_response.status_code == 200, token_response.text
    return {"Authorization": f"Bearer {token_response.json()['access_token']}"}
