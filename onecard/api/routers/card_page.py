"""The citizen's card page (``/card``): the live QR code with its countdown, the card's
status, reporting it lost and replacing it, the linked cards, and who verified the card.

The code on the page is replaced before it expires: ``/static/card.js`` asks
``/card/code`` for a new one (JSON, the image inline as a ``data:`` URI) ten seconds before the
end, and a browser without scripts reloads the whole page instead (``<noscript>`` refresh).
Sign-in and the page session are :mod:`onecard.api.portal`'s.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from onecard.api.deps import Principal, RuntimeDep
from onecard.api.pages import render
from onecard.api.portal import (
    CARD_PAGE,
    error_page,
    finish_sign_in,
    locale_of,
    logout_url,
    page_csrf_ok,
    page_csrf_token,
    page_principal,
    start_sign_in,
)
from onecard.api.problems import problem, status_of
from onecard.api.routers.cards import card_of, sign_code
from onecard.api.runtime import Runtime
from onecard.card import cards, links, qr, terminals
from onecard.card.models import Card, CardStatus
from onecard.card.purpose import Purpose
from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE, MAX_LIFETIME
from onecard.core import clock
from onecard.core.errors import OnecardError
from onecard.core.jose import Signer

router = APIRouter(include_in_schema=False)
_REFRESH_BEFORE_SECONDS = 10  # a new code this long before the shown one expires
_RECENT_VERIFICATIONS = 10
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PurposeQuery = Annotated[Purpose, Query()]


def _code_view(runtime: Runtime, signer: Signer, card: Card, purpose: Purpose) -> dict[str, object]:
    now = clock.now()
    code = sign_code(runtime, signer, card, purpose, now)
    svg = base64.b64encode(qr.render_svg(code.token)).decode()
    return {
        "token": code.token,
        "purpose": str(purpose),
        "expires_at": int(code.expires_at.timestamp()),
        # The script counts down from the server's time, not the device's.
        "now": int(now.timestamp()),
        "image": f"data:image/svg+xml;base64,{svg}",
    }


def _signed_in(runtime: Runtime, request: Request) -> Principal | None:
    with runtime.database.read_session() as session:
        return page_principal(runtime, session, request, CARD_PAGE)


def _page(runtime: Runtime, request: Request, purpose: Purpose) -> Response:
    # One read for the whole page; the code is signed once it is over.
    with runtime.database.read_session() as session:
        principal = page_principal(runtime, session, request, CARD_PAGE)
        if principal is not None:
            person_id = principal.require_person()
            card = cards.card_of_person(session, person_id)
            linked = links.links_of(session, person_id)
            recent = terminals.verifications_of(session, person_id, limit=_RECENT_VERIFICATIONS)
            signer = runtime.keyring.signer(session, CARD_KEY_PURPOSE, CARD_ALG)
    if principal is None:
        return start_sign_in(runtime, request, CARD_PAGE)
    code = None
    if card is not None and card.status == CardStatus.ACTIVE:
        code = _code_view(runtime, signer, card, purpose)
    return render(
        "card.html",
        locale=locale_of(request),
        card=card,
        code=code,
        purpose=str(purpose),
        purposes=[str(p) for p in Purpose],
        lifetime=int(MAX_LIFETIME.total_seconds()),
        reload_after=int(MAX_LIFETIME.total_seconds()) - _REFRESH_BEFORE_SECONDS,
        refresh_before=_REFRESH_BEFORE_SECONDS,
        links=linked,
        verifications=recent.items,
        csrf_token=page_csrf_token(runtime, request, CARD_PAGE),
        logout_url=logout_url(runtime, CARD_PAGE),
    )


@router.get(CARD_PAGE.path)
def card_page(
    request: Request, runtime: RuntimeDep, purpose: PurposeQuery = Purpose.TRANSIT
) -> Response:
    return _page(runtime, request, purpose)


@router.get(CARD_PAGE.callback_path)
def card_callback(request: Request, runtime: RuntimeDep) -> Response:
    return finish_sign_in(runtime, request, CARD_PAGE)


@router.get(CARD_PAGE.path + "/code")
def card_page_code(
    request: Request, runtime: RuntimeDep, purpose: PurposeQuery = Purpose.TRANSIT
) -> Response:
    """A new code for the page's script; 401 when the page must sign in again."""
    with runtime.database.read_session() as session:
        principal = page_principal(runtime, session, request, CARD_PAGE)
        if principal is not None:
            card = card_of(session, principal.require_person())
            signer = runtime.keyring.signer(session, CARD_KEY_PURPOSE, CARD_ALG)
    if principal is None:
        response: Response = problem(401, "sign_in_required", "Sign in again")
    else:
        response = JSONResponse(_code_view(runtime, signer, card, purpose))
    response.headers.update(_NO_STORE)
    return response


CardAct = Callable[[Session, Principal], None]


def _card_action(
    request: Request, runtime: Runtime, form: dict[str, str], act: CardAct
) -> Response:
    """Run one of the page's forms: CSRF checked, the change in one transaction."""
    if not page_csrf_ok(runtime, request, CARD_PAGE, form.get("csrf_token")):
        return error_page(request, "csrf", "the page has expired; open it again", 403)
    principal = _signed_in(runtime, request)
    if principal is None:
        return start_sign_in(runtime, request, CARD_PAGE)
    try:
        with runtime.database.session() as session:
            act(session, principal)
    except OnecardError as exc:
        return error_page(request, exc.code, exc.detail, status_of(exc))
    return RedirectResponse(CARD_PAGE.path, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=10)
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _get_card(session: Session, principal: Principal) -> None:
    cards.issue_card(session, principal.require_person(), actor=principal.actor)


def _change_own_card(change: Callable[..., object], reason: str) -> CardAct:
    def act(session: Session, principal: Principal) -> None:
        card = cards.card_of_person(session, principal.require_person())
        if card is not None:
            change(session, card.id, actor=principal.actor, reason=reason)

    return act


def _form_route(path: str, act: CardAct) -> None:
    async def endpoint(request: Request, runtime: RuntimeDep) -> Response:
        form = await _form(request)
        return await run_in_threadpool(_card_action, request, runtime, form, act)

    router.add_api_route(CARD_PAGE.path + path, endpoint, methods=["POST"])


_form_route("/get", _get_card)
_form_route("/report-lost", _change_own_card(cards.report_lost, "reported lost on the card page"))
_form_route("/reissue", _change_own_card(cards.reissue, "replaced on the card page"))
