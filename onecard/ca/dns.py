"""The DNS allow-list for service TLS certificates, kept by administrators.

A pattern is a host name (``portal.gov.example`` allows exactly that name) or ``*.`` and a
domain (``*.gov.example`` allows any name below it, at any depth, but not the domain itself).
Wildcard certificates are never issued: the pattern's star is about what may be asked for.
"""

from __future__ import annotations

import re
import uuid

from sqlmodel import Session, select

from onecard.ca.actions import CaAction
from onecard.ca.models import DnsAllowance
from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.db import unique_or_conflict
from onecard.core.errors import Conflict, Forbidden, InvalidInput, NotFound

_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_dns_name(text: str) -> str:
    """A lower-case host name of LDH labels (no trailing dot, no wildcard), or InvalidInput."""
    name = text.strip().lower().rstrip(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_DNS_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInput(f"{text!r} is not a DNS host name", code="dns_name_invalid")
    return name


def normalise_pattern(text: str) -> str:
    text = text.strip().lower()
    if text.startswith("*."):
        return "*." + normalise_dns_name(text[2:])
    return normalise_dns_name(text)


def allows(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


def current_patterns(session: Session) -> list[str]:
    return list(
        session.exec(select(DnsAllowance.pattern).where(DnsAllowance.removed_at.is_(None)))  # type: ignore[union-attr]
    )


def check_allowed(session: Session, names: tuple[str, ...]) -> None:
    patterns = current_patterns(session)
    refused = [n for n in names if not any(allows(p, n) for p in patterns)]
    if refused:
        raise Forbidden(
            "not on the DNS allow-list: " + ", ".join(refused), code="dns_name_not_allowed"
        )


def list_allowances(session: Session) -> list[DnsAllowance]:
    return list(
        session.exec(
            select(DnsAllowance)
            .where(DnsAllowance.removed_at.is_(None))  # type: ignore[union-attr]
            .order_by(DnsAllowance.pattern)
        )
    )


def allow(session: Session, text: str, *, actor: Actor) -> DnsAllowance:
    pattern = normalise_pattern(text)
    allowance = DnsAllowance(pattern=pattern, created_by=actor.label, created_at=clock.now())
    with unique_or_conflict(
        session,
        lambda _name: Conflict(f"{pattern} is already allowed", code="dns_allowance_exists"),
    ):
        session.add(allowance)
    record(
        session,
        CaAction.DNS_ALLOW,
        actor=actor,
        subject=("ca_dns_allowance", str(allowance.id)),
        data={"pattern": pattern},
    )
    return allowance


def remove(session: Session, allowance_id: uuid.UUID, *, actor: Actor) -> DnsAllowance:
    allowance = session.get(DnsAllowance, allowance_id)
    if allowance is None or allowance.removed_at is not None:
        raise NotFound("no such allowance", code="dns_allowance_not_found")
    allowance.removed_at, allowance.removed_by = clock.now(), actor.label
    session.add(allowance)
    record(
        session,
        CaAction.DNS_REMOVE,
        actor=actor,
        subject=("ca_dns_allowance", str(allowance.id)),
        data={"pattern": allowance.pattern},
    )
    return allowance
