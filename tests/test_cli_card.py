"""``onecard terminal`` and ``onecard card verify``: registering, listing and disabling
terminals, and verifying card codes offline (as text or as a PNG of the QR code) with trust
material from the database or from the files a terminal caches, on a fresh database."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from PIL import Image

from onecard.card import cards
from onecard.card.purpose import Purpose
from onecard.card.qr import render_png
from onecard.card.token import issue_token
from onecard.card.trustlist import build_trust_list, card_reference_text
from onecard.core import clock
from onecard.core.audit import Actor
from onecard.core.settings import get_settings
from tests import factories
from tests.card.qr_support import stranger_signer

OFFICER = Actor.cli("officer")


@pytest.fixture
def runtime(cli):  # type: ignore[no-untyped-def]
    """A runtime on the CLI's database, to issue cards and codes as the service would."""
    from onecard.api.runtime import build_runtime

    _, database = cli
    built = build_runtime(get_settings(), database=database)
    yield built
    built.issuance.close()


@pytest.fixture
def wide(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Room for the terminal table's ids on one line (Rich reads COLUMNS when it prints)."""
    monkeypatch.setenv("COLUMNS", "250")


def _card(runtime):  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        person = factories.person(session, runtime.sealer)
        card = cards.issue_card(session, person.id, actor=OFFICER)
        return card.id, card.reference


def _code(runtime, reference: bytes, *, purpose=Purpose.TRANSIT, now=None, signer=None) -> str:  # type: ignore[no-untyped-def]
    if signer is None:
        with runtime.database.session() as session:
            signer = runtime.keyring.signer(session, "card", "ES256")
    return issue_token(
        signer,
        issuer=runtime.provider.issuer,
        card_reference=reference,
        purpose=purpose,
        now=now or clock.now(),
    )


def _create_terminal(run, name: str, purpose: str = "transit") -> dict:  # type: ignore[no-untyped-def]
    output = run(
        "terminal",
        "create",
        "--name",
        name,
        "--location",
        "Line 1, People's Square",
        "--organisation",
        "City Metro",
        "--purpose",
        purpose,
        "--json",
    )
    return json.loads(output)


# -- terminal -----------------------------------------------------------------------------


def test_terminal_create_list_and_disable(cli, wide) -> None:
    run, _ = cli
    made = _create_terminal(run, "Gate 3")
    assert set(made) == {"terminal_id", "client_id", "client_secret"}
    output = run(
        "terminal",
        "create",
        "--name",
        "Counter 1",
        "--location",
        "District office",
        "--organisation",
        "Social Security Bureau",
        "--purpose",
        "social_security",
    )
    assert "client_secret" in output
    assert "shown once" in output

    listing = run("terminal", "list")
    row = next(line for line in listing.splitlines() if made["terminal_id"] in line)
    for value in ("Gate 3", "City Metro", "transit", made["client_id"], "active"):
        assert value in row
    assert "social_security" in listing
    assert made["client_secret"] not in listing

    assert "disabled terminal" in run("terminal", "disable", made["terminal_id"])
    listing = run("terminal", "list")
    row = next(line for line in listing.splitlines() if made["terminal_id"] in line)
    assert "disabled" in row
    assert json.loads(run("client", "show", made["client_id"]))["status"] == "disabled"


def test_terminal_list_reads_every_page(cli, wide, monkeypatch) -> None:
    from onecard.api import cli_card

    run, _ = cli
    assert "no terminals registered" in run("terminal", "list")
    monkeypatch.setattr(cli_card, "_PAGE_SIZE", 2)
    made = [_create_terminal(run, f"Gate {n}")["terminal_id"] for n in range(5)]
    listing = run("terminal", "list")
    assert all(terminal_id in listing for terminal_id in made)


def test_terminal_errors_are_one_line_messages(cli) -> None:
    run, _ = cli
    output = run(
        "terminal",
        "create",
        "--name",
        "Gate 9",
        "--location",
        "Depot",
        "--organisation",
        "City Metro",
        "--purpose",
        "parking",
        code=2,
    )
    assert "terminal_purpose_invalid" in output
    assert "one of transit, social_security, bank" in " ".join(output.split())  # Rich wraps
    assert "Traceback" not in output
    assert "terminal_not_found" in run("terminal", "disable", str(uuid.uuid4()), code=2)
    assert "terminal_id_invalid" in run("terminal", "disable", "gate-3", code=2)


# -- card verify --------------------------------------------------------------------------


def test_a_fresh_code_verifies_for_the_purpose_it_claims(cli, runtime) -> None:
    run, _ = cli
    _, reference = _card(runtime)
    code = _code(runtime, reference, purpose=Purpose.BANK)
    output = run("card", "verify", code)
    assert "valid" in output
    assert card_reference_text(reference) in output
    assert "bank" in output
    assert run("card", "verify", code, "--purpose", "bank") == output  # a new verifier each run
    assert "wrong_purpose" in run("card", "verify", code, "--purpose", "transit", code=1)


def test_expired_forged_garbage_and_suspended_codes_are_refused(cli, runtime) -> None:
    run, _ = cli
    card_id, reference = _card(runtime)
    expired = _code(runtime, reference, now=clock.now() - timedelta(minutes=2))
    assert "refused: expired" in run("card", "verify", expired, code=1)
    assert "refused: bad_encoding" in run("card", "verify", "OC1:garbage", code=1)
    forged = _code(runtime, reference, signer=stranger_signer())
    assert "refused: unknown_kid" in run("card", "verify", forged, code=1)

    code = _code(runtime, reference)
    run("card", "verify", code)
    with runtime.database.session() as session:
        cards.suspend(session, card_id, actor=OFFICER, reason="reported at the counter")
    assert "refused: card_inactive" in run("card", "verify", code, code=1)


def test_a_png_of_the_qr_code_verifies(cli, runtime, tmp_path) -> None:
    run, _ = cli
    _, reference = _card(runtime)
    image = tmp_path / "code.png"
    image.write_bytes(render_png(_code(runtime, reference)))
    assert card_reference_text(reference) in run("card", "verify", str(image))

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    assert "image_without_code" in run("card", "verify", str(blank), code=2)
    assert "image_not_found" in run("card", "verify", str(tmp_path / "missing.png"), code=2)


def test_cached_trust_list_and_jwks_files_need_no_database(
    cli, runtime, tmp_path, monkeypatch
) -> None:
    run, _ = cli
    _, reference = _card(runtime)
    code = _code(runtime, reference)
    now = clock.now()
    with runtime.database.session() as session:
        jws = build_trust_list(
            session, runtime.keyring, issuer=runtime.provider.issuer, inactive=(), now=now
        )
        stale = build_trust_list(
            session,
            runtime.keyring,
            issuer=runtime.provider.issuer,
            inactive=(),
            now=now - timedelta(days=3),
        )
        jwks = runtime.keyring.jwks(session)
    trust_list, key_set, old = tmp_path / "trust-list.jws", tmp_path / "jwks.json", tmp_path / "old"
    trust_list.write_text(jws)
    key_set.write_text(json.dumps(jwks))
    old.write_text(stale)
    # No master key and another database: building the runtime would now fail (exit status 2).
    monkeypatch.setenv("ONECARD_DATABASE_URL", f"sqlite:///{tmp_path}/no/such/dir/onecard.db")
    monkeypatch.delenv("ONECARD_MASTER_KEY")
    get_settings.cache_clear()

    output = run("card", "verify", code, "--trust-list", str(trust_list), "--jwks", str(key_set))
    assert card_reference_text(reference) in output
    assert "trust_list_stale" in run(
        "card", "verify", code, "--trust-list", str(old), "--jwks", str(key_set), code=2
    )
    assert "trust_material_incomplete" in run(
        "card", "verify", code, "--trust-list", str(trust_list), code=2
    )
