"""The audit trail for auditors: read events, verify the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import select

from onecard.api.deps import Auditor, RuntimeDep
from onecard.api.routers.persons import events_page, seq_cursor
from onecard.api.schemas import AuditEventOut, ChainReportOut, PageOut
from onecard.core.audit import AuditEvent, verify_chain
from onecard.core.pagination import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/events", response_model=PageOut[AuditEventOut], summary="Audit events, newest first")
def list_events(
    principal: Auditor,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> PageOut[AuditEventOut]:
    stmt = select(AuditEvent)
    if (before := seq_cursor(cursor)) is not None:
        stmt = stmt.where(AuditEvent.seq < before)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    with runtime.database.session() as session:
        events = list(session.exec(stmt.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    return events_page(events, limit)


@router.post("/verify", response_model=ChainReportOut, summary="Verify the hash chain")
def verify(principal: Auditor, runtime: RuntimeDep) -> ChainReportOut:
    with runtime.database.session() as session:
        report = verify_chain(session, runtime.keyring)
    return ChainReportOut(
        ok=report.ok,
        events=report.events,
        checkpoints=report.checkpoints,
        broken_seq=report.broken.seq if report.broken else None,
        broken_reason=report.broken.reason if report.broken else None,
    )
