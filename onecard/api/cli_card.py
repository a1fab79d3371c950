"""``onecard terminal`` and ``onecard card``: the one-card from the command line (DESIGN.md §6).

``terminal create`` / ``list`` / ``disable`` keep the register of service counters and transit
gates; each terminal authenticates as a client of its own, whose secret ``create`` prints once.

``card verify`` runs the offline verifier (:mod:`onecard.card.verify`) on one code, given as its
text (``OC1:…``) or as an image of the QR code. The trust material is, by default, a trust list
and JWKS built from this service's database, as ``GET /v1/cards/trust-list`` and
``GET /.well-known/jwks.json`` would serve them; with ``--trust-list`` and ``--jwks`` it is the
files a terminal cached from those two addresses, and no database is opened. Images are decoded
with zxing-cpp (:func:`onecard.card.qr.read_code`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlmodel import Session

from onecard.api.cli import _actor, _runtime, _session, _show, console, err
from onecard.api.schemas import NewTerminalOut, TerminalOut
from onecard.card.models import Terminal
from onecard.card.purpose import Purpose
from onecard.card.qr import read_code
from onecard.card.terminals import (
    TerminalSpec,
    client_ids,
    create_terminal,
    disable_terminal,
    list_terminals,
)
from onecard.card.token import PREFIX, InvalidCard, parse_claims, parse_token
from onecard.card.trustlist import (
    InvalidTrustList,
    TrustList,
    card_reference_text,
)
from onecard.card.verify import OfflineVerifier, VerifiedCard
from onecard.core import clock
from onecard.core.errors import InvalidInput
from onecard.core.pagination import MAX_LIMIT

terminal_app = typer.Typer(
    help="Terminals: the service counters and transit gates that verify card codes.",
    no_args_is_help=True,
)
card_app = typer.Typer(help="The one-card: verify a QR code offline.", no_args_is_help=True)

_PAGE_SIZE = MAX_LIMIT  # terminals read per query by `terminal list`
_PURPOSES = ", ".join(p.value for p in Purpose)


# -- terminal -----------------------------------------------------------------------------


@terminal_app.command("create")
def terminal_create(
    name: Annotated[str, typer.Option(help="What staff call it, e.g. 'Gate 3'.")],
    location: Annotated[str, typer.Option(help="Where it stands.")],
    organisation: Annotated[str, typer.Option(help="Who runs it.")],
    purpose: Annotated[str, typer.Option(help=f"What it verifies codes for: {_PURPOSES}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a terminal and the client it authenticates as; its secret is printed once."""
    spec = TerminalSpec(name, location, organisation, purpose)  # type: ignore[arg-type]
    with _session() as (_, session):
        made = create_terminal(session, spec, actor=_actor())
        data = NewTerminalOut.of(made).model_dump(mode="json")
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    _show(data)
    err.print("the client secret is shown once: store it now")


@terminal_app.command("list")
def terminal_list() -> None:
    """List every terminal, oldest first, disabled ones included."""
    table = Table("id", "name", "location", "organisation", "purpose", "client_id", "status")
    with _session() as (_, session):
        for terminal, client_id in _all_terminals(session):
            view = TerminalOut.of(terminal, client_id)
            table.add_row(
                str(view.id),
                view.name,
                view.location,
                view.organisation,
                view.purpose,
                view.client_id,
                view.status,
            )
    if table.row_count == 0:
        console.print("no terminals registered")
        return
    console.print(table)


@terminal_app.command("disable")
def terminal_disable(
    terminal_id: Annotated[str, typer.Argument(help="The terminal's id (a UUID).")],
) -> None:
    """Disable a terminal and its client for good: its tokens stop working at once."""
    with _session() as (_, session):
        terminal = disable_terminal(session, _terminal_id(terminal_id), actor=_actor())
        name = terminal.name
    console.print(f"disabled terminal {terminal_id} ({name})", highlight=False)


