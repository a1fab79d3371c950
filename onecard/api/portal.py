"""Signing in to onecard's own pages (the citizen's card, the counter).

Each page is a relying party of onecard's own provider, as the built-in public client
``onecard-portal`` (:mod:`onecard.identity.oidc.first_party`): a visitor without a page
session is sent through the authorization code flow with PKCE (RFC 7636) and ``state``; the
page's callback checks ``state`` and ``iss`` (RFC 9207), redeems the code and keeps the grant
it made in a sealed cookie scoped to the page's path. Every request re-reads that grant, its
sign-in session and the person's standing, so a logout, an ended session, a suspended account
or a withdrawn staff role closes the page at once, on every worker (DESIGN.md §2).

A page asks only for what it needs: the card page the ``account`` scope at any level, the
counter page the ``staff`` scope at assurance level 2, which the flow reaches by asking for a
second factor (step-up). Its forms carry a CSRF token derived from the page's session cookie.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from onecard.api.browser import csrf_ok, csrf_token, delete_cookie, same_text, set_cookie
from onecard.api.deps import Principal, grant_principal
from onecard.api.pages import negotiate_locale, render
from onecard.api.runtime import Runtime
from onecard.core import clock
from onecard.core.jose import b64url, b64url_decode
from onecard.core.sealing import SealedValueError
from onecard.identity.models import AssuranceLevel
from onecard.identity.oidc.discovery import AUTHORIZE_PATH, END_SESSION_PATH
from onecard.identity.oidc.errors import OAuthError
from onecard.identity.oidc.first_party import (
    PORTAL_CLIENT_ID,
    ensure_portal_client,
    live_portal_grant,
    portal_client,
    redeem_portal_code,
)

_SIGN_IN_SECONDS = 600  # as long as the provider keeps a sign-in in progress
_MAX_COOKIE = 4096


@dataclass(frozen=True)
class PortalPage:
    """One of onecard's pages: where it lives and what its visitor must hold."""

    name: str
    path: str
    scope: str
    level: int

    @property
    def session_cookie(self) -> str:
        return f"oc_{self.name}"

    @property
    def sign_in_cookie(self) -> str:
        return f"oc_{self.name}_signin"

    @property
    def callback_path(self) -> str:
        return f"{self.path}/callback"


CARD_PAGE = PortalPage("card", "/card", "openid account", AssuranceLevel.LOW)
COUNTER_PAGE = PortalPage("counter", "/counter", "openid staff", AssuranceLevel.SUBSTANTIAL)
PAGES = (CARD_PAGE, COUNTER_PAGE)


def locale_of(request: Request) -> str:
    return negotiate_locale(
        request.query_params.get("ui_locales"), request.headers.get("accept-language")
    )


def error_page(request: Request, error: str, description: str, status: int = 400) -> Response:
    return render(
        "error.html",
        locale=locale_of(request),
        status_code=status,
        error=error,
        description=description,
    )


# -- the pages' session -------------------------------------------------------------------


def _seal(runtime: Runtime, page: PortalPage, purpose: str, value: dict[str, Any]) -> str:
    data = json.dumps(value, separators=(",", ":")).encode()
    return b64url(runtime.sealer.seal(data, table="portal", column=purpose, row_id=page.name))


