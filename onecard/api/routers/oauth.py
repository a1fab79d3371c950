"""The OpenID Connect provider's HTTP endpoints: discovery, authorization (with its sign-in,
second-factor, enterprise and consent pages), token, userinfo, introspection, revocation and
RP-initiated logout.

This module only converts HTTP to the plain calls of :mod:`onecard.identity.oidc` and back.
Pages are forms protected by a CSRF token derived from a per-browser cookie; the request in
progress travels sealed in the form (see :mod:`onecard.identity.oidc.interaction`). OAuth
errors use the RFC 6749 format (JSON on back-channel endpoints, redirect parameters from the
authorization endpoint once the redirect URI is trusted, an error page before that).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from onecard.api.browser import csrf_ok, csrf_token, delete_cookie, set_cookie
from onecard.api.deps import RuntimeDep
from onecard.api.middleware import BASE_CSP
from onecard.api.pages import negotiate_locale, render
from onecard.api.runtime import Runtime
from onecard.api.token_lane import NO_STORE, credentials_from, oauth_error_response
from onecard.core.audit import Actor
from onecard.core.once import COMMIT_ON_ERROR
from onecard.identity.credentials import has_totp as second_factor_enrolled
from onecard.identity.models import Person
from onecard.identity.oidc import authorize as authz
from onecard.identity.oidc.claims import consent_attributes
from onecard.identity.oidc.client_auth import (
    ClientCredentials,
    authenticate_client,
)
from onecard.identity.oidc.consent import grant_consent
from onecard.identity.oidc.discovery import (
    AUTHORIZE_PATH,
    END_SESSION_PATH,
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    provider_metadata,
)
from onecard.identity.oidc.errors import InvalidClient, InvalidRedirect, InvalidRequest, OAuthError
from onecard.identity.oidc.interaction import (
    Interaction,
    InteractionExpired,
    open_interaction,
    seal_interaction,
)
from onecard.identity.oidc.introspection import introspect, revoke
from onecard.identity.oidc.logout import LogoutRequest, parse_logout
from onecard.identity.oidc.models import Client, SsoSession, SubjectType
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.sessions import end_session, live_session, reauthenticate, start_session
from onecard.identity.oidc.token import token_request
from onecard.identity.oidc.userinfo import userinfo
from onecard.identity.signin import SignInResult, check_password, check_second_factor

router = APIRouter(tags=["openid connect"])

SESSION_COOKIE = "oc_session"
CSRF_COOKIE = "oc_csrf"
_COOKIE_PATH = "/oauth2"
_FORM = "application/x-www-form-urlencoded"


# -- discovery ----------------------------------------------------------------------------


@router.get("/.well-known/openid-configuration", summary="OpenID Provider metadata (Discovery 1.0)")
def openid_configuration(runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(
        provider_metadata(runtime.provider.issuer),
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


# -- helpers ------------------------------------------------------------------------------


def _csrf_ok(runtime: Runtime, request: Request, form: Mapping[str, Any]) -> bool:
    return csrf_ok(runtime, request.cookies.get(CSRF_COOKIE), form.get("csrf_token"))


def _set_cookie(runtime: Runtime, response: Response, name: str, value: str, **extra: Any) -> None:
    set_cookie(runtime, response, name, value, path=_COOKIE_PATH, **extra)


def _allow_form_redirect(response: Response, uri: str | None) -> None:
    """Browsers apply CSP form-action to the redirect that answers a form post: the portal's
    origin must be allowed, or the final redirect back to it would be blocked. Only call this
    with a URI already checked against the client's registration."""
    target = urlsplit(uri or "")
    if target.scheme in ("http", "https") and target.netloc:
        origin = f"{target.scheme}://{target.netloc}"
        response.headers["Content-Security-Policy"] = f"{BASE_CSP} {origin}"


def _locale(request: Request, interaction: Interaction | None = None) -> str:
    ui_locales = interaction.params.get("ui_locales") if interaction else None
    ui_locales = ui_locales or request.query_params.get("ui_locales")
    return negotiate_locale(ui_locales, request.headers.get("accept-language"))


