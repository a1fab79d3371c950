"""The audit trail: append-only, hash-chained events written in the change's own transaction.

Every state change calls :func:`record` inside the same database transaction as the change,
so the two commit together or not at all. Events form a chain: each stores the SHA-256 of its
own canonical content plus the previous event's hash, and a one-row head table holds the latest
``(seq, hash)``. Appending locks the head row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), which gives a gap-free sequence under any
number of workers.

Signed checkpoints (:func:`checkpoint`) sign ``(seq, hash)`` with the keyring's ``audit`` key;
someone who rewrites the whole chain and recomputes every hash still cannot forge them.
:func:`verify_chain` proves the chain intact or names the first broken event. Database triggers
(see the migrations) refuse UPDATE and DELETE on events; nothing here ever changes one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import jwt
from sqlalchemy import BigInteger, Column, Text, bindparam, insert, update
from sqlmodel import Field, Session, SQLModel, select

from onecard.core import clock
from onecard.core.db import UTCDateTime, pipelined

if TYPE_CHECKING:
    from onecard.core.keyring import Keyring

GENESIS_HASH = "0" * 64


class AuditAction(StrEnum):
    """Audit tags owned by core; other packages define their own ``domain:subject:action``."""

    KEY_STATE_CHANGE = "core:signing_key:state"
    AUDIT_CHECKPOINT = "core:audit:checkpoint"


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a person (through a token), an API client, the CLI or the system."""

    kind: Literal["person", "client", "cli", "system"]
    id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls("system")

    @classmethod
    def cli(cls, user: str | None = None) -> Actor:
        return cls("cli", user)

    @classmethod
    def person(cls, person_id: uuid.UUID) -> Actor:
        return cls("person", str(person_id))

    @property
    def label(self) -> str:
        """``kind:id`` (or the kind alone), for records that name who acted."""
        return f"{self.kind}:{self.id}" if self.id else self.kind


class AuditHead(SQLModel, table=True):
    """One row (id = 1, created by the first migration) holding the chain's latest link."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    id: uuid.UUID = Field(unique=True)
    occurred_at: datetime = Field(sa_type=UTCDateTime, index=True)
    action: str = Field(max_length=64, index=True)
    actor_kind: str = Field(max_length=16)
    actor_id: str | None = Field(default=None, max_length=64, index=True)
    subject_type: str | None = Field(default=None, max_length=32)
    subject_id: str | None = Field(default=None, max_length=64, index=True)
    person_id: uuid.UUID | None = Field(default=None, index=True)
    # Canonical JSON kept as text: a JSON column could reorder keys and break the hash.
    data: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)

    def computed_hash(self) -> str:
        return _event_hash(
            seq=self.seq,
            id=self.id,
            occurred_at=self.occurred_at,
            action=self.action,
            actor_kind=self.actor_kind,
            actor_id=self.actor_id,
            subject_type=self.subject_type,
            subject_id=self.subject_id,
            person_id=self.person_id,
            data=self.data,
            prev_hash=self.prev_hash,
        )

    def data_dict(self) -> dict[str, Any]:
        return json.loads(self.data)


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "audit_checkpoint"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    kid: str = Field(max_length=64)
    signature: str = Field(sa_column=Column(Text, nullable=False))


@dataclass(frozen=True)
class EventSpec:
    """One event to append with :func:`record_many`."""

    action: str
    actor: Actor
    subject: tuple[str, str] | None = None
    person_id: uuid.UUID | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _event_hash(
    *,
    seq: int,
    id: uuid.UUID,
    occurred_at: datetime,
    action: str,
    actor_kind: str,
    actor_id: str | None,
    subject_type: str | None,
    subject_id: str | None,
    person_id: uuid.UUID | None,
    data: str,
    prev_hash: str,
) -> str:
    content = [
        seq,
        str(id),
        occurred_at.isoformat(timespec="microseconds"),
        action,
        actor_kind,
        actor_id,
        subject_type,
        subject_id,
        str(person_id) if person_id else None,
        data,
        prev_hash,
    ]
    encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor: Actor,
    subject: tuple[str, str] | None = None,
    person_id: uuid.UUID | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Append one event in the caller's transaction. ``data`` must hold no secret."""
    record_many(session, [EventSpec(action, actor, subject, person_id, data or {})])


