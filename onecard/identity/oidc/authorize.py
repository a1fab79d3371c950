"""The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1.1, RFC 9207, RFC 9700 §2.1).

Three phases: :func:`parse_request` validates the request (errors that cannot be trusted to
redirect raise :class:`InvalidRedirect` for an error page; the others raise
:class:`RedirectError`); :func:`decide` says what the citizen must still do (sign in, second
factor, choose an enterprise, consent) given the session and the request's progress; and
:func:`issue_code` makes the single-use code and the redirect carrying ``code``, ``state`` and
``iss``. Code flow only; unknown parameters are ignored.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from sqlmodel import Session

from onecard.core import clock
from onecard.identity.credentials import has_totp
from onecard.identity.enterprises import acting_roles, enterprises_of
from onecard.identity.models import Person, SubjectStatus
from onecard.identity.oidc import errors
from onecard.identity.oidc.claims import ALL_SCOPES, ClaimsRequest, released_claims
from onecard.identity.oidc.consent import consent_of, covers
from onecard.identity.oidc.errors import InvalidRedirect, OAuthError
from onecard.identity.oidc.interaction import Interaction
from onecard.identity.oidc.models import (
    AuthorizationCode,
    Client,
    ClientStatus,
    ClientType,
    GrantType,
    SsoSession,
)
from onecard.identity.oidc.pkce import check_challenge
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.sessions import join_session
from onecard.identity.oidc.subjects import subject_for
from onecard.identity.oidc.tokens import TokenRejected, token_hash, verify_id_token_hint

ACR_PREFIX = "urn:onecard:loa:"
PROMPTS = {"none", "login", "consent", "select_account"}
_MAX_PARAM = 2000


class RedirectError(Exception):
    """An error to send back to the (verified) redirect URI."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.description)
        self.error, self.redirect_uri, self.state = error, redirect_uri, state

    def location(self, issuer: str) -> str:
        params = {"error": self.error.error}
        if self.error.description:
            params["error_description"] = self.error.description
        return redirect_to(self.redirect_uri, params, self.state, issuer)


def redirect_to(redirect_uri: str, params: dict[str, str], state: str | None, issuer: str) -> str:
    if state is not None:
        params["state"] = state
    params["iss"] = issuer  # RFC 9207: lets the client detect a mix-up attack
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_uri + separator + urlencode(params)


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    max_age: int | None
    acr_level: int | None
    hint_subject: str | None
    login_hint: str | None
    ui_locales: str | None
    claims: ClaimsRequest | None

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > _MAX_PARAM:
        raise errors.InvalidRequest(f"{name} is too long")
    return value