def _open(runtime: Runtime, page: PortalPage, purpose: str, text: str | None) -> dict[str, Any]:
    """The sealed cookie's content; ``{}`` when missing, forged, or from another page."""
    if not text or len(text) > _MAX_COOKIE:
        return {}
    try:
        data = runtime.sealer.open(
            b64url_decode(text), table="portal", column=purpose, row_id=page.name
        )
        value = json.loads(data)
    except (SealedValueError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def page_principal(
    runtime: Runtime, session: Session, request: Request, page: PortalPage
) -> Principal | None:
    """Who is on ``page``: the person of its live grant, at the level it was signed in with;
    ``None`` when they must sign in (again), for instance to reach the page's level."""
    value = _open(runtime, page, "session", request.cookies.get(page.session_cookie))
    try:
        grant_id = uuid.UUID(str(value.get("grant")))
    except ValueError:
        return None
    grant = live_portal_grant(session, grant_id)
    if grant is None or not set(page.scope.split()) <= set(grant.scope.split()):
        return None
    principal = grant_principal(session, grant)
    if principal is None or principal.level < page.level:
        return None
    return principal


def _csrf_binding(request: Request, page: PortalPage) -> str | None:
    cookie = request.cookies.get(page.session_cookie)
    return f"{page.name}:{cookie}" if cookie else None


def page_csrf_token(runtime: Runtime, request: Request, page: PortalPage) -> str:
    """The CSRF token of ``page``'s forms, bound to its session cookie."""
    return csrf_token(runtime, _csrf_binding(request, page) or f"{page.name}:")


def page_csrf_ok(runtime: Runtime, request: Request, page: PortalPage, token: object) -> bool:
    return csrf_ok(runtime, _csrf_binding(request, page), token)


# -- signing in ---------------------------------------------------------------------------


def _redirect_uris(runtime: Runtime) -> list[str]:
    return [runtime.provider.issuer + page.callback_path for page in PAGES]


def logout_url(runtime: Runtime, page: PortalPage) -> str:
    """RP-initiated logout, back to ``page`` (which then asks to sign in again)."""
    query = urlencode(
        {
            "client_id": PORTAL_CLIENT_ID,
            "post_logout_redirect_uri": runtime.provider.issuer + page.path,
        }
    )
    return f"{END_SESSION_PATH}?{query}"


def _ensure_client(runtime: Runtime) -> None:
    redirect_uris = _redirect_uris(runtime)
    logout_uris = [runtime.provider.issuer + page.path for page in PAGES]
    with runtime.database.read_session() as session:
        client = portal_client(session)
        if (
            client is not None
            and client.redirect_uris == redirect_uris
            and client.post_logout_redirect_uris == logout_uris
        ):
            return
    try:
        with runtime.database.session() as session:
            ensure_portal_client(session, redirect_uris, logout_uris)
    except IntegrityError:
        pass  # another worker made it a moment ago


def start_sign_in(runtime: Runtime, request: Request, page: PortalPage) -> Response:
    """Send the browser to the authorization endpoint to sign in to ``page``."""
    _ensure_client(runtime)
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": PORTAL_CLIENT_ID,
        "redirect_uri": runtime.provider.issuer + page.callback_path,
        "scope": page.scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if page.level > AssuranceLevel.LOW:
        params["acr_values"] = f"urn:onecard:loa:{page.level}"
    if ui_locales := request.query_params.get("ui_locales"):
        params["ui_locales"] = ui_locales[:100]
    response = RedirectResponse(f"{AUTHORIZE_PATH}?{urlencode(params)}", status_code=303)
    pending = {
        "state": state,
        "verifier": verifier,
        "at": int(clock.now().timestamp()),
        "next": _return_to(request, page),
    }
    set_cookie(
        runtime,
        response,
        page.sign_in_cookie,
        _seal(runtime, page, "sign_in", pending),
        path=page.callback_path,
        max_age=_SIGN_IN_SECONDS,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _return_to(request: Request, page: PortalPage) -> str:
    """Where to go once signed in: the page as it was asked for (``?purpose=…``), when that
    was a plain visit to the page itself; the page otherwise (never another site)."""
    if request.method != "GET" or request.url.path != page.path:
        return page.path
    query = request.url.query
    return f"{page.path}?{query}" if query and len(query) < 200 else page.path


def finish_sign_in(runtime: Runtime, request: Request, page: PortalPage) -> Response:
    """The page's redirect URI: check the answer is to this browser's request, redeem the
    code, and open the page."""
    response = _signed_in(runtime, request, page)
    delete_cookie(runtime, response, page.sign_in_cookie, path=page.callback_path)
    return response


def _signed_in(runtime: Runtime, request: Request, page: PortalPage) -> Response:
    pending = _open(runtime, page, "sign_in", request.cookies.get(page.sign_in_cookie))
    query = request.query_params
    state = query.get("state")
    fresh = clock.now().timestamp() - float(pending.get("at", 0)) < _SIGN_IN_SECONDS
    if not (fresh and state and same_text(str(pending.get("state")), state)):
        # Not this browser's sign-in, or an old one. No automatic retry: a browser refusing
        # cookies would go round the flow forever.
        return error_page(
            request, "sign_in_expired", f"the sign-in has expired; open {page.path} again"
        )
    if query.get("iss") != runtime.provider.issuer:  # RFC 9207 §2.4: mix-up defence
        return error_page(request, "invalid_issuer", "the answer did not come from onecard")
    if error := query.get("error"):
        description = query.get("error_description") or "the sign-in did not complete"
        return error_page(request, error[:64], description[:300], status=403)
    try:
        with runtime.database.session() as session:
            grant = redeem_portal_code(
                session,
                runtime.provider,
                query.get("code") or "",
                runtime.provider.issuer + page.callback_path,
                str(pending.get("verifier")),
            )
    except OAuthError as exc:
        return error_page(request, exc.error, exc.description)
    next_path = str(pending.get("next") or page.path)
    if not next_path.startswith(page.path):  # sealed by us, but checked all the same
        next_path = page.path
    response = RedirectResponse(next_path, status_code=303)
    sealed = _seal(runtime, page, "session", {"grant": str(grant.id)})
    set_cookie(runtime, response, page.session_cookie, sealed, path=page.path)
    return response
