"""OpenID Connect Back-Channel Logout 1.0: telling portals a citizen's session has ended.

- §2.4 the Logout Token: a JWT with ``typ`` ``logout+jwt`` (§2.4 and RFC 8725 §3.11 explicit
  typing), signed like the client's ID tokens, holding ``iss``, ``aud``, ``iat``, ``exp``,
  ``jti``, ``sub``, ``sid`` and the back-channel logout event, and never a ``nonce`` (so it
  cannot be passed off as an ID token).
- §2.5 sending it: an HTTP POST of ``logout_token`` as a form to the client's registered
  ``backchannel_logout_uri``; the portal answers 200 (we also accept 204).

The logout itself never waits on a portal: :func:`enqueue_backchannel_logouts` adds one outbox
job per portal in the logout's own transaction (DESIGN.md §2), and a worker delivers each with
:func:`deliver_backchannel_logout`, retrying with backoff while a portal is down or slow. The
token is signed when it is sent, not when the job is queued, so a retry carries a fresh one.
"""

from __future__ import annotations

import logging
import secrets
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlmodel import Session, col, select

from onecard.core import clock
from onecard.core.jobs import JobContext, PermanentJobError, enqueue, register_handler
from onecard.core.jose import sign_compact
from onecard.core.sealing import Sealer
from onecard.identity.oidc.models import Client, ClientStatus, SessionClient, SsoSession
from onecard.identity.oidc.subjects import subject_for

log = logging.getLogger(__name__)

BACKCHANNEL_LOGOUT = "oidc.backchannel_logout"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"
LOGOUT_TOKEN_LIFETIME = timedelta(seconds=120)
DELIVERY_TIMEOUT_SECONDS = 5.0
_DELIVERED = (200, 204)


class BackchannelDeliveryError(Exception):
    """A portal did not acknowledge a logout token; the job is retried. The message names the
    HTTP status or network failure only, never the token."""


def logout_token_claims(
    *, issuer: str, audience: str, sub: str, sid: str, now: datetime
) -> dict[str, Any]:
    """The claims of a Logout Token (§2.4) for one portal (``audience``: its ``client_id``)."""
    if not issuer or not audience or not sub or not sid:
        raise ValueError("a logout token needs an issuer, an audience, a sub and a sid")
    issued_at = int(now.timestamp())
    return {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + int(LOGOUT_TOKEN_LIFETIME.total_seconds()),
        "jti": secrets.token_urlsafe(16),
        "sid": sid,
        "events": {LOGOUT_EVENT: {}},
    }


def enqueue_backchannel_logouts(session: Session, sealer: Sealer, sso_session: SsoSession) -> int:
    """Queue one logout delivery per portal of ``sso_session`` that registered a back-channel
    logout URI, in the caller's transaction; returns how many were queued.

    The payload holds the client's row id, the ``sub`` that portal knows (pairwise or public)
    and the ``sid``: identifiers it already received in the ID token, nothing secret.
    """
    clients = session.exec(
        select(Client)
        .join(SessionClient, col(SessionClient.client_id) == col(Client.id))
        .where(
            SessionClient.session_id == sso_session.id,
            Client.status == ClientStatus.ACTIVE,
            col(Client.backchannel_logout_uri).is_not(None),
            Client.backchannel_logout_uri != "",
        )
        .order_by(col(Client.client_id))
    ).all()
    for client in clients:
        enqueue(
            session,
            BACKCHANNEL_LOGOUT,
            {
                "client": str(client.id),
                "sub": subject_for(sealer, client, sso_session.person_id),
                "sid": sso_session.sid,
            },
        )
    return len(clients)


def deliver_backchannel_logout(context: JobContext, payload: dict[str, Any]) -> None:
    """The job handler: sign a fresh logout token and POST it to the portal.

    A portal disabled, deleted or without a back-channel URI since the job was queued is
    skipped (the job is done). Any answer but 200/204, and any network failure or timeout,
    raises :class:`BackchannelDeliveryError` so the job is retried.
    """
    client_row_id, sub, sid = _parse_payload(payload)
    issuer = context.settings.issuer
    with context.database.session() as session:
        client = session.get(Client, client_row_id)
        if client is None or client.status != ClientStatus.ACTIVE:
            log.info("back-channel logout skipped: client %s is gone or disabled", client_row_id)
            return
        uri = client.backchannel_logout_uri
        if not uri:
            log.info("back-channel logout skipped: client %s has no URI now", client.client_id)
            return
        signer = context.keyring.signer(session, "token", client.id_token_alg)
        claims = logout_token_claims(
            issuer=issuer, audience=client.client_id, sub=sub, sid=sid, now=clock.now()
        )
    # The transaction is over: no database lock is held while we wait on the portal.
    post_logout_token(uri, sign_compact(signer, claims, typ=LOGOUT_TOKEN_TYPE))


def _parse_payload(payload: dict[str, Any]) -> tuple[uuid.UUID, str, str]:
    try:
        client_row_id = uuid.UUID(payload["client"])
    except (KeyError, TypeError, ValueError):
        raise PermanentJobError("malformed back-channel logout payload: client") from None
    sub, sid = payload.get("sub"), payload.get("sid")
    if not isinstance(sub, str) or not isinstance(sid, str):
        raise PermanentJobError("malformed back-channel logout payload: sub or sid")
    return client_row_id, sub, sid


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the token and look like success."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_logout_token(
    uri: str, logout_token: str, *, timeout: float = DELIVERY_TIMEOUT_SECONDS
) -> int:
    """POST ``logout_token`` to ``uri`` (§2.5); the status (200 or 204) once acknowledged.

    ``timeout`` bounds the connection and each wait for data from the portal.
    """
    if urlsplit(uri).scheme not in ("http", "https"):
        raise PermanentJobError("the back-channel logout URI is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        uri,
        data=urlencode({"logout_token": logout_token}).encode("ascii"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cache-Control": "no-store",
            "User-Agent": "onecard-backchannel-logout",
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        raise BackchannelDeliveryError(f"the portal answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise BackchannelDeliveryError(f"the portal is unreachable: {exc.reason}") from None
    except TimeoutError:
        raise BackchannelDeliveryError(f"the portal did not answer within {timeout:g} s") from None
    except (OSError, HTTPException) as exc:  # connection reset, a malformed answer
        raise BackchannelDeliveryError(
            f"the portal did not answer properly: {type(exc).__name__} {exc}"
        ) from None
    if status not in _DELIVERED:
        raise BackchannelDeliveryError(f"the portal answered HTTP {status}")
    return status


register_handler(BACKCHANNEL_LOGOUT, deliver_backchannel_logout)
