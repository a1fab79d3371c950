"""The counter page (``/counter``): a card officer pastes or scans a citizen's QR code, or
takes a photo of it, and sees what the counter's terminal may learn.

The officer verifies *as* one of the registered terminals (the counter they sit at, with its
location, organisation and purpose), chosen on the page and remembered in a cookie. The code is
verified exactly as ``POST /v1/cards/verify`` verifies it for that terminal (signature, times,
purpose, the card's status, the ``cti`` consumed once across all workers), and the record
names both the terminal and the officer. A handheld scanner that types the code and presses
Enter works with the text field; a photo (a phone's camera, ``capture``) is read on the server
with zxing-cpp. The page needs the ``card_officer`` role at assurance level 2 (the sign-in
asks for the second factor); it works without scripts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import select
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from onecard.api.browser import set_cookie
from onecard.api.deps import Principal, RuntimeDep
from onecard.api.pages import render
from onecard.api.portal import (
    COUNTER_PAGE,
    error_page,
    finish_sign_in,
    locale_of,
    logout_url,
    page_csrf_ok,
    page_csrf_token,
    page_principal,
    start_sign_in,
)
from onecard.api.runtime import Runtime
from onecard.card import qr
from onecard.card.models import Terminal, TerminalStatus
from onecard.card.online import Disclosure
from onecard.card.token import MAX_TOKEN_LENGTH, InvalidCard
from onecard.core.errors import InvalidInput
from onecard.identity.models import StaffRoleName

router = APIRouter(include_in_schema=False)
TERMINAL_COOKIE = "oc_counter_terminal"
_MAX_TERMINALS = 500
_MAX_BODY = qr.MAX_IMAGE_BYTES + 64 * 1024  # one photo and a few short fields


@dataclass(frozen=True)
class Outcome:
    """What the officer sees after one code: the disclosure, or why the code was refused."""

    terminal: Terminal
    disclosure: Disclosure | None = None
    refused: str | None = None


def _officer(runtime: Runtime, request: Request) -> Principal | None:
    with runtime.database.read_session() as session:
        return page_principal(runtime, session, request, COUNTER_PAGE)


def _terminals(runtime: Runtime) -> list[Terminal]:
    with runtime.database.read_session() as session:
        query = (
            select(Terminal)
            .where(Terminal.status == TerminalStatus.ACTIVE)
            .order_by(Terminal.organisation, Terminal.location, Terminal.name)  # type: ignore[arg-type]
            .limit(_MAX_TERMINALS)
        )
        return list(session.exec(query).all())


def _page(
    runtime: Runtime,
    request: Request,
    *,
    chosen: str | None,
    outcome: Outcome | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        "counter.html",
        locale=locale_of(request),
        status_code=status_code,
        terminals=_terminals(runtime),
        chosen=chosen or request.cookies.get(TERMINAL_COOKIE),
        outcome=outcome,
        error=error,
        csrf_token=page_csrf_token(runtime, request, COUNTER_PAGE),
        logout_url=logout_url(runtime, COUNTER_PAGE),
        max_length=MAX_TOKEN_LENGTH,
    )


def _admit(runtime: Runtime, request: Request) -> Principal | Response:
    """The signed-in card officer, or the response that sends anyone else away."""
    principal = _officer(runtime, request)
    if principal is None:
        return start_sign_in(runtime, request, COUNTER_PAGE)
    if StaffRoleName.CARD_OFFICER not in principal.roles:
        return error_page(request, "forbidden", "the counter page is for card officers", status=403)
    return principal


@router.get(COUNTER_PAGE.path)
def counter_page(request: Request, runtime: RuntimeDep) -> Response:
    admitted = _admit(runtime, request)
    if isinstance(admitted, Response):
        return admitted
    return _page(runtime, request, chosen=None)


@router.get(COUNTER_PAGE.callback_path)
def counter_callback(request: Request, runtime: RuntimeDep) -> Response:
    return finish_sign_in(runtime, request, COUNTER_PAGE)


async def _read_body(request: Request) -> bool:
    """Read the body, refusing one larger than a photo; ``False`` when it is too large.

    Starlette does not bound an uploaded file's size, so the body is read here first, with
    the bound, and the form is parsed from what was kept."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY:
        return False
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            return False
        chunks.append(chunk)
    request._body = b"".join(chunks)  # Request.form() then parses these bytes
    return True


@router.post(COUNTER_PAGE.path)
async def counter_verify(request: Request, runtime: RuntimeDep) -> Response:
    # Who is asking first: nobody but a signed-in card officer gets a 10 MB upload read.
    admitted = await run_in_threadpool(_admit, runtime, request)
    if isinstance(admitted, Response):
        return admitted
    if not await _read_body(request):
        return error_page(request, "image_too_large", "the photo is larger than 10 MB", 413)
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    except MultiPartException:
        return error_page(request, "invalid_form", "the form could not be read", 400)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    photo = form.get("photo")
    image = await photo.read() if isinstance(photo, UploadFile) else b""
    await form.close()
    return await run_in_threadpool(_verify, request, runtime, admitted, fields, image)


def _verify(
    request: Request,
    runtime: Runtime,
    officer: Principal,
    fields: dict[str, str],
    image: bytes,
) -> Response:
    if not page_csrf_ok(runtime, request, COUNTER_PAGE, fields.get("csrf_token")):
        return error_page(request, "csrf", "the page has expired; open it again", 403)
    chosen = fields.get("terminal", "")
    try:
        terminal = _chosen_terminal(runtime, chosen)
        text = _code_text(fields.get("code", ""), image)
    except InvalidInput as exc:
        return _page(runtime, request, chosen=chosen, error=exc.code, status_code=422)
    try:
        with runtime.database.read_session() as session:
            checked = runtime.cards.check(session, text, terminal)
        disclosure = runtime.verifications.submit((checked, terminal, officer.actor))
        outcome = Outcome(terminal, disclosure=disclosure)
    except InvalidCard as exc:
        outcome = Outcome(terminal, refused=str(exc.reason))
    response = _page(runtime, request, chosen=chosen, outcome=outcome)
    set_cookie(runtime, response, TERMINAL_COOKIE, str(terminal.id), path=COUNTER_PAGE.path)
    return response


def _chosen_terminal(runtime: Runtime, chosen: str) -> Terminal:
    try:
        terminal_id = uuid.UUID(chosen)
    except ValueError:
        raise InvalidInput("choose the counter's terminal", code="terminal_required") from None
    with runtime.database.read_session() as session:
        terminal = session.get(Terminal, terminal_id)
    if terminal is None or terminal.status != TerminalStatus.ACTIVE:
        raise InvalidInput("that terminal is not active", code="terminal_not_active")
    return terminal


def _code_text(code: str, image: bytes) -> str:
    """The code typed, pasted or scanned into the field, else the one in the photo."""
    # A scanner or a paste may add a line break; spaces are left alone: Base45 has one.
    text = code.strip("\r\n\t")
    if text:
        return text
    if image:
        return qr.read_code(image)
    raise InvalidInput("paste, scan or photograph a code", code="code_required")