def _error_page(request: Request, error: str, description: str, status: int = 400) -> Response:
    return render(
        "error.html",
        locale=_locale(request),
        status_code=status,
        error=error,
        description=description,
    )


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    form = await request.form()
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise InvalidRequest("file uploads are not accepted")
        if name in values:
            # RFC 6749 §3.1: parameters must not be included more than once.
            raise InvalidRequest(f"parameter {name} is repeated")
        values[name] = value
    return values


async def _form_page(request: Request, work: Callable[[dict[str, str]], Response]) -> Response:
    """Parse a page's form (an error page if it is not one) and run ``work`` on it in the
    thread pool."""
    try:
        form = await _form(request)
    except OAuthError as exc:
        return _error_page(request, exc.error, exc.description)
    return await run_in_threadpool(work, form)


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


# -- the authorization endpoint and its pages ---------------------------------------------


class _Flow:
    """One step of the authorization flow for one browser request."""

    def __init__(self, runtime: Runtime, request: Request, csrf_cookie: str) -> None:
        self.runtime, self.request, self.csrf_cookie = runtime, request, csrf_cookie
        self.new_session_cookie: str | None = None

    @property
    def provider(self) -> Provider:
        return self.runtime.provider

    def session_cookie(self) -> str | None:
        return self.new_session_cookie or self.request.cookies.get(SESSION_COOKIE)

    def finish(self, response: Response) -> Response:
        if self.request.cookies.get(CSRF_COOKIE) != self.csrf_cookie:
            _set_cookie(self.runtime, response, CSRF_COOKIE, self.csrf_cookie)
        if self.new_session_cookie:
            _set_cookie(self.runtime, response, SESSION_COOKIE, self.new_session_cookie)
        return response

    def page(self, template: str, interaction: Interaction, **context: Any) -> Response:
        response = render(
            template,
            locale=_locale(self.request, interaction),
            action=f"{AUTHORIZE_PATH}/{template.removesuffix('.html')}",
            csrf_token=csrf_token(self.runtime, self.csrf_cookie),
            txn=seal_interaction(self.runtime.sealer, interaction, self.csrf_cookie),
            **context,
        )
        _allow_form_redirect(response, interaction.params.get("redirect_uri"))
        return self.finish(response)

    def redirect(self, location: str) -> Response:
        return self.finish(RedirectResponse(location, status_code=303))

    def proceed(
        self,
        session: Session,
        client: Client,
        request: authz.AuthorizationRequest,
        interaction: Interaction,
        *,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> Response:
        sso = live_session(session, self.session_cookie())
        try:
            decision = authz.decide(session, self.provider, client, request, sso, interaction)
        except OAuthError as exc:
            redirect = authz.RedirectError(exc, request.redirect_uri, request.state)
            return self.redirect(redirect.location(self.provider.issuer))
        common = {"client_name": client.name, "error": error, "retry_after": retry_after}
        if decision.step == authz.Step.LOGIN:
            return self.page(
                "login.html",
                interaction,
                login_hint=request.login_hint,
                reauth=decision.reauth,
                **common,
            )
        if decision.step == authz.Step.TOTP:
            person_id = interaction.pending_person or (sso.person_id if sso else None)
            enrolled = person_id is not None and second_factor_enrolled(
                session, uuid.UUID(str(person_id))
            )
            return self.page(
                "totp.html",
                interaction,
                # Without an authenticator the page can only explain the level asked for.
                step_up=decision.step_up or not enrolled,
                totp_enrolled=enrolled,
                **common,
            )
        assert sso is not None
        if decision.step == authz.Step.ENTERPRISE:
            return self.page(
                "enterprise.html",
                interaction,
                client_name=client.name,
                enterprises=authz.enterprise_choices(session, sso.person_id),
            )
        if decision.step == authz.Step.CONSENT:
            return self.page(
                "consent.html",
                interaction,
                client_name=client.name,
                attributes=consent_attributes(
                    decision.claims, pairwise=client.subject_type == SubjectType.PAIRWISE
                ),
            )
        location = authz.issue_code(session, self.provider, client, request, sso, interaction)
        return self.redirect(location)

    def signed_in(
        self, session: Session, person: Person, amr: list[str], sso: SsoSession | None
    ) -> None:
        """Start a session for ``person`` (or re-authenticate the current one)."""
        level = authz.session_level(person, amr)
        if sso is not None and sso.person_id == person.id:
            reauthenticate(session, sso, level=level, amr=amr)
            return
        if sso is not None:  # another person signs in on this browser: end the old session
            end_session(
                session, self.provider, sso, reason="replaced", actor=Actor.person(sso.person_id)
            )
        cookie, _ = start_session(
            session,
            self.provider,
            person,
            level=level,
            amr=amr,
            user_agent=self.request.headers.get("user-agent"),
        )
        self.new_session_cookie = cookie


def _new_csrf_cookie(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _start(runtime: Runtime, request: Request, params: Mapping[str, str]) -> Response:
    flow = _Flow(runtime, request, _new_csrf_cookie(request))
    with runtime.database.session() as session:
        try:
            client, areq = authz.parse_request(session, runtime.provider, params)
        except InvalidRedirect as exc:
            return _error_page(request, exc.error, exc.description)
        except authz.RedirectError as exc:
            return RedirectResponse(exc.location(runtime.provider.issuer), status_code=303)
        interaction = Interaction(params={k: v for k, v in params.items() if len(v) <= 4096})
        return flow.proceed(session, client, areq, interaction)


@router.get(AUTHORIZE_PATH, summary="Authorization endpoint (code flow)", include_in_schema=True)
def authorize_get(request: Request, runtime: RuntimeDep) -> Response:
    params = dict(request.query_params.items())
    return _start(runtime, request, params)


@router.post(AUTHORIZE_PATH, summary="Authorization endpoint (form post)")
async def authorize_post(request: Request, runtime: RuntimeDep) -> Response:
    return await _form_page(request, lambda params: _start(runtime, request, params))


StepHandler = Callable[..., Response]
Before = Callable[[Runtime, Request, dict[str, str]], Any]


async def _continue(
    request: Request, runtime: Runtime, handler: StepHandler, before: Before | None = None
) -> Response:
    return await _form_page(
        request, lambda form: _continue_sync(request, runtime, handler, form, before)
    )


def _continue_sync(
    request: Request,
    runtime: Runtime,
    handler: StepHandler,
    form: dict[str, str],
    before: Before | None,
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not _csrf_ok(runtime, request, form):
        return _error_page(
            request, "csrf", "the form has expired; start again from the portal", 403
        )
    try:
        interaction = open_interaction(runtime.sealer, form.get("txn", ""), cookie)
    except InteractionExpired as exc:
        return _error_page(request, "interaction_expired", str(exc))
    flow = _Flow(runtime, request, cookie)
    # Work that must not hold a transaction (the password hash) runs before the step's one.
    pre = before(runtime, request, form) if before and form.get("action") != "cancel" else None
    with runtime.database.session() as session:
        try:
            client, areq = authz.parse_request(session, runtime.provider, interaction.params)
        except InvalidRedirect as exc:
            return _error_page(request, exc.error, exc.description)
        except authz.RedirectError as exc:
            return flow.redirect(exc.location(runtime.provider.issuer))
        if form.get("action") == "cancel":
            return _cancel(flow, areq)
        step = _Step(flow, session, client, areq, interaction)
        return handler(step, form, pre) if before is not None else handler(step, form)


def _cancel(flow: _Flow, areq: authz.AuthorizationRequest) -> Response:
    denied = authz.RedirectError(
        authz.errors.AccessDenied("the citizen cancelled"), areq.redirect_uri, areq.state
    )
    return flow.redirect(denied.location(flow.provider.issuer))


def _check_password(runtime: Runtime, request: Request, form: dict[str, str]) -> SignInResult:
    # check_password opens its own short transactions around the slow hash.
    return check_password(
        runtime.database,
        runtime.sealer,
        runtime.hasher,
        runtime.settings,
        login=form.get("login", "")[:254],
        password=form.get("password", "")[:256],
        address=_address(request),
    )


@dataclass
class _Step:
    """One form post of the flow, inside its transaction."""

    flow: _Flow
    session: Session
    client: Client
    request: authz.AuthorizationRequest
    interaction: Interaction

    def proceed(self, interaction: Interaction | None = None, **page: Any) -> Response:
        return self.flow.proceed(
            self.session, self.client, self.request, interaction or self.interaction, **page
        )

    def failed(self, result: SignInResult) -> Response:
        """The same page again with the failure; 429 and Retry-After when throttled."""
        response = self.proceed(error=result.failure, retry_after=result.retry_after)
        if result.failure == "throttled" and response.status_code == 200:
            response.status_code = 429
            response.headers["Retry-After"] = str(result.retry_after or 60)
        return response

    def live_session(self) -> SsoSession | None:
        return live_session(self.session, self.flow.session_cookie())


def _login_step(step: _Step, form: dict[str, str], result: SignInResult) -> Response:
    if result.person_id is None:
        return step.failed(result)
    person = step.session.get(Person, result.person_id)
    assert person is not None
    if authz.needs_second_factor(step.session, person, step.client, step.request):
        return step.proceed(step.interaction.replace(pending_person=str(person.id)))
    step.flow.signed_in(step.session, person, ["pwd"], step.live_session())
    return step.proceed(step.interaction.replace(authenticated=True))


def _totp_step(step: _Step, form: dict[str, str]) -> Response:
    sso = step.live_session()
    pending = step.interaction.pending_person
    person_id = uuid.UUID(pending) if pending else (sso.person_id if sso else None)
    if person_id is None:
        return step.proceed()
    result = check_second_factor(
        step.session,
        step.flow.runtime.sealer,
        step.flow.runtime.settings,
        person_id,
        totp_code=form.get("code") or None,
        recovery_code=form.get("recovery_code") or None,
    )
    if result.person_id is None:
        return step.failed(result)
    person = step.session.get(Person, person_id)
    assert person is not None
    amr = ["pwd", "otp"] if pending else [*(sso.amr if sso else ["pwd"]), "otp"]
    step.flow.signed_in(step.session, person, list(dict.fromkeys(amr)), sso)
    return step.proceed(step.interaction.replace(pending_person=None, authenticated=True))


def _enterprise_step(step: _Step, form: dict[str, str]) -> Response:
    sso = step.live_session()
    if sso is None:
        return step.proceed()
    choices = {choice.id for choice in authz.enterprise_choices(step.session, sso.person_id)}
    chosen = form.get("enterprise_id")
    if chosen not in choices:
        return step.proceed()
    return step.proceed(step.interaction.replace(enterprise_id=chosen, enterprise_chosen=True))


def _consent_step(step: _Step, form: dict[str, str]) -> Response:
    sso = step.live_session()
    if sso is None:
        return step.proceed()
    if form.get("action") != "allow":
        return _cancel(step.flow, step.request)
    claims = authz.requested_claims(step.client, step.request)
    grant_consent(step.session, sso.person_id, step.client, step.request.scopes, claims)
    return step.proceed(step.interaction.replace(consented=True))


@router.post(AUTHORIZE_PATH + "/login", include_in_schema=False)
async def login_form(request: Request, runtime: RuntimeDep) -> Response:
    return await _continue(request, runtime, _login_step, _check_password)


@router.post(AUTHORIZE_PATH + "/totp", include_in_schema=False)
async def totp_form(request: Request, runtime: RuntimeDep) -> Response:
    return await _continue(request, runtime, _totp_step)


@router.post(AUTHORIZE_PATH + "/enterprise", include_in_schema=False)
async def enterprise_form(request: Request, runtime: RuntimeDep) -> Response:
    return await _continue(request, runtime, _enterprise_step)


@router.post(AUTHORIZE_PATH + "/consent", include_in_schema=False)
async def consent_form(request: Request, runtime: RuntimeDep) -> Response:
    return await _continue(request, runtime, _consent_step)


# -- back-channel endpoints ---------------------------------------------------------------


async def _parsed(request: Request) -> tuple[dict[str, str], ClientCredentials] | Response:
    try:
        form = await _form(request)
        return form, credentials_from(request.headers.get("authorization", ""), form)
    except OAuthError as exc:
        return oauth_error_response(exc)


async def _back_channel(
    request: Request, work: Callable[[dict[str, str], ClientCredentials], Response]
) -> Response:
    parsed = await _parsed(request)
    if isinstance(parsed, Response):
        return parsed
    return await run_in_threadpool(work, *parsed)


def _run_committing(runtime: Runtime, fn: Callable[[Session], Response]) -> Response:
    """Run ``fn`` in a transaction; an error flagged ``commit`` (reuse detected, family
    revoked), or raised after a one-time value was spent, is answered after the transaction
    has committed."""
    failure: OAuthError | None = None
    try:
        with runtime.database.session() as session:
            try:
                return fn(session)
            except OAuthError as exc:
                committing = exc.commit or session.info.get(COMMIT_ON_ERROR)
                if not committing:
                    raise
                failure = exc
    except OAuthError as exc:
        return oauth_error_response(exc)
    assert failure is not None
    return oauth_error_response(failure)


@router.post(
    TOKEN_PATH, summary="Token endpoint (authorization_code, refresh_token, client_credentials)"
)
async def token(request: Request, runtime: RuntimeDep) -> Response:
    # What the caches alone can answer never gets here: see onecard.api.token_lane.
    def work(form: dict[str, str], credentials: ClientCredentials) -> Response:
        def issue(session: Session) -> Response:
            response = token_request(session, runtime.provider, credentials, form)
            return JSONResponse(response.to_json(), headers=NO_STORE)

        return _run_committing(runtime, issue)

    return await _back_channel(request, work)


def _authenticated(
    runtime: Runtime, session: Session, credentials: ClientCredentials, path: str
) -> Client:
    return authenticate_client(
        session, runtime.provider, credentials, endpoint=runtime.provider.issuer + path
    )


@router.post(INTROSPECTION_PATH, summary="Token introspection (RFC 7662)")
async def introspection(request: Request, runtime: RuntimeDep) -> Response:
    def work(form: dict[str, str], credentials: ClientCredentials) -> Response:
        def run(session: Session) -> Response:
            client = _authenticated(runtime, session, credentials, INTROSPECTION_PATH)
            if client.auth_method == "none":
                raise InvalidClient("introspection needs an authenticated (confidential) client")
            body = introspect(
                session,
                runtime.provider,
                client,
                form.get("token", ""),
                form.get("token_type_hint"),
            )
            return JSONResponse(body, headers=NO_STORE)

        return _run_committing(runtime, run)

    return await _back_channel(request, work)


@router.post(REVOCATION_PATH, summary="Token revocation (RFC 7009)")
async def revocation(request: Request, runtime: RuntimeDep) -> Response:
    def work(form: dict[str, str], credentials: ClientCredentials) -> Response:
        def run(session: Session) -> Response:
            client = _authenticated(runtime, session, credentials, REVOCATION_PATH)
            if "token" not in form:
                raise InvalidRequest("token is required")
            revoke(session, runtime.provider, client, form["token"])
            return Response(status_code=200, headers=NO_STORE)

        return _run_committing(runtime, run)

    return await _back_channel(request, work)


# -- userinfo -----------------------------------------------------------------------------


def _bearer_error(error: OAuthError) -> JSONResponse:
    challenge = f'Bearer realm="onecard", error="{error.error}"'
    if error.description:
        challenge += ', error_description="' + error.description.replace('"', "'") + '"'
    response = JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status_code,
        headers={**NO_STORE, "WWW-Authenticate": challenge},
    )
    return response


def _userinfo(runtime: Runtime, token: str | None) -> Response:
    if not token:
        response = JSONResponse(
            {"error": "invalid_request", "error_description": "a bearer token is required"},
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="onecard"'},
        )
        return response
    try:
        with runtime.database.session() as session:
            claims = userinfo(session, runtime.provider, token)
    except OAuthError as exc:
        return _bearer_error(exc)
    return JSONResponse(claims, headers=NO_STORE)


def _header_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


@router.get(USERINFO_PATH, summary="UserInfo (bearer token)")
def userinfo_get(request: Request, runtime: RuntimeDep) -> Response:
    return _userinfo(runtime, _header_token(request))


@router.post(USERINFO_PATH, summary="UserInfo (bearer token, POST)")
async def userinfo_post(request: Request, runtime: RuntimeDep) -> Response:
    token = _header_token(request)
    if token is None and request.headers.get("content-type", "").startswith(_FORM):
        form = await request.form()  # RFC 6750 §2.2: the form-encoded body parameter
        value = form.get("access_token")
        token = value if isinstance(value, str) else None
    elif token is not None and request.headers.get("content-type", "").startswith(_FORM):
        form = await request.form()
        if "access_token" in form:
            return _bearer_error(InvalidRequest("send the token one way only"))
    return await run_in_threadpool(_userinfo, runtime, token)


# -- RP-initiated logout ------------------------------------------------------------------


def _logout_now(
    runtime: Runtime,
    request: Request,
    session: Session,
    sso: SsoSession | None,
    logout: LogoutRequest,
) -> Response:
    if sso is not None:
        end_session(
            session, runtime.provider, sso, reason="logout", actor=Actor.person(sso.person_id)
        )
    url = logout.return_url()
    if url:
        response: Response = RedirectResponse(url, status_code=303)
    else:
        response = render(
            "logged_out.html",
            locale=_locale(request),
            client_name=logout.client.name if logout.client else None,
            return_url=None,
        )
    delete_cookie(runtime, response, SESSION_COOKIE, path=_COOKIE_PATH)
    return response


def _logout(runtime: Runtime, request: Request, params: Mapping[str, str]) -> Response:
    with runtime.database.session() as session:
        try:
            logout = parse_logout(session, runtime.provider, params)
        except InvalidRedirect as exc:
            return _error_page(request, exc.error, exc.description)
        sso = live_session(session, request.cookies.get(SESSION_COOKIE))
        if sso is None or logout.matches(runtime.provider, sso):
            return _logout_now(runtime, request, session, sso, logout)
    csrf_cookie = _new_csrf_cookie(request)
    hidden = {
        k: v
        for k, v in params.items()
        if k in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")
    }
    response = render(
        "logout_confirm.html",
        locale=_locale(request),
        action=END_SESSION_PATH + "/confirm",
        csrf_token=csrf_token(runtime, csrf_cookie),
        client_name=logout.client.name if logout.client else None,
        hidden=hidden,
    )
    _allow_form_redirect(response, logout.post_logout_redirect_uri)
    if request.cookies.get(CSRF_COOKIE) != csrf_cookie:
        _set_cookie(runtime, response, CSRF_COOKIE, csrf_cookie)
    return response


@router.get(END_SESSION_PATH, summary="RP-initiated logout")
def logout_get(request: Request, runtime: RuntimeDep) -> Response:
    return _logout(runtime, request, dict(request.query_params.items()))


@router.post(END_SESSION_PATH, summary="RP-initiated logout (form post)")
async def logout_post(request: Request, runtime: RuntimeDep) -> Response:
    return await _form_page(request, lambda form: _logout(runtime, request, form))


@router.post(END_SESSION_PATH + "/confirm", include_in_schema=False)
async def logout_confirm(request: Request, runtime: RuntimeDep) -> Response:
    def run(form: dict[str, str]) -> Response:
        if not _csrf_ok(runtime, request, form):
            return _error_page(request, "csrf", "the form has expired", 403)
        with runtime.database.session() as session:
            try:
                logout = parse_logout(session, runtime.provider, form)
            except InvalidRedirect as exc:
                return _error_page(request, exc.error, exc.description)
            if form.get("action") != "logout":
                return _error_page(request, "logout_cancelled", "you are still signed in", 200)
            sso = live_session(session, request.cookies.get(SESSION_COOKIE))
            return _logout_now(runtime, request, session, sso, logout)

    return await _form_page(request, run)
