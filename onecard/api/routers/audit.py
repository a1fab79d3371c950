"""The audit trail for auditors: read events, verify the chain."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from onecard.api.deps import Auditor, RuntimeDep
from onecard.api.routers.persons import event_cursor, events_page
from onecard.api.schemas import AuditEventOut, AuditorEventOut, ChainReportOut, PageOut
from onecard.core.audit import list_events, verify_chain
from onecard.core.pagination import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/events",
    response_model=PageOut[AuditorEventOut],
    summary="Audit events with their chain links, newest first",
)
def events(
    principal: Auditor,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    person_id: uuid.UUID | None = None,
) -> PageOut[AuditEventOut]:
    with runtime.database.session() as session:
        found = list_events(
            session,
            limit=limit + 1,
            after=event_cursor(cursor),
            person_id=person_id,
            action=action or None,
        )
    return events_page(found, limit, AuditorEventOut)


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
