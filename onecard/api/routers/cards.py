"""The one-card over HTTP: a citizen's card, linked cards and live QR code; card officers at
the counter; the trust list terminals cache; online verification by terminals; terminals'
registration by administrators; and "who verified my card"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from sqlmodel import Session

from onecard.api.deps import (
    Admin,
    CurrentPrincipal,
    Principal,
    RuntimeDep,
    require_scope,
    require_staff,
)
from onecard.api.runtime import Runtime
from onecard.api.schemas import (
    CardOut,
    CardReason,
    CodeOut,
    DisclosureOut,
    LinkIn,
    LinkOut,
    NewTerminalOut,
    PageOut,
    TerminalIn,
    TerminalOut,
    VerificationOut,
    VerifyIn,
)
from onecard.card import cards, links, qr, terminals
from onecard.card.models import Card, CardStatus
from onecard.card.purpose import Purpose
from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE, MAX_LIFETIME, InvalidCard, issue_token
from onecard.card.trustlist import trust_list_etag
from onecard.core import clock
from onecard.core.errors import InvalidInput, InvalidState, NotFound
from onecard.core.jose import Signer
from onecard.core.pagination import DEFAULT_LIMIT, check_limit
from onecard.identity import persons
from onecard.identity.models import StaffRoleName

router = APIRouter(tags=["cards"])
CardOfficer = Annotated[Principal, Depends(require_staff(StaffRoleName.CARD_OFFICER))]
TerminalCaller = Annotated[Principal, Depends(require_scope(terminals.VERIFY_SCOPE))]
Limit = Annotated[int, Query(ge=1, le=200)]
PurposeQuery = Annotated[Purpose, Query(description="What the code is shown for.")]
TRUST_LIST_TYPE = "application/jwt"
_TRUST_LIST_SECONDS = 60  # how long terminals and proxies may keep it


# -- the citizen's card -------------------------------------------------------------------


def card_of(session: Session, person_id: uuid.UUID) -> Card:
    """The person's open card; :class:`NotFound` when they have none."""
    card = cards.card_of_person(session, person_id)
    if card is None:
        raise NotFound("you have no card yet", code="card_not_found")
    return card


def _own_card(session: Session, principal: Principal) -> Card:
    return card_of(session, principal.require_person())


@router.post("/v1/cards/me", status_code=201, response_model=CardOut, summary="Get my card")
def request_own_card(principal: CurrentPrincipal, runtime: RuntimeDep) -> CardOut:
    with runtime.database.session() as session:
        card = cards.issue_card(session, principal.require_person(), actor=principal.actor)
        return CardOut.of(card)


@router.get("/v1/cards/me", response_model=CardOut, summary="My card")
def own_card(principal: CurrentPrincipal, runtime: RuntimeDep) -> CardOut:
    with runtime.database.read_session() as session:
        return CardOut.of(_own_card(session, principal))


@router.post(
    "/v1/cards/me/report-lost",
    response_model=CardOut,
    summary="Report my card lost: it is refused everywhere at once",
)
def report_own_card_lost(
    body: CardReason, principal: CurrentPrincipal, runtime: RuntimeDep
) -> CardOut:
    with runtime.database.session() as session:
        card = _own_card(session, principal)
        lost = cards.report_lost(session, card.id, actor=principal.actor, reason=body.reason)
        return CardOut.of(lost)


@router.post(
    "/v1/cards/me/reissue",
    status_code=201,
    response_model=CardOut,
    summary="Replace my card: a new number; the old card is closed",
)
def reissue_own_card(body: CardReason, principal: CurrentPrincipal, runtime: RuntimeDep) -> CardOut:
    with runtime.database.session() as session:
        card = _own_card(session, principal)
        reason = body.reason or "reissued at the citizen's request"
        return CardOut.of(cards.reissue(session, card.id, actor=principal.actor, reason=reason))


# -- the live QR code ---------------------------------------------------------------------


def sign_code(
    runtime: Runtime, signer: Signer, card: Card, purpose: Purpose, now: datetime
) -> CodeOut:
    """A fresh QR code token for ``card``, which must be active, issued at ``now``."""
    if card.status != CardStatus.ACTIVE:
        raise InvalidState(f"the card is {card.status}", code="card_not_active")
    token = issue_token(
        signer,
        issuer=runtime.provider.issuer,
        card_reference=card.reference,
        purpose=purpose,
        now=now,
    )
    expires_at = datetime.fromtimestamp(int(now.timestamp()), UTC) + MAX_LIFETIME
    return CodeOut(token=token, purpose=purpose, expires_at=expires_at)


