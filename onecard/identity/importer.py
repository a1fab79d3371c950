"""Bulk import of persons from another system's CSV export (``onecard import persons FILE``).

This module owns the import: reading the file, validating every row, deciding per row whether
the person is new, already here (*unchanged*) or *rejected*, inserting the new ones in batches
with their audit events, and the report of rejected rows. Validation, sealing and the blind
index are :func:`onecard.identity.persons.build_person`'s, the same as for a registration.

The file
    UTF-8 CSV, with or without a byte-order mark. The first line is the header; column names
    are matched after trimming spaces and ignoring case, in any order. ``name`` and
    ``identity_number`` are required; ``phone``, ``email``, ``assurance_level`` (``1`` or
    ``2``, empty means 1) and ``external_ref`` (the person's key in the old system, at most
    64 characters) are optional. An unknown or repeated column fails the whole file before
    anything is imported: a misspelt optional column (``mobile`` for ``phone``) would
    otherwise import every person without it, and a second run would call them unchanged, so
    the data would be lost without a word. Row numbers count data records after the header,
    blank lines included, so in a file without quoted line breaks row N is line N + 1.

Per row
    A row that breaks a rule is rejected with the code of the first rule it breaks
    (``identity_number_*``,
    ``name_invalid``, ``phone_invalid``, ``email_invalid``, ``assurance_level_invalid``,
    ``assurance_level_too_high``: an import cannot vouch for level 3, ``external_ref_invalid``,
    ``row_malformed``, ``row_encoding_invalid``). A row claiming an identity number, phone,
    email or external reference that an earlier valid row of the file claimed is rejected as
    ``duplicate_in_file``, naming the earlier row. A person whose identity number is already
    registered with the same name (and the same external reference, when the row gives one)
    is *unchanged*, which is what makes a second run change nothing; with other details it is
    rejected (``identity_number_taken``): an import never changes an existing person. A phone,
    email or external reference held by someone else is rejected (``phone_taken``,
    ``email_taken``, ``external_ref_taken``).

Batches
    Rows are read as a stream and handled ``batch_size`` at a time: validation and sealing
    first, outside any transaction (SQLite's write lock is held only while storing), then one
    transaction per batch that finds what already exists (one query over the four unique
    columns), inserts the new persons in one executemany and appends one
    ``identity:person:import`` audit event each. The database's unique constraints stay the
    judge: when a registration commits between the look-up and the insert, the batch is rolled
    back and redone one row at a time in savepoints, so only the rows that collide are
    rejected. Batches already committed stay committed when a later part of the file is
    unreadable (``import_csv_malformed``) or the database fails (:class:`ImportInterrupted`);
    running the import again finishes the job. Memory grows by a few hundred bytes per row
    (the in-file duplicate check), nothing else grows with the file.

The report
    A CSV of the rejected rows (``row,identity_number_masked,code,reason``), created with mode
    0600 before the first row is imported (an unwritable path fails early) and removed at the
    end when nothing was rejected. No identity number, phone or email is ever written in full
    to the report, a log or an exception message.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

from sqlalchemy import ColumnElement, Select, any_, bindparam, insert, inspect, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from onecard.core.audit import Actor, EventSpec, record_many
from onecard.core.db import Database, violated_constraint
from onecard.core.errors import InvalidInput, OnecardError
from onecard.core.masking import mask_identity_number
from onecard.core.sealing import Sealer
from onecard.identity.actions import IdentityAction
from onecard.identity.models import AssuranceLevel, Person, RegisteredBy
from onecard.identity.persons import NewPerson, PersonRow, build_person_row

__all__ = [
    "OPTIONAL_COLUMNS",
    "REPORT_COLUMNS",
    "REQUIRED_COLUMNS",
    "ImportInterrupted",
    "ImportSummary",
    "RejectedRow",
    "count_rows",
    "import_persons",
]

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("name", "identity_number")
OPTIONAL_COLUMNS: Final = ("phone", "email", "assurance_level", "external_ref")
REPORT_COLUMNS: Final = ("row", "identity_number_masked", "code", "reason")
_KNOWN_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
_EXPECTED_HEADER = ",".join(REQUIRED_COLUMNS) + "[," + ",".join(OPTIONAL_COLUMNS) + "]"
# Only a name that looks like a column name is repeated in an error: a file without a header
# has data in its first line, and that may be an identity number or a phone.
_PRINTABLE_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,39}")
_LEVELS = {"": AssuranceLevel.LOW, "1": AssuranceLevel.LOW, "2": AssuranceLevel.SUBSTANTIAL}
_EXTERNAL_REF_MAX = 64
# Persons per look-up query (four values each): far below SQLite's 32,766 bound parameters.
_LOOKUP_CHUNK = 1000
# Each unique column of a person: what people call it, and the code when someone has it.
_UNIQUE: Final = (
    ("identity_number_index", "identity number", "identity_number_taken"),
    ("phone", "phone number", "phone_taken"),
    ("email", "email address", "email_taken"),
    ("external_ref", "external reference", "external_ref_taken"),
)
_PERSON_TABLE = inspect(Person).local_table
# A Core insert: the ORM's bulk path adds a fifth to the cost of each row for nothing here.
_PERSON_INSERT = insert(_PERSON_TABLE)


@dataclass(frozen=True)
class ImportSummary:
    """What one run did. ``total`` = ``imported`` + ``unchanged`` + ``rejected``."""

    total: int
    imported: int
    unchanged: int
    rejected: int
    report_path: Path | None


class ImportInterrupted(OnecardError):
    """The database failed part-way through; the batches before the failing one are stored."""

    code = "import_interrupted"
    title = "Import interrupted"


@dataclass(frozen=True)
class RejectedRow:
    """One line of the report; ``reason`` never holds a personal number."""

    row: int
    identity_number_masked: str
    code: str
    reason: str


@dataclass(frozen=True)
class _Candidate:
    """A valid row: the sealed person it would insert and where it came from."""

    row: int
    person: PersonRow

    def reject(self, code: str, reason: str) -> RejectedRow:
        return RejectedRow(self.row, self.person.identity_number_masked, code, reason)


@dataclass
class _Outcome:
    """What storing one batch did (its rejections go to the report, not into the totals)."""

    imported: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


@dataclass(frozen=True)
class _Layout:
    """Where each known column sits in a record; ``width`` is the header's field count."""

    positions: dict[str, int]
    width: int

    def cell(self, record: Sequence[str], column: str) -> str:
        position = self.positions.get(column)
        if position is None or position >= len(record):
            return ""
        return record[position]


