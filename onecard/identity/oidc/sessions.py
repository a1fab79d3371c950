"""Single sign-on sessions (OIDC Core §3.1.2.1 ``sid``; Back-Channel Logout §2.1).

A session is a server-side row. The browser holds a 256-bit cookie value whose SHA-256 finds
the row; portals see only ``sid``. Ending a session (logout, the citizen, staff, suspension)
revokes the grants made in it and queues a back-channel logout for every portal that received
an ID token in it, in the same transaction: the citizen's logout never waits on a portal.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import NotFound
from onecard.identity.actions import IdentityAction
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import Person, SubjectStatus
from onecard.identity.oidc import housekeeping  # noqa: F401  (registers its sweep)
from onecard.identity.oidc.backchannel import enqueue_backchannel_logouts
from onecard.identity.oidc.grants import revoke_grants
from onecard.identity.oidc.models import Client, Grant, SessionClient, SsoSession
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import token_hash
from onecard.identity.persons import change_status


def start_session(
    session: Session,
    provider: Provider,
    person: Person,
    *,
    level: int,
    amr: Sequence[str],
    user_agent: str | None,
) -> tuple[str, SsoSession]:
    """A new session and the cookie value that names it (returned once, stored hashed)."""
    cookie = secrets.token_urlsafe(32)
    now = clock.now()
    sso = SsoSession(
        cookie_hash=token_hash(cookie),
        sid=secrets.token_urlsafe(24),
        person_id=person.id,
        auth_time=now,
        level=level,
        amr=list(amr),
        user_agent=(user_agent or "")[:200] or None,
        created_at=now,
        last_seen_at=now,
        expires_at=now + provider.session_ttl,
    )
    session.add(sso)
    record(
        session,
        IdentityAction.SESSION_START,
        actor=Actor.person(person.id),
        subject=("session", sso.sid),
        person_id=person.id,
        data={"amr": list(amr), "level": level},
    )
    return cookie, sso


def reauthenticate(session: Session, sso: SsoSession, *, level: int, amr: Sequence[str]) -> None:
    """A fresh authentication in an existing session (prompt=login, max_age, step-up)."""
    sso.auth_time, sso.level, sso.amr = clock.now(), level, list(dict.fromkeys(amr))
    session.add(sso)
    record(
        session,
        IdentityAction.SESSION_START,
        actor=Actor.person(sso.person_id),
        subject=("session", sso.sid),
        person_id=sso.person_id,
        data={"amr": list(amr), "level": sso.level, "reauthentication": True},
    )


def live_session(session: Session, cookie: str | None) -> SsoSession | None:
    """The live session named by ``cookie`` (not ended, not expired, person active)."""
    if not cookie or len(cookie) > 100:
        return None
    sso = session.exec(
        select(SsoSession).where(SsoSession.cookie_hash == token_hash(cookie))
    ).one_or_none()
    if sso is None or sso.ended_at is not None or sso.expires_at <= clock.now():
        return None
    person = session.get(Person, sso.person_id)
    if person is None or person.status != SubjectStatus.ACTIVE:
        return None
    return sso


def join_session(session: Session, sso: SsoSession, client: Client) -> None:
    """Remember that ``client`` received an ID token in ``sso`` (for back-channel logout)."""
    if session.get(SessionClient, (sso.id, client.id)) is None:
        session.add(SessionClient(session_id=sso.id, client_id=client.id))


def end_session(
    session: Session, provider: Provider, sso: SsoSession, *, reason: str, actor: Actor
) -> int:
    """End ``sso``; returns how many back-channel logouts were queued."""
    if sso.ended_at is not None:
        return 0
    sso.ended_at, sso.end_reason = clock.now(), reason
    session.add(sso)
    revoke_grants(session, Grant.session_id == sso.id, reason="logout", actor=actor)
    queued = enqueue_backchannel_logouts(session, provider.sealer, sso)
    record(
        session,
        IdentityAction.SESSION_END,
        actor=actor,
        subject=("session", sso.sid),
        person_id=sso.person_id,
        data={"reason": reason, "backchannel_logouts": queued},
    )
    return queued


def sessions_of(session: Session, person_id: uuid.UUID) -> list[SsoSession]:
    """The person's live sessions, newest first."""
    return list(
        session.exec(
            select(SsoSession)
            .where(
                SsoSession.person_id == person_id,
                SsoSession.ended_at.is_(None),
                SsoSession.expires_at > clock.now(),
            )
            .order_by(SsoSession.created_at.desc())
        )
    )


def end_person_session(
    session: Session, provider: Provider, person_id: uuid.UUID, sid: str, *, actor: Actor
) -> None:
    sso = session.exec(
        select(SsoSession).where(SsoSession.sid == sid, SsoSession.person_id == person_id)
    ).one_or_none()
    if sso is None or sso.ended_at is not None:
        raise NotFound("no such session", code="session_not_found")
    end_session(session, provider, sso, reason="ended_by_person", actor=actor)


def end_all_sessions(
    session: Session, provider: Provider, person_id: uuid.UUID, *, reason: str, actor: Actor
) -> int:
    """End every live session of a person (staff action, suspension); returns how many."""
    live = sessions_of(session, person_id)
    for sso in live:
        end_session(session, provider, sso, reason=reason, actor=actor)
    return len(live)


def change_person_status(
    session: Session,
    provider: Provider,
    person: Person,
    change: StatusChange,
    *,
    actor: Actor,
    reason: str,
) -> Person:
    """Suspend, reinstate or close a person. Suspending or closing first ends their sessions
    while the portals in them can still be told (back-channel logout), then
    :func:`onecard.identity.persons.change_status` revokes whatever grants remain."""
    if change != StatusChange.REINSTATE:
        end_all_sessions(session, provider, person.id, reason=change.value, actor=actor)
    return change_status(session, person, change, actor=actor, reason=reason)