_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def record_many(session: Session, specs: Iterable[EventSpec]) -> int:
    """Append events in order under one lock of the chain head; returns how many.

    Rows go in with one Core ``INSERT`` (no ORM objects): bulk imports append an event per
    person, and the ORM's per-object bookkeeping would cost more than the hashing.

    The head is a single row every audited write locks until its commit, so the change's own
    pending rows are flushed first: the lock then covers only the event, the head and the
    commit.
    """
    specs = list(specs)
    session.flush()
    # Core statements on the head row: they run while it is locked, and no ORM copy of it is
    # kept to go stale.
    connection = session.connection()
    seq, prev = connection.execute(_LOCK_HEAD).one()
    occurred_at = clock.now()
    rows = []
    for spec in specs:
        seq += 1
        row = {
            "seq": seq,
            "id": uuid.uuid4(),
            "occurred_at": occurred_at,
            "action": str(spec.action),
            "actor_kind": spec.actor.kind,
            "actor_id": spec.actor.id,
            "subject_type": spec.subject[0] if spec.subject else None,
            "subject_id": spec.subject[1] if spec.subject else None,
            "person_id": spec.person_id,
            "data": canonical_json(spec.data),
            "prev_hash": prev,
        }
        row["hash"] = prev = _event_hash(**row)
        rows.append(row)
    if rows:
        with pipelined(connection):  # one round trip while the head is locked
            connection.execute(insert(_EVENTS), rows)
            connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    return len(rows)


def checkpoint(session: Session, keyring: Keyring) -> AuditCheckpoint | None:
    """Sign the current head with the ``audit`` key; ``None`` when nothing new since the last."""
    from onecard.core.jose import sign_compact

    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    last = session.exec(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc())).first()
    if head.seq == 0 or (last is not None and last.seq == head.seq):
        return None
    signer = keyring.signer(session, "audit", "ES256")
    now = clock.now()
    claims = {"seq": head.seq, "hash": head.hash, "iat": int(now.timestamp())}
    mark = AuditCheckpoint(
        seq=head.seq,
        hash=head.hash,
        created_at=now,
        kid=signer.kid,
        signature=sign_compact(signer, claims, typ="onecard-audit-checkpoint+jwt"),
    )
    session.add(mark)
    record(
        session,
        AuditAction.AUDIT_CHECKPOINT,
        actor=Actor.system(),
        data={"seq": head.seq, "kid": signer.kid},
    )
    return mark


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: str | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify_chain(session: Session, keyring: Keyring, *, batch: int = 5000) -> ChainReport:
    """Recompute the chain from the first event; check the head and every signed checkpoint."""
    checkpoints = {c.seq: c for c in session.exec(select(AuditCheckpoint))}
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    last_seq = 0
    hashes_at_checkpoints: dict[int, str] = {}
    stmt = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch)
    for event in session.exec(stmt):
        broken = _check_event(event, expected_seq, prev)
        if broken:
            return ChainReport(count, 0, broken)
        if event.seq in checkpoints:
            hashes_at_checkpoints[event.seq] = event.hash
        prev, expected_seq, last_seq, count = event.hash, event.seq + 1, event.seq, count + 1
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).one()
    if head.seq != last_seq or head.hash != prev:
        reason = f"head says seq {head.seq} but the chain ends at {last_seq}: events removed"
        return ChainReport(count, 0, BrokenLink(last_seq + 1, None, reason))
    for seq, mark in sorted(checkpoints.items()):
        broken = _check_checkpoint(session, keyring, mark, hashes_at_checkpoints.get(seq))
        if broken:
            return ChainReport(count, 0, broken)
    return ChainReport(count, len(checkpoints), None)


def _check_event(event: AuditEvent, expected_seq: int, prev: str) -> BrokenLink | None:
    if event.seq != expected_seq:
        return BrokenLink(expected_seq, None, f"event {expected_seq} is missing")
    if event.prev_hash != prev:
        return BrokenLink(event.seq, str(event.id), "does not link to the previous event")
    if event.computed_hash() != event.hash:
        return BrokenLink(event.seq, str(event.id), "content does not match its hash (altered)")
    return None


def _check_checkpoint(
    session: Session, keyring: Keyring, mark: AuditCheckpoint, chain_hash: str | None
) -> BrokenLink | None:
    if chain_hash is None or chain_hash != mark.hash:
        return BrokenLink(mark.seq, None, "signed checkpoint does not match the chain")
    try:
        jwk = jwt.PyJWK(keyring.public_jwk(session, mark.kid))
        claims = jwt.decode(mark.signature, key=jwk, algorithms=["ES256"])
    except Exception:  # any failure to verify means the checkpoint cannot be trusted
        return BrokenLink(mark.seq, None, "checkpoint signature does not verify")
    if claims.get("seq") != mark.seq or claims.get("hash") != mark.hash:
        return BrokenLink(mark.seq, None, "checkpoint record differs from what was signed")
    return None


def list_events(
    session: Session,
    *,
    limit: int,
    after: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
    action: str | None = None,
) -> list[AuditEvent]:
    """Events newest first, optionally about one person (the "who looked at my data" view)
    or of one action, continuing after the event ``after`` (the cursor is an event id, so the
    global sequence number is never handed out)."""
    stmt = select(AuditEvent)
    if person_id is not None:
        stmt = stmt.where(AuditEvent.person_id == person_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if after is not None:
        position = select(AuditEvent.seq).where(AuditEvent.id == after).scalar_subquery()
        stmt = stmt.where(AuditEvent.seq < position)
    return list(session.exec(stmt.order_by(AuditEvent.seq.desc()).limit(limit)))