# -- entry point ---------------------------------------------------------------------------


def import_persons(
    database: Database,
    sealer: Sealer,
    source: Path,
    *,
    actor: Actor,
    report_path: Path,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import the persons of ``source``; see the module docstring for the rules.

    ``progress`` is called after each batch with the number of rows it handled (their sum is
    :func:`count_rows`). Raises :class:`InvalidInput` for a file that cannot be imported at
    all: ``import_header_missing``, ``import_column_missing``, ``import_column_unknown``,
    ``import_column_repeated``, ``import_csv_malformed``; raises :class:`ImportInterrupted`
    when the database fails part-way (running the import again finishes it).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if report_path.exists() and report_path.samefile(source):
        raise ValueError("the report would overwrite the file being imported")
    with _open_source(source) as handle:
        reader = csv.reader(handle)
        layout = _read_header(reader)
        with _Report(report_path) as report:
            totals = _import_records(
                database,
                sealer,
                _records(reader),
                layout,
                report=report,
                batch_size=batch_size,
                progress=progress,
                audit=_AuditContext(actor, source.name),
            )
    summary = ImportSummary(
        total=totals.imported + totals.unchanged + report.count,
        imported=totals.imported,
        unchanged=totals.unchanged,
        rejected=report.count,
        report_path=report.written,
    )
    log.info(
        "import of %s: %d rows, %d imported, %d unchanged, %d rejected",
        source.name,
        summary.total,
        summary.imported,
        summary.unchanged,
        summary.rejected,
    )
    return summary


def count_rows(source: Path) -> int:
    """The number of data rows (blank lines excluded), for sizing a progress bar.

    Checks the header as :func:`import_persons` does, so a caller that counts first also
    learns early that the file cannot be imported.
    """
    with _open_source(source) as handle:
        reader = csv.reader(handle)
        _read_header(reader)
        return sum(1 for _ in _records(reader))


@dataclass(frozen=True)
class _AuditContext:
    actor: Actor
    source_name: str


def _import_records(
    database: Database,
    sealer: Sealer,
    records: Iterator[tuple[int, list[str]]],
    layout: _Layout,
    *,
    report: _Report,
    batch_size: int,
    progress: Callable[[int], None] | None,
    audit: _AuditContext,
) -> _Outcome:
    claims = _FileClaims()
    totals = _Outcome()
    for batch in _batches(records, batch_size):
        candidates, invalid = _validate_batch(sealer, layout, batch, claims)
        outcome = _store_batch(database, candidates, audit)
        report.write(sorted([*invalid, *outcome.rejected], key=lambda rejected: rejected.row))
        totals.imported += outcome.imported
        totals.unchanged += outcome.unchanged
        if progress is not None:
            progress(len(batch))
    return totals


# -- reading -------------------------------------------------------------------------------


def _open_source(source: Path) -> IO[str]:
    # "utf-8-sig" drops a byte-order mark when there is one. Undecodable bytes become U+FFFD
    # so the rows holding them are rejected one by one instead of failing the whole file.
    return source.open(encoding="utf-8-sig", errors="replace", newline="")


def _read_header(reader: Iterator[list[str]]) -> _Layout:
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInput(
            f"the header is not valid CSV ({exc})", code="import_csv_malformed"
        ) from None
    if not header or not any(cell.strip() for cell in header):
        raise InvalidInput(
            f"the file is empty or its first line is blank; the first line must be the header "
            f"{_EXPECTED_HEADER}",
            code="import_header_missing",
        )
    names = [cell.strip().lower() for cell in header]
    _check_columns(names)
    return _Layout({name: position for position, name in enumerate(names)}, len(names))


def _check_columns(names: list[str]) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        raise InvalidInput(
            f"missing column {', '.join(missing)}: the first line must be the header "
            f"{_EXPECTED_HEADER}",
            code="import_column_missing",
        )
    unknown = [
        _describe_column(position, name)
        for position, name in enumerate(names, start=1)
        if name not in _KNOWN_COLUMNS
    ]
    if unknown:
        raise InvalidInput(
            f"unknown column {', '.join(unknown)}: the columns allowed are {_EXPECTED_HEADER} "
            "(nothing was imported)",
            code="import_column_unknown",
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput(
            f"column {', '.join(repeated)} appears more than once (nothing was imported)",
            code="import_column_repeated",
        )


def _describe_column(position: int, name: str) -> str:
    if not name:
        return f"{position} (no name)"
    if _PRINTABLE_COLUMN.fullmatch(name):
        return f"{position} ({name!r})"
    return f"{position} (name not shown)"


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """``(row number, fields)`` of each non-blank data record."""
    row = 0
    try:
        for record in reader:
            row += 1
            if record and any(record):
                yield row, record
    except csv.Error as exc:
        raise InvalidInput(
            f"row {row + 1} is not valid CSV ({exc}); the rows before it were handled, so "
            "fix the file and run the import again",
            code="import_csv_malformed",
        ) from None


def _batches(
    records: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    batch: list[tuple[int, list[str]]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- validation ----------------------------------------------------------------------------


def _validate_batch(
    sealer: Sealer,
    layout: _Layout,
    batch: list[tuple[int, list[str]]],
    claims: _FileClaims,
) -> tuple[list[_Candidate], list[RejectedRow]]:
    candidates: list[_Candidate] = []
    rejected: list[RejectedRow] = []
    for row, record in batch:
        result = _parse_row(sealer, layout, row, record)
        if isinstance(result, _Candidate):
            result = claims.claim(result)
        if isinstance(result, _Candidate):
            candidates.append(result)
        else:
            rejected.append(result)
    return candidates, rejected


def _parse_row(
    sealer: Sealer, layout: _Layout, row: int, record: list[str]
) -> _Candidate | RejectedRow:
    masked = _mask_cell(layout.cell(record, "identity_number"))
    if len(record) != layout.width:
        reason = f"the row has {len(record)} fields but the header has {layout.width}"
        return RejectedRow(row, masked, "row_malformed", reason)
    if any("\ufffd" in cell for cell in record):
        reason = "the row is not valid UTF-8: save the file as UTF-8 and import it again"
        return RejectedRow(row, masked, "row_encoding_invalid", reason)
    try:
        person = _build(sealer, layout, record)
    except InvalidInput as exc:
        return RejectedRow(row, masked, exc.code, exc.detail)
    return _Candidate(row, person)


def _build(sealer: Sealer, layout: _Layout, record: list[str]) -> PersonRow:
    new = NewPerson(
        name=layout.cell(record, "name"),
        identity_number=layout.cell(record, "identity_number"),
        phone=layout.cell(record, "phone") or None,
        email=layout.cell(record, "email") or None,
        external_ref=_external_ref(layout.cell(record, "external_ref")),
    )
    level = _level(layout.cell(record, "assurance_level"))
    return build_person_row(sealer, new, level=level, registered_by=RegisteredBy.IMPORT)


def _level(text: str) -> AssuranceLevel:
    value = text.strip()
    if value == str(int(AssuranceLevel.HIGH)):
        raise InvalidInput(
            "an import cannot vouch for assurance level 3 (high): import at level 1 or 2 and "
            "raise the level after an in-person check",
            code="assurance_level_too_high",
        )
    level = _LEVELS.get(value)
    if level is None:
        raise InvalidInput(
            "assurance_level must be 1 or 2 (empty means 1)", code="assurance_level_invalid"
        )
    return level


def _external_ref(text: str) -> str | None:
    value = text.strip()
    if not value:
        return None
    if len(value) > _EXTERNAL_REF_MAX or not value.isprintable():
        raise InvalidInput(
            f"external_ref must have at most {_EXTERNAL_REF_MAX} printable characters",
            code="external_ref_invalid",
        )
    return value


def _mask_cell(text: str) -> str:
    value = text.strip().upper()
    return mask_identity_number(value) if value else ""


class _FileClaims:
    """The first valid row of the file that claimed each unique value.

    Kept for the whole file (a few hundred bytes per row) so a duplicate is caught however far
    apart the two rows are. Only valid, non-duplicate rows claim values, so the verdict on a
    row never depends on what the database holds and a re-run rejects the same rows.
    """

    def __init__(self) -> None:
        self._first: dict[str, dict[Any, int]] = {column: {} for column, _, _ in _UNIQUE}

    def claim(self, candidate: _Candidate) -> _Candidate | RejectedRow:
        values = [
            (column, label, getattr(candidate.person, column)) for column, label, _ in _UNIQUE
        ]
        for column, label, value in values:
            earlier = self._first[column].get(value) if value is not None else None
            if earlier is not None:
                return candidate.reject(
                    "duplicate_in_file", f"the same {label} is in row {earlier} of the file"
                )
        for column, _, value in values:
            if value is not None:
                self._first[column][value] = candidate.row
        return candidate


# -- storing -------------------------------------------------------------------------------


def _store_batch(
    database: Database, candidates: list[_Candidate], audit: _AuditContext
) -> _Outcome:
    if not candidates:
        return _Outcome()
    try:
        return _store_with_retry(database, candidates, audit)
    except DBAPIError as exc:
        # SQLAlchemy's message quotes the statement's parameters (phones, email addresses):
        # only the kind of failure goes on.
        raise ImportInterrupted(
            f"the database failed while storing rows {candidates[0].row}-{candidates[-1].row} "
            f"({_failure_kind(exc)}); the rows before them are stored, so run the import "
            "again to finish"
        ) from None


def _failure_kind(exc: DBAPIError) -> str:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    kind = type(exc.orig).__name__
    return f"{kind}, SQLSTATE {sqlstate}" if sqlstate else kind


def _store_with_retry(
    database: Database, candidates: list[_Candidate], audit: _AuditContext
) -> _Outcome:
    try:
        with database.session() as session:
            return _store(session, candidates, audit, bulk=True)
    except IntegrityError:
        # Someone registered one of these persons between our look-up and our insert. The
        # error text may hold the colliding value, so it is dropped, never logged.
        log.info("import batch collided with a concurrent change; retrying row by row")
    with database.session() as session:
        return _store(session, candidates, audit, bulk=False)


def _store(
    session: Session, candidates: list[_Candidate], audit: _AuditContext, *, bulk: bool
) -> _Outcome:
    existing = _Existing.load(session, [candidate.person for candidate in candidates])
    outcome = _Outcome()
    new: list[_Candidate] = []
    for candidate in candidates:
        verdict = existing.judge(candidate)
        if isinstance(verdict, RejectedRow):
            outcome.rejected.append(verdict)
        elif verdict == "unchanged":
            outcome.unchanged += 1
        else:
            new.append(candidate)
    if bulk:
        _insert_all(session, new)
    else:
        new = _insert_one_by_one(session, new, outcome)
    _record_events(session, new, audit)
    outcome.imported = len(new)
    return outcome


@dataclass
class _Existing:
    """What the database already holds for one batch's unique values."""

    by_index: dict[bytes, tuple[str, str | None]] = field(default_factory=dict)
    taken: dict[str, set[str]] = field(
        default_factory=lambda: {column: set() for column, _, _ in _UNIQUE[1:]}
    )

    @classmethod
    def load(cls, session: Session, people: list[PersonRow]) -> _Existing:
        existing = cls()
        postgresql = session.get_bind().dialect.name == "postgresql"
        for chunk in _chunks(people):
            for index, name, ref, phone, email in session.execute(_lookup(chunk, postgresql)):
                existing.by_index[index] = (name, ref)
                existing.taken["phone"].add(phone)
                existing.taken["email"].add(email)
                existing.taken["external_ref"].add(ref)
        return existing

    def judge(self, candidate: _Candidate) -> Literal["new", "unchanged"] | RejectedRow:
        person = candidate.person
        found = self.by_index.get(person.identity_number_index)
        if found is not None:
            name, external_ref = found
            if name == person.name and person.external_ref in (None, external_ref):
                return "unchanged"
            return candidate.reject(
                "identity_number_taken",
                "a person with this identity number is already registered with a different "
                "name or external reference; an import does not change existing persons",
            )
        for column, label, code in _UNIQUE[1:]:
            value = getattr(person, column)
            if value is not None and value in self.taken[column]:
                return candidate.reject(code, f"this {label} belongs to another person")
        return "new"


def _lookup(people: list[PersonRow], postgresql: bool) -> Select[Any]:
    """One query for every stored person sharing a unique value with ``people``.

    A person found through one column brings its other values too: they are all taken, so
    the sets stay exact for every value the batch asks about.
    """
    conditions = []
    for column, _, _ in _UNIQUE:
        values = [getattr(person, column) for person in people]
        present = [value for value in values if value is not None]
        if present:
            conditions.append(_is_one_of(getattr(Person, column), present, postgresql))
    return select(
        Person.identity_number_index,
        Person.name,
        Person.external_ref,
        Person.phone,
        Person.email,
    ).where(or_(*conditions))


def _is_one_of(column: Any, values: list[Any], postgresql: bool) -> ColumnElement[bool]:
    if postgresql:
        # One array parameter: rendering and parsing an IN list of a thousand placeholders
        # costs more than PostgreSQL takes to run the query.
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start : start + _LOOKUP_CHUNK]


def _insert_all(session: Session, new: list[_Candidate]) -> None:
    if new:
        session.execute(_PERSON_INSERT, [candidate.person.values() for candidate in new])


def _insert_one_by_one(
    session: Session, new: list[_Candidate], outcome: _Outcome
) -> list[_Candidate]:
    inserted: list[_Candidate] = []
    for candidate in new:
        try:
            with session.begin_nested():
                session.execute(_PERSON_INSERT, [candidate.person.values()])
        except IntegrityError as exc:
            outcome.rejected.append(_raced(candidate, exc))
        else:
            inserted.append(candidate)
    return inserted


def _raced(candidate: _Candidate, exc: IntegrityError) -> RejectedRow:
    # The constraint's name holds the column's on both back ends (uq_person_phone; SQLite
    # says "UNIQUE constraint failed: person.phone").
    constraint = violated_constraint(exc)
    for column, label, code in _UNIQUE:
        if column in constraint:
            return candidate.reject(
                code, f"another person with this {label} was registered during the import"
            )
    # Never re-raise ``exc`` itself: its text may quote the row's values.
    raise RuntimeError("unexpected constraint violation while importing a person") from None


def _record_events(session: Session, inserted: list[_Candidate], audit: _AuditContext) -> None:
    if not inserted:
        return  # a batch of unchanged rows need not wait for the audit chain's lock
    record_many(
        session,
        [
            EventSpec(
                IdentityAction.PERSON_IMPORT,
                audit.actor,
                subject=("person", str(candidate.person.id)),
                person_id=candidate.person.id,
                data={
                    "level": candidate.person.assurance_level,
                    "source": audit.source_name,
                    "row": candidate.row,
                },
            )
            for candidate in inserted
        ],
    )


# -- report --------------------------------------------------------------------------------


class _Report:
    """The CSV of rejected rows, created up front and removed at the end if it stayed empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(REPORT_COLUMNS)

    def __enter__(self) -> _Report:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()
        if not self.count:
            self.path.unlink(missing_ok=True)

    @property
    def written(self) -> Path | None:
        return self.path if self.count else None

    def write(self, rejected: list[RejectedRow]) -> None:
        self._writer.writerows(
            (line.row, line.identity_number_masked, line.code, line.reason) for line in rejected
        )
        self.count += len(rejected)