def _client_and_redirect(
    session: Session, provider: Provider, params: Mapping[str, str]
) -> tuple[Client, str]:
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRedirect("invalid_request", "the request names no client (client_id)")
    client = provider.clients.get(session, client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        raise InvalidRedirect("invalid_client", "the portal is unknown or no longer active")
    if GrantType.AUTHORIZATION_CODE not in client.grant_types:
        raise InvalidRedirect("unauthorized_client", "this client does not sign citizens in")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise InvalidRedirect("invalid_request", "the request has no redirect_uri")
    # Exact string comparison (RFC 9700 §4.1.3): no prefix, no pattern, no normalisation.
    if redirect_uri not in client.redirect_uris:
        raise InvalidRedirect(
            "invalid_request", "the redirect_uri is not registered for this portal"
        )
    return client, redirect_uri


def parse_request(
    session: Session, provider: Provider, params: Mapping[str, str]
) -> tuple[Client, AuthorizationRequest]:
    client, redirect_uri = _client_and_redirect(session, provider, params)
    state = params.get("state") or None
    if state is not None and len(state) > _MAX_PARAM:
        state = None
    try:
        return client, _validate(session, provider, client, redirect_uri, state, params)
    except OAuthError as error:
        raise RedirectError(error, redirect_uri, state) from None


def _validate(
    session: Session,
    provider: Provider,
    client: Client,
    redirect_uri: str,
    state: str | None,
    params: Mapping[str, str],
) -> AuthorizationRequest:
    if params.get("request"):
        raise errors.RequestNotSupported("request objects are not supported")
    if params.get("request_uri"):
        raise errors.RequestUriNotSupported("request_uri is not supported")
    response_type = _one(params, "response_type")
    if response_type is None:
        raise errors.InvalidRequest("response_type is required")
    if response_type != "code":
        raise errors.UnsupportedResponseType("only the code flow (response_type=code) is offered")
    if _one(params, "response_mode") not in (None, "query"):
        raise errors.InvalidRequest("response_mode must be query")
    scopes = _scopes(client, _one(params, "scope"))
    challenge = check_challenge(
        _one(params, "code_challenge"),
        _one(params, "code_challenge_method"),
        required=client.client_type == ClientType.PUBLIC,
    )
    prompt = frozenset((_one(params, "prompt") or "").split())
    if not prompt <= PROMPTS:
        raise errors.InvalidRequest("unknown prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise errors.InvalidRequest("prompt=none cannot be combined with other values")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=_one(params, "nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=_max_age(_one(params, "max_age")),
        acr_level=_acr_level(_one(params, "acr_values")),
        hint_subject=_hint_subject(session, provider, client, _one(params, "id_token_hint")),
        login_hint=_one(params, "login_hint"),
        ui_locales=_one(params, "ui_locales"),
        claims=ClaimsRequest.parse(_one(params, "claims")),
    )


def _scopes(client: Client, scope: str | None) -> tuple[str, ...]:
    requested = list(dict.fromkeys((scope or "").split()))
    if "openid" not in requested:
        raise errors.InvalidScope("the openid scope is required")
    known = [s for s in requested if s in ALL_SCOPES]  # unknown scopes are ignored (Core §5.4)
    refused = [s for s in known if s not in client.scopes]
    if refused:
        raise errors.InvalidScope(f"this portal may not ask for: {' '.join(refused)}")
    return tuple(known)


def _max_age(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or len(text) > 10:
        raise errors.InvalidRequest("max_age must be a non-negative integer")
    return int(text)


def _acr_level(text: str | None) -> int | None:
    """The first ``acr_values`` entry we know, in the client's order of preference."""
    for value in (text or "").split():
        if value.startswith(ACR_PREFIX) and value[len(ACR_PREFIX) :] in ("1", "2", "3"):
            return int(value[len(ACR_PREFIX) :])
    return None


def _hint_subject(
    session: Session, provider: Provider, client: Client, hint: str | None
) -> str | None:
    if hint is None:
        return None
    try:
        claims = verify_id_token_hint(session, provider, hint, client=client)
    except TokenRejected:
        raise errors.InvalidRequest("id_token_hint is not an ID token we issued to you") from None
    return str(claims["sub"])


# -- what the citizen must still do -------------------------------------------------------


class Step(StrEnum):
    LOGIN = "login"
    TOTP = "totp"
    ENTERPRISE = "enterprise"
    CONSENT = "consent"
    ISSUE = "issue"


@dataclass(frozen=True)
class Decision:
    step: Step
    reauth: bool = False
    step_up: bool = False
    claims: tuple[str, ...] = ()


def required_level(client: Client, request: AuthorizationRequest) -> int:
    return max(client.min_level, request.acr_level or 1)


def requested_claims(client: Client, request: AuthorizationRequest) -> tuple[str, ...]:
    return tuple(
        released_claims(
            request.scopes,
            request.claims,
            allowed_scopes=client.scopes,
            full_identity_number=client.full_identity_number,
        )
    )


def needs_fresh_login(
    provider: Provider,
    client: Client,
    request: AuthorizationRequest,
    sso: SsoSession | None,
    interaction: Interaction,
) -> bool:
    if sso is None:
        return True
    if interaction.authenticated:
        return False
    if "login" in request.prompt or "select_account" in request.prompt:
        return True
    if request.max_age is not None:
        age = (clock.now() - sso.auth_time).total_seconds()
        if age > request.max_age:
            return True
    return request.hint_subject is not None and request.hint_subject != subject_for(
        provider.sealer, client, sso.person_id
    )


def decide(
    session: Session,
    provider: Provider,
    client: Client,
    request: AuthorizationRequest,
    sso: SsoSession | None,
    interaction: Interaction,
) -> Decision:
    """The next step; under ``prompt=none`` any step but issuing is an error to redirect."""
    decision = _next_step(session, provider, client, request, sso, interaction)
    if "none" in request.prompt and decision.step != Step.ISSUE:
        raise {
            Step.LOGIN: errors.LoginRequired("the citizen must sign in"),
            Step.TOTP: errors.InteractionRequired("a second factor is needed"),
            Step.ENTERPRISE: errors.AccountSelectionRequired("an enterprise must be chosen"),
            Step.CONSENT: errors.ConsentRequired("the citizen has not consented"),
        }[decision.step]
    return decision


def _next_step(
    session: Session,
    provider: Provider,
    client: Client,
    request: AuthorizationRequest,
    sso: SsoSession | None,
    interaction: Interaction,
) -> Decision:
    if interaction.pending_person is not None:
        pending = session.get(Person, uuid.UUID(interaction.pending_person))
        level = required_level(client, request)
        if pending is not None and pending.assurance_level < level:
            raise _level_too_low(level, pending)
        return Decision(Step.TOTP)
    if needs_fresh_login(provider, client, request, sso, interaction):
        reauth = sso is not None or "login" in request.prompt
        return Decision(Step.LOGIN, reauth=reauth)
    assert sso is not None
    person = session.get(Person, sso.person_id)
    assert person is not None
    level = required_level(client, request)
    if person.assurance_level < level:
        raise _level_too_low(level, person)
    if sso.level < level:
        return Decision(Step.TOTP, step_up=True)
    if "enterprise" in request.scopes and not interaction.enterprise_chosen:
        return Decision(Step.ENTERPRISE)
    if not client.consent_required:
        return Decision(Step.ISSUE)
    claims = requested_claims(client, request)
    consent = consent_of(session, person.id, client)
    wants_consent = "consent" in request.prompt and not interaction.consented
    if wants_consent or not (interaction.consented or covers(consent, request.scopes, claims)):
        return Decision(Step.CONSENT, claims=claims)
    return Decision(Step.ISSUE)


def _level_too_low(level: int, person: Person) -> errors.AccessDenied:
    # The portal learns the level it needs was not met, not the citizen's actual level.
    return errors.AccessDenied(f"the citizen's identity does not reach assurance level {level}")


def session_level(person: Person, amr: list[str]) -> int:
    """The level a sign-in reaches: above 1 only with a second factor (DESIGN.md §5)."""
    return person.assurance_level if "otp" in amr else 1


def needs_second_factor(
    session: Session, person: Person, client: Client, request: AuthorizationRequest
) -> bool:
    return has_totp(session, person.id) or required_level(client, request) > 1


@dataclass(frozen=True)
class EnterpriseChoice:
    """An enterprise the citizen may act for, as the enterprise page lists it."""

    id: str
    name: str
    roles: tuple[str, ...]


def enterprise_choices(session: Session, person_id: uuid.UUID) -> list[EnterpriseChoice]:
    choices = []
    for enterprise in enterprises_of(session, person_id):
        roles = acting_roles(session, enterprise, person_id)
        if enterprise.status == SubjectStatus.ACTIVE and roles:
            choices.append(
                EnterpriseChoice(str(enterprise.id), enterprise.name, tuple(sorted(roles)))
            )
    return choices


def issue_code(
    session: Session,
    provider: Provider,
    client: Client,
    request: AuthorizationRequest,
    sso: SsoSession,
    interaction: Interaction,
) -> str:
    """Store a single-use code and return the redirect that hands it to the client."""
    code = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        AuthorizationCode(
            code_hash=token_hash(code),
            client_id=client.id,
            person_id=sso.person_id,
            session_id=sso.id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            claims=request.claims.to_json() if request.claims else None,
            enterprise_id=uuid.UUID(interaction.enterprise_id)
            if interaction.enterprise_id
            else None,
            auth_time=sso.auth_time,
            level=sso.level,
            amr=list(sso.amr),
            created_at=now,
            expires_at=now + provider.code_ttl,
        )
    )
    join_session(session, sso, client)
    sso.last_seen_at = now
    session.add(sso)
    return redirect_to(request.redirect_uri, {"code": code}, request.state, provider.issuer)
