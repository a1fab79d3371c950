"""The one-time ``oct_`` bootstrap token printed on the first start to create the first
administrator (everything else uses the OpenID Connect provider's access tokens).

Tokens are 256-bit random strings; only their SHA-256 is stored (a high-entropy token needs no
slow hash), so a database dump yields none. The ``admin`` and ``sign_in`` kinds of the interim
API of #2 are no longer issued.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import Unauthenticated
from onecard.identity.actions import IdentityAction
from onecard.identity.models import ApiToken

TOKEN_PREFIX = "oct_"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_token(
    session: Session,
    *,
    kind: str,
    person_id: uuid.UUID | None,
    ttl: timedelta,
    actor: Actor,
) -> tuple[str, ApiToken]:
    """A new bearer token (returned once, stored hashed) and its record."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    row = ApiToken(
        token_hash=token_hash(token),
        kind=kind,
        person_id=person_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    record(
        session,
        IdentityAction.TOKEN_ISSUE,
        actor=actor,
        subject=("api_token", str(row.id)),
        person_id=person_id,
        data={"kind": kind, "expires_at": row.expires_at.isoformat()},
    )
    return token, row


def authenticate(session: Session, token: str) -> ApiToken:
    """The live token record for ``token``; anything else is :class:`Unauthenticated`."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        raise Unauthenticated("the access token is not valid", code="invalid_token")
    row = session.exec(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token))
    ).one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        raise Unauthenticated("the access token is not valid or has expired", code="invalid_token")
    return row


def revoke_person_tokens(session: Session, person_id: uuid.UUID) -> int:
    """Revoke every live grant (and so every token) and end every sign-on session of a person
    (suspension, closing); returns how many grants were revoked."""
    from onecard.identity.oidc.models import Grant, SsoSession

    now = clock.now()
    session.exec(  # type: ignore[call-overload]
        update(ApiToken)
        .where(ApiToken.person_id == person_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.exec(  # type: ignore[call-overload]
        update(SsoSession)
        .where(SsoSession.person_id == person_id, SsoSession.ended_at.is_(None))
        .values(ended_at=now, end_reason="account_status")
    )
    result = session.exec(  # type: ignore[call-overload]
        update(Grant)
        .where(Grant.person_id == person_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="account_status")
    )
    return result.rowcount
