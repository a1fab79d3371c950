"""The ``onecard`` command line, end to end on a fresh database: init and bootstrap, tokens,
persons, enterprises, keys, the audit trail (including a tampered row) and the CSV import."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.factories import credit_code, identity_number


def test_init_is_idempotent_and_offers_bootstrap_until_an_admin_exists(cli) -> None:
    run, _ = cli
    output = run("init")
    assert "No administrator yet" in output
    number = identity_number()
    out = run(
        "admin",
        "bootstrap",
        "--name",
        "管理员",
        "--identity-number",
        number,
        "--password",
        "a long admin passphrase",
    )
    assert "first administrator created" in out
    assert "No administrator yet" not in run("init")
    out = run(
        "admin",
        "bootstrap",
        "--name",
        "x",
        "--identity-number",
        identity_number(),
        "--password",
        "a long admin passphrase",
        code=2,
    )
    assert "already_bootstrapped" in out

    token = run("admin", "token", "--person", number, "--ttl-minutes", "30")
    assert re.search(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)  # a JWT
    assert number not in run("admin", "roles")


def test_person_and_enterprise_commands(cli) -> None:
    run, _ = cli
    number, code = identity_number(), credit_code()
    out = run("person", "register", "--name", "赵六", "--identity-number", number)
    assert '"assurance_level": 2' in out
    assert number not in out
    assert number[:4] + "*" * 10 in run("person", "show", number)
    run("person", "register", "--name", "赵六", "--identity-number", number, code=2)
    assert '"status": "suspended"' in run("person", "suspend", number, "--reason", "lost card")
    run("person", "reinstate", number, "--reason", "found")
    out = run(
        "enterprise",
        "register",
        "--name",
        "某某科技有限公司",
        "--credit-code",
        code,
        "--legal-representative",
        number,
    )
    assert code in out
    assert "granted agent" in run(
        "enterprise", "grant", code, "--person", number, "--role", "agent"
    )
    assert '"role": "agent"' in run("enterprise", "show", code)


def test_keys_rotate_list_and_prune(cli) -> None:
    run, _ = cli
    before = run("keys", "list")
    out = run("keys", "rotate", "--purpose", "token")
    assert out.count("-> retired") == 2
    assert out.count("-> active") == 2
    assert "retired" in run("keys", "list")
    assert before != run("keys", "list")
    assert "removed 0 key(s)" in run("keys", "prune")


def test_audit_verify_passes_then_catches_a_tampered_row(cli) -> None:
    run, database = cli
    run("person", "register", "--name", "钱七", "--identity-number", identity_number())
    run("audit", "checkpoint")
    assert "audit chain intact" in run("audit", "verify")
    with database.engine.begin() as connection:
        if database.backend == "postgresql":
            connection.execute(sa.text("DROP TRIGGER audit_event_append_only ON audit_event"))
        else:
            connection.execute(sa.text("DROP TRIGGER audit_event_no_update"))
        connection.execute(
            sa.text("UPDATE audit_event SET actor_id = 'someone-else' WHERE seq = 3")
        )
    out = run("audit", "verify", code=1)
    assert "broken at event 3" in out
    assert "altered" in out


def test_import_persons_is_idempotent_and_reports_rejections(cli, tmp_path) -> None:
    run, _ = cli
    good = [identity_number() for _ in range(20)]
    bad = good[0][:-1] + ("0" if good[0][-1] != "0" else "1")
    source = tmp_path / "people.csv"
    rows = [f"市民{i},{n}" for i, n in enumerate(good)] + [f"坏数据,{bad}"]
    source.write_text("name,identity_number\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = run("import", "persons", str(source))
    assert "21 rows: 20 imported, 0 unchanged, 1 rejected" in out
    report = (tmp_path / "people.rejected.csv").read_text(encoding="utf-8")
    assert "identity_number_check_character" in report
    assert bad not in report
    out = run("import", "persons", str(source))
    assert "21 rows: 0 imported, 20 unchanged, 1 rejected" in out


def test_openapi_check_passes_for_the_committed_document(cli, monkeypatch) -> None:
    from pathlib import Path

    run, _ = cli
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert "up to date" in run("openapi", "--check")
