"""Scopes, the claims each one releases, and building claim values for a person.

OpenID Connect Core §5.1 (standard claims), §5.4 (scope values), §5.5 (the ``claims``
request parameter, essential claims). A client may only ask for scopes an administrator
allowed it; a person's data leaves only as claims of scopes (or individually requested claims)
the citizen consented to. Other packages add claims through :func:`register_claims_provider`
(the card package provides ``card_status`` and ``card_kinds``), so identity never imports them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from onecard.core.audit import Actor
from onecard.core.sealing import Sealer
from onecard.identity.enterprises import acting_roles
from onecard.identity.models import Enterprise, Person
from onecard.identity.oidc.errors import InvalidRequest
from onecard.identity.persons import reveal_identity_number

# Scopes that release claims about the person, in the order the consent page lists them.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name",),
    "phone": ("phone_number", "phone_number_verified"),
    "email": ("email", "email_verified"),
    "identity": ("identity_number_masked", "assurance_level"),
    "card": ("card_status", "card_kinds"),
    "enterprise": ("enterprise", "enterprise_roles"),
}
# Scopes of onecard's own APIs: they release no claim and are for first-party clients and
# terminals only (an administrator grants them per client).
API_SCOPES: dict[str, str] = {
    "account": "the citizen's own account at onecard (/v1/me)",
    "staff": "staff work at onecard, within the staff member's roles",
    "card:verify": "online verification of one-card QR codes (terminals)",
}
ALL_SCOPES = (*SCOPE_CLAIMS, *API_SCOPES)
FULL_IDENTITY_NUMBER = "identity_number"
ALL_CLAIMS = (
    *(claim for claims in SCOPE_CLAIMS.values() for claim in claims),
    FULL_IDENTITY_NUMBER,
    "auth_time",
    "acr",
)
# What the consent page shows for each claim (``attr.<key>`` in the page catalogue).
CONSENT_ATTRIBUTE = {
    "sub": "sub",
    "name": "name",
    "phone_number": "phone",
    "email": "email",
    "identity_number_masked": "identity_number_masked",
    FULL_IDENTITY_NUMBER: "identity_number",
    "assurance_level": "assurance_level",
    "card_status": "card_status",
    "card_kinds": "card_kinds",
    "enterprise": "enterprise",
    "enterprise_roles": "enterprise_roles",
}

ClaimsProvider = Callable[[Session, Person], dict[str, Any]]
_providers: dict[str, ClaimsProvider] = {}


def register_claims_provider(scope: str, provider: ClaimsProvider) -> None:
    """Let another package supply the claims of ``scope`` (e.g. the card package)."""
    _providers[scope] = provider


@dataclass(frozen=True)
class ClaimsRequest:
    """The ``claims`` parameter: claims asked for the ID token and for userinfo."""

    id_token: dict[str, Any]
    userinfo: dict[str, Any]

    @classmethod
    def parse(cls, text: str | None) -> ClaimsRequest | None:
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise InvalidRequest("the claims parameter is not JSON") from None
        if not isinstance(value, dict):
            raise InvalidRequest("the claims parameter must be a JSON object")
        parts = {}
        for target in ("id_token", "userinfo"):
            part = value.get(target) or {}
            if not isinstance(part, dict) or not all(
                entry is None or isinstance(entry, dict) for entry in part.values()
            ):
                raise InvalidRequest(f"claims.{target} must map claim names to objects or null")
            parts[target] = {name: entry for name, entry in part.items() if name in ALL_CLAIMS}
        return cls(parts["id_token"], parts["userinfo"])

    def to_json(self) -> dict[str, Any]:
        return {"id_token": self.id_token, "userinfo": self.userinfo}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ClaimsRequest | None:
        return cls(value.get("id_token", {}), value.get("userinfo", {})) if value else None

    def names(self) -> set[str]:
        return set(self.id_token) | set(self.userinfo)


def scope_of_claim(claim: str) -> str | None:
    if claim == FULL_IDENTITY_NUMBER:
        return "identity"
    return next((scope for scope, claims in SCOPE_CLAIMS.items() if claim in claims), None)


def released_claims(
    scopes: Iterable[str],
    claims_request: ClaimsRequest | None,
    *,
    allowed_scopes: Iterable[str],
    full_identity_number: bool,
) -> list[str]:
    """Every claim a grant of ``scopes`` (plus individually requested claims) releases.

    A claim asked through the ``claims`` parameter is released only if its scope is one the
    client may use; the full identity number only to a client allowed it.
    """
    allowed = set(allowed_scopes)
    names: list[str] = []
    for scope in scopes:
        names.extend(SCOPE_CLAIMS.get(scope, ()))
    if "identity" in scopes and full_identity_number:
        names.append(FULL_IDENTITY_NUMBER)
    for claim in sorted(claims_request.names() if claims_request else ()):
        scope = scope_of_claim(claim)
        if scope is None or scope not in allowed:
            continue
        if claim == FULL_IDENTITY_NUMBER and not full_identity_number:
            continue
        names.append(claim)
    return list(dict.fromkeys(names))


def consent_attributes(claims: Iterable[str], *, pairwise: bool) -> list[str]:
    """The attributes the consent page names, one per kind of data. The identifier is named
    for what it is: one for this portal alone (pairwise), or one other portals may share."""
    attributes = [CONSENT_ATTRIBUTE[c] for c in claims if c in CONSENT_ATTRIBUTE]
    if not pairwise:
        attributes = ["sub_public" if a == "sub" else a for a in attributes]
    return list(dict.fromkeys(attributes))


@dataclass(frozen=True)
class ClaimContext:
    """What claim values depend on besides the person: the chosen enterprise, the client."""

    client_id: str
    enterprise_id: uuid.UUID | None = None


def claim_values(
    session: Session,
    sealer: Sealer,
    person: Person,
    names: Iterable[str],
    context: ClaimContext,
) -> dict[str, Any]:
    """Values of the claims ``names`` (``sub`` excluded: it depends on the client)."""
    wanted = set(names)
    values: dict[str, Any] = {}
    if "name" in wanted:
        values["name"] = person.name
    if "phone_number" in wanted and person.phone:
        # OIDC Core §5.1 recommends E.164; mainland numbers are stored without +86.
        phone = person.phone
        values["phone_number"] = phone if phone.startswith("+") else "+86" + phone
        values["phone_number_verified"] = False
    if "email" in wanted and person.email:
        values["email"] = person.email
        values["email_verified"] = False
    if "identity_number_masked" in wanted:
        values["identity_number_masked"] = person.identity_number_masked
    if "assurance_level" in wanted:
        values["assurance_level"] = person.assurance_level
    if FULL_IDENTITY_NUMBER in wanted:
        # Released only under an administrator's allowance and the citizen's consent; every
        # release is an audited access to the sealed number.
        values[FULL_IDENTITY_NUMBER] = reveal_identity_number(
            session, sealer, person, actor=Actor("client", context.client_id)
        )
    if wanted & {"enterprise", "enterprise_roles"} and context.enterprise_id:
        values.update(_enterprise_claims(session, person, context.enterprise_id))
    for scope, provider in _providers.items():
        if wanted & set(SCOPE_CLAIMS.get(scope, ())):
            provided = provider(session, person)
            values.update({k: v for k, v in provided.items() if k in wanted})
    if "card_status" in wanted and "card" not in _providers:
        values["card_status"] = None  # the card package is not installed: no card to report
        values["card_kinds"] = []
    return values


def _enterprise_claims(
    session: Session, person: Person, enterprise_id: uuid.UUID
) -> dict[str, Any]:
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None or enterprise.status != "active":
        return {}
    roles = acting_roles(session, enterprise, person.id)
    if not roles:
        return {}  # the role was withdrawn since the choice: say nothing about the enterprise
    return {
        "enterprise": {
            "id": str(enterprise.id),
            "name": enterprise.name,
            "credit_code": enterprise.credit_code,
        },
        "enterprise_roles": sorted(roles),
    }
