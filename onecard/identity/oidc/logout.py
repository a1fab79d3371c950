"""RP-Initiated Logout 1.0: validate the logout request, then end the session.

``post_logout_redirect_uri`` is honoured only when the client is identified (by a valid
``id_token_hint`` or ``client_id``) and the URI is registered for it, compared exactly; a bad
or altered hint (``alg: none`` included) gets an error page, never a redirect. Ending the
session queues back-channel logouts (see :mod:`.sessions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlmodel import Session

from onecard.identity.oidc.errors import InvalidRedirect
from onecard.identity.oidc.models import Client, ClientStatus, SsoSession
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.subjects import subject_for
from onecard.identity.oidc.tokens import TokenRejected, verify_id_token_hint


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    post_logout_redirect_uri: str | None
    state: str | None
    hint_subject: str | None
    hint_sid: str | None

    def return_url(self) -> str | None:
        if self.post_logout_redirect_uri is None:
            return None
        if self.state is None:
            return self.post_logout_redirect_uri
        separator = "&" if "?" in self.post_logout_redirect_uri else "?"
        return self.post_logout_redirect_uri + separator + urlencode({"state": self.state})

    def matches(self, provider: Provider, sso: SsoSession | None) -> bool:
        """The hint names this very session: log out without asking again."""
        if sso is None or self.client is None or self.hint_subject is None:
            return False
        same_subject = self.hint_subject == subject_for(provider.sealer, self.client, sso.person_id)
        return same_subject and self.hint_sid in (None, sso.sid)


def parse_logout(session: Session, provider: Provider, params: Mapping[str, str]) -> LogoutRequest:
    hint, client_id = params.get("id_token_hint"), params.get("client_id")
    claims = None
    client = None
    if hint:
        try:
            claims = verify_id_token_hint(session, provider, hint)
        except TokenRejected:
            raise InvalidRedirect("invalid_request", "the id_token_hint is not valid") from None
        audience = claims.get("aud")
        audience = audience[0] if isinstance(audience, list) and audience else audience
        if client_id and client_id != audience:
            raise InvalidRedirect("invalid_request", "client_id does not match id_token_hint")
        client_id = audience if isinstance(audience, str) else None
    if client_id:
        client = provider.clients.get(session, client_id)
        if client is None or client.status != ClientStatus.ACTIVE:
            raise InvalidRedirect("invalid_client", "the portal is unknown")
    uri = params.get("post_logout_redirect_uri") or None
    if uri is not None and (client is None or uri not in client.post_logout_redirect_uris):
        raise InvalidRedirect(
            "invalid_request", "post_logout_redirect_uri is not registered for this portal"
        )
    state = params.get("state") or None
    return LogoutRequest(
        client=client,
        post_logout_redirect_uri=uri,
        state=state[:2000] if state else None,
        hint_subject=str(claims["sub"]) if claims else None,
        hint_sid=claims.get("sid") if claims else None,
    )
