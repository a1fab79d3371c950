"""Grants: what one authorization of a client by a person produced, and their revocation.

RFC 6749 §10.4 and RFC 9700 §4.14.2: refresh tokens rotate on every use, and presenting a
rotated one revokes the whole family (the grant), with every access token it produced.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, EventSpec, record_many
from onecard.identity.actions import IdentityAction
from onecard.identity.oidc.models import Grant, RefreshToken
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import opaque_token, token_hash


def issue_refresh_token(session: Session, provider: Provider, grant: Grant) -> str:
    token = opaque_token()
    now = clock.now()
    session.add(
        RefreshToken(
            token_hash=token_hash(token),
            grant_id=grant.id,
            created_at=now,
            expires_at=min(now + provider.refresh_token_ttl, grant.expires_at),
        )
    )
    return token


def revoke_grants(session: Session, *where: Any, reason: str, actor: Actor) -> int:
    """Revoke every live grant matching ``where``; returns how many (each audited)."""
    grants = list(session.exec(select(Grant).where(Grant.revoked_at.is_(None), *where)))
    if not grants:
        return 0
    now = clock.now()
    session.exec(  # type: ignore[call-overload]
        update(Grant)
        .where(Grant.id.in_([g.id for g in grants]))
        .values(revoked_at=now, revoked_reason=reason)
    )
    record_many(
        session,
        [
            EventSpec(
                IdentityAction.GRANT_REVOKE,
                actor,
                ("grant", str(g.id)),
                g.person_id,
                {"reason": reason},
            )
            for g in grants
        ],
    )
    for grant in grants:
        session.refresh(grant)
    return len(grants)


def revoke_grant(session: Session, grant_id: uuid.UUID, *, reason: str, actor: Actor) -> int:
    return revoke_grants(session, Grant.id == grant_id, reason=reason, actor=actor)