def card_code(runtime: Runtime, person_id: uuid.UUID, purpose: Purpose) -> CodeOut:
    """A fresh QR code token for the person's active card. The signature is made after the
    read session ends, so it holds nothing while signing."""
    with runtime.database.read_session() as session:
        card = card_of(session, person_id)
        signer = runtime.keyring.signer(session, CARD_KEY_PURPOSE, CARD_ALG)
    return sign_code(runtime, signer, card, purpose, clock.now())


_NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/v1/cards/me/qr",
    response_model=CodeOut,
    summary="A QR code token for my card, valid for 60 seconds",
)
def own_code(
    principal: CurrentPrincipal, runtime: RuntimeDep, purpose: PurposeQuery = Purpose.TRANSIT
) -> Response:
    code = card_code(runtime, principal.require_person(), purpose)
    return Response(code.model_dump_json(), media_type="application/json", headers=_NO_STORE)


@router.get(
    "/v1/cards/me/qr.png",
    summary="The QR code as a PNG image",
    responses={200: {"content": {"image/png": {}}}},
)
def own_code_png(
    principal: CurrentPrincipal, runtime: RuntimeDep, purpose: PurposeQuery = Purpose.TRANSIT
) -> Response:
    code = card_code(runtime, principal.require_person(), purpose)
    return Response(qr.render_png(code.token), media_type="image/png", headers=_NO_STORE)


