"""Importing persons from a CSV export: every row validated, valid rows imported once (a second
run changes nothing), rejected rows reported with a code and a reason but never with a full
personal number, whole-file errors for a bad header, and races with registrations settled by the
database's unique constraints."""

from __future__ import annotations

import csv
import stat
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from onecard.core.audit import Actor, AuditEvent, checkpoint, verify_chain
from onecard.core.db import Database
from onecard.core.errors import InvalidInput
from onecard.core.keyring import Keyring
from onecard.core.masking import mask_identity_number
from onecard.core.sealing import Sealer
from onecard.identity import importer
from onecard.identity.actions import IdentityAction
from onecard.identity.importer import (
    ImportInterrupted,
    ImportSummary,
    count_rows,
    import_persons,
)
from onecard.identity.models import Person, RegisteredBy
from onecard.identity.persons import NewPerson, find_by_identity_number, register_person
from tests.factories import identity_number

HEADER = ("name", "identity_number", "phone", "email", "assurance_level", "external_ref")
ACTOR = Actor.cli("importer-test")


def write_csv(
    path: Path, rows: Sequence[Sequence[str]], *, header: Sequence[str] = HEADER, bom: str = ""
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(bom)
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_report(summary: ImportSummary) -> dict[int, dict[str, str]]:
    assert summary.report_path is not None
    with summary.report_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["row", "identity_number_masked", "code", "reason"]
        return {int(line["row"]): line for line in reader}


def person_count(database: Database) -> int:
    with database.session() as session:
        return session.execute(sa.select(sa.func.count()).select_from(Person)).scalar_one()


def import_events(database: Database) -> list[AuditEvent]:
    with database.session() as session:
        stmt = select(AuditEvent).where(AuditEvent.action == IdentityAction.PERSON_IMPORT)
        return list(session.exec(stmt.order_by(AuditEvent.seq)))


def unique_numbers(count: int) -> list[str]:
    """Distinct random numbers: 2,000 draws from the factory collide about once in a hundred."""
    numbers: dict[str, None] = {}
    while len(numbers) < count:
        numbers[identity_number()] = None
    return list(numbers)


def valid_rows(count: int, *, start: int = 0) -> list[tuple[str, ...]]:
    return [
        (
            f"市民{start + i}",
            number,
            f"139{start + i:08d}",
            f"citizen{start + i}@example.cn",
            "2" if i % 3 == 0 else "1",
            f"OLD-{start + i}",
        )
        for i, number in enumerate(unique_numbers(count))
    ]


@pytest.fixture
def run_import(sealer: Sealer, tmp_path: Path) -> Callable[..., ImportSummary]:
    def run(database: Database, source: Path, **options: object) -> ImportSummary:
        return import_persons(
            database,
            sealer,
            source,
            actor=ACTOR,
            report_path=tmp_path / "rejected.csv",
            **options,  # type: ignore[arg-type]
        )

    return run


# -- valid rows ----------------------------------------------------------------------------


def test_valid_rows_are_imported_sealed_at_their_level(fresh_db, sealer, tmp_path, run_import):
    database = fresh_db()
    rows = valid_rows(5)
    summary = run_import(database, write_csv(tmp_path / "in.csv", rows))

    assert summary == ImportSummary(5, 5, 0, 0, None)
    assert not (tmp_path / "rejected.csv").exists()
    with database.session() as session:
        person = find_by_identity_number(session, sealer, rows[0][1])
        assert person is not None
        opened = sealer.open_text(
            person.identity_number_sealed,
            table="person",
            column="identity_number",
            row_id=person.id,
        )
        assert opened == rows[0][1]
        assert rows[0][1].encode() not in person.identity_number_sealed
        assert (person.name, person.phone, person.email) == rows[0][0:1] + rows[0][2:4]
        assert person.assurance_level == 2
        assert person.external_ref == "OLD-0"
        assert person.registered_by == RegisteredBy.IMPORT
        assert person.identity_number_masked == mask_identity_number(rows[0][1])
        second = find_by_identity_number(session, sealer, rows[1][1])
        assert second is not None
        assert second.assurance_level == 1


def test_optional_columns_may_be_left_out_in_any_order(fresh_db, tmp_path, run_import):
    database = fresh_db()
    number = identity_number()
    source = write_csv(
        tmp_path / "in.csv", [(number, " 李  四 ")], header=(" Identity_Number", "NAME")
    )

    summary = run_import(database, source)

    assert (summary.imported, summary.rejected) == (1, 0)
    with database.session() as session:
        person = session.exec(select(Person)).one()
    assert (person.name, person.phone, person.assurance_level) == ("李 四", None, 1)


def test_each_import_is_audited_and_the_chain_verifies(fresh_db, sealer, tmp_path, run_import):
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(days=1))
    with database.session() as session:
        keyring.ensure_keys(session, Actor.system())
    rows = valid_rows(3)
    run_import(database, write_csv(tmp_path / "legacy.csv", rows))

    events = import_events(database)
    with database.session() as session:
        persons = {p.id: p for p in session.exec(select(Person))}
        checkpoint(session, keyring)
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert report.ok, report.broken
    assert report.checkpoints == 1
    assert len(events) == 3
    for row, event in enumerate(events, start=1):
        assert event.subject_type == "person"
        assert event.person_id in persons
        assert event.subject_id == str(event.person_id)
        assert (event.actor_kind, event.actor_id) == ("cli", "importer-test")
        expected_level = int(rows[row - 1][4])
        assert event.data_dict() == {"level": expected_level, "source": "legacy.csv", "row": row}
        assert all(r[1] not in event.data and r[2] not in event.data for r in rows)


