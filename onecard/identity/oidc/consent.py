"""Consent: what a citizen agreed to share with one portal (OIDC Core §3.1.2.4).

Consent is stored per person and client as the scopes and claims agreed; a later request
asking for nothing more is not asked again. Withdrawing consent revokes every grant of that
client for the person, so its refresh tokens (and access tokens) stop working at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import NotFound
from onecard.identity.actions import IdentityAction
from onecard.identity.oidc.grants import revoke_grants
from onecard.identity.oidc.models import Client, Consent, Grant


def covers(consent: Consent | None, scopes: Iterable[str], claims: Iterable[str]) -> bool:
    if consent is None:
        return False
    return set(scopes) <= set(consent.scopes) and set(claims) <= set(consent.claims)


def consent_of(session: Session, person_id: uuid.UUID, client: Client) -> Consent | None:
    return session.get(Consent, (person_id, client.id))


def grant_consent(
    session: Session,
    person_id: uuid.UUID,
    client: Client,
    scopes: Iterable[str],
    claims: Iterable[str],
) -> Consent:
    """Record (or widen) the person's consent for ``client``; audited."""
    consent = consent_of(session, person_id, client)
    now = clock.now()
    if consent is None:
        consent = Consent(person_id=person_id, client_id=client.id, granted_at=now)
    consent.scopes = sorted(set(consent.scopes) | set(scopes))
    consent.claims = sorted(set(consent.claims) | set(claims))
    consent.updated_at = now
    session.add(consent)
    record(
        session,
        IdentityAction.CONSENT_GRANT,
        actor=Actor.person(person_id),
        subject=("client", client.client_id),
        person_id=person_id,
        data={"scopes": consent.scopes, "claims": consent.claims},
    )
    return consent


def consents_of(session: Session, person_id: uuid.UUID) -> list[tuple[Consent, Client]]:
    return list(
        session.exec(
            select(Consent, Client)
            .join(Client, Client.id == Consent.client_id)
            .where(Consent.person_id == person_id)
            .order_by(Consent.updated_at.desc())
        )
    )


def withdraw_consent(
    session: Session, person_id: uuid.UUID, client: Client, *, actor: Actor
) -> int:
    """Forget the consent and revoke the client's grants; returns how many were revoked."""
    consent = consent_of(session, person_id, client)
    if consent is None:
        raise NotFound("no consent for that client", code="consent_not_found")
    session.delete(consent)
    revoked = revoke_grants(
        session,
        Grant.person_id == person_id,
        Grant.client_id == client.id,
        reason="consent_withdrawn",
        actor=actor,
    )
    record(
        session,
        IdentityAction.CONSENT_WITHDRAW,
        actor=actor,
        subject=("client", client.client_id),
        person_id=person_id,
        data={"grants_revoked": revoked},
    )
    return revoked
