"""Creating the first administrator.

While no administrator exists, the first start issues a one-time ``bootstrap`` token (valid 24
hours, stored hashed) and prints it once. Presenting it creates the first administrator and the
token is consumed; once an administrator exists, no bootstrap token is ever issued again. The CLI
(``onecard admin bootstrap``) can do the same directly on the database.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from onecard.core import clock
from onecard.core.audit import Actor
from onecard.core.errors import Conflict
from onecard.core.sealing import Sealer
from onecard.identity.credentials import set_password
from onecard.identity.models import ApiToken, AssuranceLevel, Person, RegisteredBy, StaffRoleName
from onecard.identity.passwords import PasswordHasher
from onecard.identity.persons import NewPerson, register_person
from onecard.identity.staff import admin_exists, grant_role
from onecard.identity.tokens import issue_token

BOOTSTRAP_TTL = timedelta(hours=24)


def offer_bootstrap_token(session: Session) -> str | None:
    """A fresh bootstrap token when there is no admin and no live one; otherwise ``None``."""
    if admin_exists(session):
        return None
    live = session.exec(
        select(ApiToken.id).where(
            ApiToken.kind == "bootstrap",
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > clock.now(),
        )
    ).first()
    if live is not None:
        return None
    token, _ = issue_token(
        session, kind="bootstrap", person_id=None, ttl=BOOTSTRAP_TTL, actor=Actor.system()
    )
    return token


def reissue_bootstrap_token(session: Session, actor: Actor) -> str:
    """Revoke live bootstrap tokens and issue a new one (the first one was lost)."""
    if admin_exists(session):
        raise Conflict("an administrator already exists", code="already_bootstrapped")
    _revoke_bootstrap_tokens(session)
    token, _ = issue_token(
        session, kind="bootstrap", person_id=None, ttl=BOOTSTRAP_TTL, actor=actor
    )
    return token


def create_first_admin(
    session: Session,
    sealer: Sealer,
    hasher: PasswordHasher,
    new: NewPerson,
    password: str,
    *,
    actor: Actor,
) -> Person:
    """Register the first administrator (level 2: the operator vouches in person)."""
    if admin_exists(session):
        raise Conflict("an administrator already exists", code="already_bootstrapped")
    person = register_person(
        session,
        sealer,
        new,
        actor=actor,
        level=AssuranceLevel.SUBSTANTIAL,
        registered_by=RegisteredBy.BOOTSTRAP,
    )
    set_password(session, sealer, hasher, person, password, actor=actor)
    grant_role(session, person, StaffRoleName.ADMIN, actor=actor, granted_by=None)
    _revoke_bootstrap_tokens(session)
    return person


def consume_bootstrap_token(session: Session, token: ApiToken) -> None:
    """Spend the presented token with a conditional UPDATE: of two racing uses, one wins."""
    spent = session.exec(  # type: ignore[call-overload]
        update(ApiToken)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    if spent.rowcount != 1:
        raise Conflict("the bootstrap token was already used", code="already_bootstrapped")


def _revoke_bootstrap_tokens(session: Session) -> None:
    session.exec(  # type: ignore[call-overload]
        update(ApiToken)
        .where(ApiToken.kind == "bootstrap", ApiToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