def _all_terminals(session: Session) -> Iterator[tuple[Terminal, str]]:
    cursor: str | None = None
    while True:
        page = list_terminals(session, limit=_PAGE_SIZE, cursor=cursor)
        clients = client_ids(session, page.items)
        yield from ((terminal, clients[terminal.client_id]) for terminal in page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _terminal_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput("a terminal id is a UUID", code="terminal_id_invalid") from None


# -- card verify --------------------------------------------------------------------------


@card_app.command("verify")
def card_verify(
    code: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN_OR_IMAGE",
            help="The code's text (it starts with OC1:) or the path of an image of the QR code.",
        ),
    ],
    purpose: Annotated[
        Purpose | None,
        typer.Option(help="Verify for this purpose (default: the one the code claims)."),
    ] = None,
    trust_list: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A trust list a terminal cached (GET /v1/cards/trust-list); needs --jwks.",
        ),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The service's JWKS (GET /.well-known/jwks.json); needs --trust-list.",
        ),
    ] = None,
) -> None:
    """Verify a card QR code offline, as a terminal does: print the card it names, or why it is
    refused (exit status 1). Trust material comes from this service's database, or from
    --trust-list and --jwks files (then no database is needed)."""
    text = code if code.startswith(PREFIX) else _decode_image(Path(code))
    try:
        wanted = purpose or parse_claims(parse_token(text).payload).purpose
        if trust_list is not None or jwks is not None:
            trusted = _trust_list_from_files(trust_list, jwks)
        else:
            trusted = _trust_list_from_database()
        verifier = OfflineVerifier(trusted, clock=lambda: clock.now().timestamp())
        verified = verifier.verify(text, purpose=wanted)
    except InvalidCard as exc:
        err.print(f"[red]refused[/red]: {exc.reason} ({exc.detail})", highlight=False)
        raise typer.Exit(1) from None
    _print_verified(verified)


def _print_verified(verified: VerifiedCard) -> None:
    lines = (
        ("card", card_reference_text(verified.card_reference)),
        ("purpose", verified.purpose.value),
        ("issued", _time(verified.issued_at)),
        ("expires", _time(verified.expires_at)),
        ("kid", verified.kid),
    )
    console.print("[green]valid[/green]")
    for label, value in lines:
        console.print(f"{label:8} {value}", highlight=False, soft_wrap=True)


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _trust_list_from_database() -> TrustList:
    # What GET /v1/cards/trust-list and /.well-known/jwks.json would serve now.
    with _runtime() as runtime, runtime.database.read_session() as session:
        jws = runtime.trust_list.current(session)  # publishes it, if due, in its own write
        jwks = runtime.keyring.jwks(session)
    return _load_trust_list(jws, jwks)


def _trust_list_from_files(trust_list: Path | None, jwks: Path | None) -> TrustList:
    if trust_list is None or jwks is None:
        raise InvalidInput("--trust-list and --jwks go together", code="trust_material_incomplete")
    try:
        jws = trust_list.read_text(encoding="ascii").strip()
    except ValueError:
        raise InvalidInput("the trust list file is not text", code="trust_list_malformed") from None
    try:
        key_set = json.loads(jwks.read_text(encoding="utf-8"))
    except ValueError:
        raise InvalidInput("the JWKS file is not JSON", code="jwks_malformed") from None
    return _load_trust_list(jws, key_set)


def _load_trust_list(jws: str, jwks: Mapping[str, Any]) -> TrustList:
    try:
        return TrustList.from_jws(jws, jwks, now=clock.now())
    except InvalidTrustList as exc:
        raise InvalidInput(
            f"the trust list cannot be used: {exc.detail}", code=f"trust_list_{exc.reason}"
        ) from None


def _decode_image(path: Path) -> str:
    """The one card code in an image of a QR code (PNG, JPEG, … whatever Pillow opens)."""
    if not path.is_file():
        raise InvalidInput(
            f"{path} is not a file (a code's text starts with {PREFIX})", code="image_not_found"
        )
    return read_code(path.read_bytes())