def test_a_second_run_changes_nothing(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = write_csv(tmp_path / "in.csv", valid_rows(20))
    first = run_import(database, source)
    events = len(import_events(database))

    second = run_import(database, source)

    assert (first.imported, first.unchanged) == (20, 0)
    assert second == ImportSummary(20, 0, 20, 0, None)
    assert person_count(database) == 20
    assert len(import_events(database)) == events


def test_a_person_registered_elsewhere_with_the_same_name_is_unchanged(
    fresh_db, sealer, tmp_path, run_import
):
    database = fresh_db()
    number = identity_number()
    with database.session() as session:
        register_person(session, sealer, NewPerson("王五", number), actor=Actor.system())

    summary = run_import(
        database, write_csv(tmp_path / "in.csv", [("王五", number, "", "", "", "")])
    )

    assert (summary.imported, summary.unchanged, summary.rejected) == (0, 1, 0)


def test_the_same_number_under_another_external_ref_is_rejected(fresh_db, tmp_path, run_import):
    database = fresh_db()
    number = identity_number()
    header = ("name", "identity_number", "external_ref")
    run_import(database, write_csv(tmp_path / "a.csv", [("王五", number, "A-1")], header=header))

    other_ref = run_import(
        database, write_csv(tmp_path / "b.csv", [("王五", number, "B-1")], header=header)
    )
    assert read_report(other_ref)[1]["code"] == "identity_number_taken"

    no_ref = run_import(
        database, write_csv(tmp_path / "c.csv", [("王五", number, "")], header=header)
    )
    assert (no_ref.unchanged, no_ref.rejected) == (1, 0)


def test_a_byte_order_mark_is_ignored(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = write_csv(tmp_path / "in.csv", valid_rows(2), bom="\ufeff")
    assert source.read_bytes().startswith(b"\xef\xbb\xbfname,")

    summary = run_import(database, source)

    assert (summary.imported, summary.rejected) == (2, 0)


def test_many_rows_go_in_several_batches_with_progress(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = write_csv(tmp_path / "in.csv", valid_rows(2000))
    done: list[int] = []

    summary = run_import(database, source, batch_size=500, progress=done.append)

    assert done == [500, 500, 500, 500]
    assert count_rows(source) == 2000
    assert summary == ImportSummary(2000, 2000, 0, 0, None)
    assert person_count(database) == 2000
    assert [e.data_dict()["row"] for e in import_events(database)] == list(range(1, 2001))


# -- rejected rows -------------------------------------------------------------------------


def test_each_rejected_row_is_reported_with_its_code_and_reason(
    fresh_db, sealer, tmp_path, run_import
):
    database = fresh_db()
    numbers = iter(unique_numbers(20))
    taken = {"number": next(numbers), "phone": "13700000001", "email": "taken@example.cn"}
    with database.session() as session:
        register_person(
            session,
            sealer,
            NewPerson("已有", taken["number"], phone=taken["phone"], email=taken["email"]),
            actor=Actor.system(),
        )
    run_import(
        database,
        write_csv(tmp_path / "seed.csv", [("旧系统", next(numbers), "", "", "", "REF-TAKEN")]),
    )
    good = next(numbers)
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    first_in_file = next(numbers)
    cases = {
        1: (("张三", good, "13800000001", "a@example.cn", "1", "R1"), None),
        2: (("李四", bad_check, "", "", "", ""), "identity_number_check_character"),
        3: (("", next(numbers), "", "", "", ""), "name_invalid"),
        4: (("赵六", next(numbers), "12345", "", "", ""), "phone_invalid"),
        5: (("钱七", next(numbers), "", "not-an-email", "", ""), "email_invalid"),
        6: (("孙八", next(numbers), "", "", "3", ""), "assurance_level_too_high"),
        7: (("周九", next(numbers), "", "", "high", ""), "assurance_level_invalid"),
        8: (("吴十", next(numbers), "", "", "", "X" * 65), "external_ref_invalid"),
        9: (("郑一", next(numbers), ""), "row_malformed"),
        10: (("不同", taken["number"], "", "", "", ""), "identity_number_taken"),
        11: (("冯二", next(numbers), taken["phone"], "", "", ""), "phone_taken"),
        12: (("陈三", next(numbers), "", taken["email"].upper(), "", ""), "email_taken"),
        13: (("褚四", next(numbers), "", "", "", "REF-TAKEN"), "external_ref_taken"),
        14: (("卫五", first_in_file, "", "", "", ""), None),
        15: (("卫五", first_in_file, "", "", "", ""), "duplicate_in_file"),
        16: (("蒋六", next(numbers), "13800000001", "", "", ""), "duplicate_in_file"),
    }
    source = write_csv(tmp_path / "in.csv", [row for row, _ in cases.values()])

    summary = run_import(database, source)

    report = read_report(summary)
    expected = {row: code for row, (_, code) in cases.items() if code}
    assert {row: line["code"] for row, line in report.items()} == expected
    assert (summary.total, summary.imported, summary.rejected) == (16, 2, 14)
    assert summary.report_path == tmp_path / "rejected.csv"
    assert "check character" in report[2]["reason"]
    assert "level 3" in report[6]["reason"]
    assert "has 3 fields but the header has 6" in report[9]["reason"]
    assert "different name" in report[10]["reason"]
    assert "another person" in report[11]["reason"]
    assert report[15]["reason"] == "the same identity number is in row 14 of the file"
    assert report[16]["reason"] == "the same phone number is in row 1 of the file"
    assert report[10]["identity_number_masked"] == mask_identity_number(taken["number"])
    assert report[3]["identity_number_masked"] == mask_identity_number(cases[3][0][1])


def test_the_report_never_holds_a_full_number_phone_or_email(fresh_db, tmp_path, run_import):
    database = fresh_db()
    rows = valid_rows(3)
    duplicates = [
        (name + "二", number, phone, email, "3", ref) for name, number, phone, email, _, ref in rows
    ]
    source = write_csv(tmp_path / "in.csv", rows + duplicates)

    summary = run_import(database, source)

    text = summary.report_path.read_text(encoding="utf-8")
    assert summary.rejected == 3
    for _, number, phone, email, _, _ in rows:
        assert number not in text
        assert phone not in text
        assert email not in text
        assert mask_identity_number(number) in text
    assert stat.S_IMODE(summary.report_path.stat().st_mode) == 0o600


def test_undecodable_rows_are_rejected_and_the_others_imported(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = tmp_path / "gbk.csv"
    ok, broken = identity_number(), identity_number()
    source.write_bytes(
        b"name,identity_number\n"
        + f"\u5f20\u4e09,{ok}\n".encode()
        + "\u674e\u56db".encode("gbk")
        + f",{broken}\n".encode()
    )

    summary = run_import(database, source)

    report = read_report(summary)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert report[2]["code"] == "row_encoding_invalid"
    assert report[2]["identity_number_masked"] == mask_identity_number(broken)


def test_blank_lines_are_skipped_but_keep_row_numbers(fresh_db, tmp_path, run_import):
    database = fresh_db()
    number = identity_number()
    source = tmp_path / "in.csv"
    source.write_text(f"name,identity_number\n甲,{number}\n\n乙,{number}\n", encoding="utf-8")

    summary = run_import(database, source)

    assert (summary.total, summary.imported) == (2, 1)
    assert read_report(summary)[3]["reason"] == "the same identity number is in row 1 of the file"


# -- whole-file errors ---------------------------------------------------------------------


def test_a_missing_mandatory_column_fails_the_whole_file(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = write_csv(tmp_path / "in.csv", [("张三", "13800000001")], header=("name", "phone"))

    with pytest.raises(InvalidInput) as caught:
        run_import(database, source)

    assert caught.value.code == "import_column_missing"
    assert "identity_number" in caught.value.detail
    assert person_count(database) == 0
    assert not (tmp_path / "rejected.csv").exists()


def test_an_unknown_column_fails_the_whole_file(fresh_db, tmp_path, run_import):
    database = fresh_db()
    source = write_csv(tmp_path / "in.csv", valid_rows(1), header=(*HEADER[:2], "mobile"))

    with pytest.raises(InvalidInput) as caught:
        run_import(database, source)

    assert caught.value.code == "import_column_unknown"
    assert "'mobile'" in caught.value.detail
    assert person_count(database) == 0


def test_a_file_without_header_is_refused_without_echoing_its_first_row(
    fresh_db, tmp_path, run_import
):
    database = fresh_db()
    number = identity_number()
    source = tmp_path / "in.csv"
    source.write_text(f"name,identity_number,{number}\n", encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        run_import(database, source)

    assert caught.value.code == "import_column_unknown"
    assert number not in caught.value.detail
    assert "3 (name not shown)" in caught.value.detail


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("", "import_header_missing"),
        ("\nname,identity_number\n", "import_header_missing"),
        ("name,identity_number,Name\n", "import_column_repeated"),
    ],
)
def test_other_header_problems_fail_the_whole_file(db, tmp_path, run_import, content, code):
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        run_import(db, source)

    assert caught.value.code == code


def test_count_rows_checks_the_header_too(tmp_path):
    source = write_csv(tmp_path / "in.csv", [("张三", "x")], header=("name",))

    with pytest.raises(InvalidInput) as caught:
        count_rows(source)

    assert caught.value.code == "import_column_missing"


def test_the_report_may_not_overwrite_the_source(db, sealer, tmp_path):
    source = write_csv(tmp_path / "in.csv", valid_rows(1))

    with pytest.raises(ValueError, match="overwrite"):
        import_persons(db, sealer, source, actor=ACTOR, report_path=source)

    assert source.read_text(encoding="utf-8").startswith("name,identity_number")


def test_a_database_failure_names_the_rows_but_never_their_values(
    fresh_db, tmp_path, run_import, monkeypatch
):
    database = fresh_db()
    rows = valid_rows(4)
    phone = rows[0][2]

    def failing_insert(session, new):
        params = [{"phone": c.person.phone} for c in new]
        error = sa.exc.OperationalError("INSERT INTO person ...", params, ConnectionError("lost"))
        assert phone in str(error)  # what SQLAlchemy would have shown
        raise error

    monkeypatch.setattr(importer, "_insert_all", failing_insert)
    source = write_csv(tmp_path / "in.csv", rows)

    with pytest.raises(ImportInterrupted) as caught:
        run_import(database, source, batch_size=2)

    assert caught.value.code == "import_interrupted"
    assert "rows 1-2" in caught.value.detail
    assert phone not in str(caught.value)
    assert caught.value.__suppress_context__


def test_batch_size_must_be_positive(db, tmp_path, run_import):
    with pytest.raises(ValueError, match="batch_size"):
        run_import(db, write_csv(tmp_path / "in.csv", []), batch_size=0)


# -- races ---------------------------------------------------------------------------------


def _registered_after_lookup(monkeypatch, *, times: int) -> None:
    """Pretend a registration commits right after the import's look-up, ``times`` times."""
    real_load = importer._Existing.load.__func__
    calls = {"n": 0}

    def stale_load(cls, session, people):
        calls["n"] += 1
        return cls() if calls["n"] <= times else real_load(cls, session, people)

    monkeypatch.setattr(importer._Existing, "load", classmethod(stale_load))


def test_a_registration_racing_the_batch_rejects_only_its_row(
    fresh_db, sealer, tmp_path, run_import, monkeypatch
):
    database = fresh_db()
    rows = valid_rows(4)
    with database.session() as session:
        register_person(session, sealer, NewPerson("抢先", rows[2][1]), actor=Actor.system())
    _registered_after_lookup(monkeypatch, times=1)

    summary = run_import(database, write_csv(tmp_path / "in.csv", rows))

    assert (summary.imported, summary.rejected) == (3, 1)
    assert read_report(summary)[3]["code"] == "identity_number_taken"
    assert person_count(database) == 4
    assert [e.data_dict()["row"] for e in import_events(database)] == [1, 2, 4]


def test_a_race_seen_only_by_the_insert_is_settled_row_by_row(
    fresh_db, sealer, tmp_path, run_import, monkeypatch
):
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(days=1))
    rows = valid_rows(4)
    with database.session() as session:
        keyring.ensure_keys(session, Actor.system())
        register_person(
            session, sealer, NewPerson("抢先", identity_number(), phone=rows[1][2]), actor=ACTOR
        )
    _registered_after_lookup(monkeypatch, times=2)

    summary = run_import(database, write_csv(tmp_path / "in.csv", rows))

    report = read_report(summary)
    assert (summary.imported, summary.rejected) == (3, 1)
    assert report[2]["code"] == "phone_taken"
    assert (
        report[2]["reason"]
        == "another person with this phone number was registered during the import"
    )
    assert rows[1][2] not in summary.report_path.read_text(encoding="utf-8")
    assert [e.data_dict()["row"] for e in import_events(database)] == [1, 3, 4]
    with database.session() as session:
        assert verify_chain(session, keyring).ok


def test_person_row_has_exactly_the_person_columns() -> None:
    from sqlalchemy import inspect

    from onecard.identity.models import Person
    from onecard.identity.persons import PersonRow

    assert set(PersonRow.__slots__) == {c.key for c in inspect(Person).local_table.columns}