@router.get(
    "/v1/cards/me/qr.svg",
    summary="The QR code as an SVG image",
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def own_code_svg(
    principal: CurrentPrincipal, runtime: RuntimeDep, purpose: PurposeQuery = Purpose.TRANSIT
) -> Response:
    code = card_code(runtime, principal.require_person(), purpose)
    return Response(qr.render_svg(code.token), media_type="image/svg+xml", headers=_NO_STORE)


# -- linked cards -------------------------------------------------------------------------


@router.get("/v1/cards/me/links", response_model=list[LinkOut], summary="My linked cards")
def own_links(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[LinkOut]:
    with runtime.database.read_session() as session:
        return [LinkOut.of(view) for view in links.links_of(session, principal.require_person())]


@router.post("/v1/cards/me/links", status_code=201, response_model=LinkOut, summary="Link a card")
def link_own(body: LinkIn, principal: CurrentPrincipal, runtime: RuntimeDep) -> LinkOut:
    with runtime.database.session() as session:
        view = links.link(
            session,
            runtime.sealer,
            principal.require_person(),
            body.kind,
            body.number,
            operator=body.operator,
            actor=principal.actor,
            level=principal.level,
        )
        return LinkOut.of(view)


@router.delete("/v1/cards/me/links/{link_id}", status_code=204, summary="Unlink one of my cards")
def unlink_own(link_id: uuid.UUID, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response:
    with runtime.database.session() as session:
        links.unlink(
            session,
            link_id,
            actor=principal.actor,
            reason="unlinked by the citizen",
            person_id=principal.require_person(),
        )
    return Response(status_code=204)


@router.get(
    "/v1/cards/me/verifications",
    response_model=PageOut[VerificationOut],
    summary="Who verified my card, newest first",
)
def own_verifications(
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[VerificationOut]:
    check_limit(limit)
    with runtime.database.read_session() as session:
        page = terminals.verifications_of(
            session, principal.require_person(), limit=limit, cursor=cursor
        )
    return PageOut(items=[VerificationOut.of(v) for v in page.items], next_cursor=page.next_cursor)


# -- card officers at the counter ---------------------------------------------------------


@router.post(
    "/v1/persons/{person_id}/card",
    status_code=201,
    response_model=CardOut,
    summary="Issue a person's card (card officer)",
)
def officer_issue_card(
    person_id: uuid.UUID, principal: CardOfficer, runtime: RuntimeDep
) -> CardOut:
    with runtime.database.session() as session:
        return CardOut.of(cards.issue_card(session, person_id, actor=principal.actor))


@router.get(
    "/v1/persons/{person_id}/card", response_model=CardOut, summary="A person's card (card officer)"
)
def officer_get_card(person_id: uuid.UUID, principal: CardOfficer, runtime: RuntimeDep) -> CardOut:
    with runtime.database.read_session() as session:
        card = cards.card_of_person(session, person_id)
    if card is None:
        raise NotFound("this person has no card", code="card_not_found")
    return CardOut.of(card)


_OFFICER_ACTIONS = {
    "suspend": cards.suspend,
    "resume": cards.resume,
    "report-lost": cards.report_lost,
    "reissue": cards.reissue,
    "close": cards.close,
}


@router.post(
    "/v1/cards/{card_id}/{action}",
    response_model=CardOut,
    summary="Suspend, resume, report lost, reissue or close a card (card officer)",
)
def officer_card_action(
    card_id: uuid.UUID,
    action: Literal["suspend", "resume", "report-lost", "reissue", "close"],
    body: CardReason,
    principal: CardOfficer,
    runtime: RuntimeDep,
) -> CardOut:
    change = _OFFICER_ACTIONS[action]
    with runtime.database.session() as session:
        if body.reason is None and action in ("suspend", "reissue", "close"):
            raise InvalidInput(f"to {action} a card needs a reason", code="reason_required")
        kwargs = {"reason": body.reason} if body.reason is not None else {}
        return CardOut.of(change(session, card_id, actor=principal.actor, **kwargs))


@router.post(
    "/v1/persons/{person_id}/card-links",
    status_code=201,
    response_model=LinkOut,
    summary="Link a card for a person at the counter (card officer)",
)
def officer_link(
    person_id: uuid.UUID, body: LinkIn, principal: CardOfficer, runtime: RuntimeDep
) -> LinkOut:
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        view = links.link(
            session,
            runtime.sealer,
            person_id,
            body.kind,
            body.number,
            operator=body.operator,
            actor=principal.actor,
            level=person.assurance_level,
        )
        return LinkOut.of(view)


# -- the trust list and online verification -----------------------------------------------


@router.get(
    "/v1/cards/trust-list",
    summary="The signed trust list terminals cache: card keys and inactive cards",
    responses={200: {"content": {TRUST_LIST_TYPE: {}}}, 304: {"description": "Not modified"}},
)
def trust_list(
    runtime: RuntimeDep, if_none_match: Annotated[str | None, Header()] = None
) -> Response:
    with runtime.database.read_session() as session:
        jws = runtime.trust_list.current(session)
    etag = trust_list_etag(jws)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={_TRUST_LIST_SECONDS}"}
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(jws, media_type=TRUST_LIST_TYPE, headers=headers)


@router.post(
    "/v1/cards/verify",
    response_model=DisclosureOut,
    summary="Verify a card's QR code online (terminals, client credentials, card:verify)",
)
def verify_code(body: VerifyIn, principal: TerminalCaller, runtime: RuntimeDep) -> DisclosureOut:
    try:
        # Reads and the signature first, beside the writer; then a short, shared write.
        with runtime.database.read_session() as session:
            terminal = terminals.terminal_of_client(session, principal.client_id or "")
            checked = runtime.cards.check(session, body.token, terminal)
        # The write is shared with concurrent verifications (group commit).
        disclosure = runtime.verifications.submit((checked, terminal, principal.actor))
    except InvalidCard as exc:
        raise InvalidInput(exc.detail or "the code is not valid", code=str(exc.reason)) from None
    return DisclosureOut.of(disclosure)


# -- terminals (administrators) -----------------------------------------------------------


@router.post(
    "/v1/admin/terminals",
    status_code=201,
    response_model=NewTerminalOut,
    summary="Register a terminal and its client credentials (the secret is shown once)",
)
def create_terminal(body: TerminalIn, principal: Admin, runtime: RuntimeDep) -> NewTerminalOut:
    spec = terminals.TerminalSpec(body.name, body.location, body.organisation, body.purpose)
    with runtime.database.session() as session:
        made = terminals.create_terminal(session, spec, actor=principal.actor)
        return NewTerminalOut.of(made)


@router.get(
    "/v1/admin/terminals", response_model=PageOut[TerminalOut], summary="Registered terminals"
)
def list_terminals(
    principal: Admin, runtime: RuntimeDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> PageOut[TerminalOut]:
    check_limit(limit)
    with runtime.database.read_session() as session:
        page = terminals.list_terminals(session, limit=limit, cursor=cursor)
        clients = terminals.client_ids(session, page.items)
    items = [TerminalOut.of(t, clients[t.client_id]) for t in page.items]
    return PageOut(items=items, next_cursor=page.next_cursor)


@router.post(
    "/v1/admin/terminals/{terminal_id}/disable",
    response_model=TerminalOut,
    summary="Disable a terminal and its client",
)
def disable_terminal(terminal_id: uuid.UUID, principal: Admin, runtime: RuntimeDep) -> TerminalOut:
    with runtime.database.session() as session:
        terminal = terminals.disable_terminal(session, terminal_id, actor=principal.actor)
        clients = terminals.client_ids(session, [terminal])
    return TerminalOut.of(terminal, clients[terminal.client_id])
