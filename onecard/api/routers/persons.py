"""Persons: self-registration, counter registration, look-up and lifecycle (staff)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from onecard.api import idempotency
from onecard.api.deps import PersonReader, Registrar, RuntimeDep
from onecard.api.schemas import (
    AuditEventOut,
    CounterRegistration,
    IdentityNumberOut,
    LevelChange,
    PageOut,
    PersonOut,
    PersonSearch,
    PersonUpdate,
    SelfRegistration,
    SessionOut,
    SessionsEnded,
    StatusReason,
)
from onecard.core.audit import Actor, AuditEvent, list_events
from onecard.core.errors import InvalidInput, NotFound
from onecard.core.pagination import DEFAULT_LIMIT, check_limit
from onecard.identity import persons
from onecard.identity.credentials import hash_new_password, store_password
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import AssuranceLevel, RegisteredBy, SubjectStatus
from onecard.identity.oidc import sessions as sso_sessions

router = APIRouter(prefix="/v1/persons", tags=["persons"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.post(
    "/register",
    status_code=201,
    response_model=PersonOut,
    summary="Self-registration (assurance level 1)",
)
def register_self(
    body: SelfRegistration,
    request: Request,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    new = persons.NewPerson(body.name, body.identity_number, body.phone, body.email)
    persons.parse_number(body.identity_number)  # refuse a bad number before the slow hash
    password_hash = hash_new_password(
        runtime.hasher,
        body.password,
        personal_values=(body.identity_number, body.phone, body.email),
    )

    def create() -> PersonOut:
        person = persons.register_person(session, runtime.sealer, new, actor=Actor("person", None))
        store_password(session, person, password_hash, actor=Actor.person(person.id))
        return PersonOut.of(person)

    with runtime.database.session() as session:
        return idempotency.run(
            session,
            request,
            caller="anonymous",
            key=idempotency_key,
            body=body,
            secret_fields=frozenset({"password"}),
            create=create,
        )


@router.post(
    "",
    status_code=201,
    response_model=PersonOut,
    summary="Register a person at the counter after an in-person check (level 2)",
)
def register_at_counter(
    body: CounterRegistration,
    request: Request,
    principal: Registrar,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    new = persons.NewPerson(body.name, body.identity_number, body.phone, body.email)
    password_hash = (
        hash_new_password(
            runtime.hasher,
            body.initial_password,
            personal_values=(body.identity_number, body.phone, body.email),
        )
        if body.initial_password
        else None
    )

    def create() -> PersonOut:
        person = persons.register_person(
            session,
            runtime.sealer,
            new,
            actor=principal.actor,
            level=AssuranceLevel.SUBSTANTIAL,
            registered_by=RegisteredBy.REGISTRAR,
            evidence={"document_checked": body.document_checked},
        )
        if password_hash:
            store_password(session, person, password_hash, actor=principal.actor)
        return PersonOut.of(person)

    with runtime.database.session() as session:
        return idempotency.run(
            session,
            request,
            caller=str(principal.person_id),
            key=idempotency_key,
            body=body,
            secret_fields=frozenset({"initial_password"}),
            create=create,
        )


@router.get("", response_model=PageOut[PersonOut], summary="List persons (staff; audited)")
def list_persons(
    principal: PersonReader,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: SubjectStatus | None = None,
    level: Annotated[int | None, Query(ge=1, le=3)] = None,
) -> PageOut[PersonOut]:
    check_limit(limit)
    with runtime.database.session() as session:
        page = persons.list_persons(
            session,
            limit=limit,
            cursor=cursor,
            status=status,
            level=AssuranceLevel(level) if level else None,
        )
        persons.record_staff_view(session, page.items, actor=principal.actor, why="list")
        return PageOut(items=[PersonOut.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.post(
    "/search",
    response_model=PersonOut,
    summary="Find a person by identity number (in the body, so it stays out of URLs and logs)",
)
def search(body: PersonSearch, principal: PersonReader, runtime: RuntimeDep) -> PersonOut:
    with runtime.database.session() as session:
        person = persons.find_by_identity_number(session, runtime.sealer, body.identity_number)
        if person is None:
            raise NotFound("no person with this identity number", code="person_not_found")
        persons.record_staff_view(session, [person], actor=principal.actor, why="search")
        return PersonOut.of(person)


@router.get("/{person_id}", response_model=PersonOut, summary="One person (staff; audited)")
def get_person(person_id: uuid.UUID, principal: PersonReader, runtime: RuntimeDep) -> PersonOut:
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        persons.record_staff_view(session, [person], actor=principal.actor, why="read")
        return PersonOut.of(person)


@router.get(
    "/{person_id}/identity-number",
    response_model=IdentityNumberOut,
    summary="The full identity number (registrar; audited)",
)
def reveal(person_id: uuid.UUID, principal: Registrar, runtime: RuntimeDep) -> IdentityNumberOut:
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        number = persons.reveal_identity_number(
            session, runtime.sealer, person, actor=principal.actor
        )
    return IdentityNumberOut(identity_number=number)


@router.patch("/{person_id}", response_model=PersonOut, summary="Correct a person's details")
def update_person(
    person_id: uuid.UUID, body: PersonUpdate, principal: Registrar, runtime: RuntimeDep
) -> PersonOut:
    with runtime.database.session() as session:
        person = persons.update_contact(
            session,
            persons.get_person(session, person_id),
            actor=principal.actor,
            name=body.name,
            phone=body.phone,
            email=body.email,
            clear=frozenset(body.clear),
        )
        return PersonOut.of(person)


@router.post("/{person_id}/level", response_model=PersonOut, summary="Set the assurance level")
def set_level(
    person_id: uuid.UUID, body: LevelChange, principal: Registrar, runtime: RuntimeDep
) -> PersonOut:
    with runtime.database.session() as session:
        person = persons.set_assurance_level(
            session,
            persons.get_person(session, person_id),
            AssuranceLevel(body.level),
            actor=principal.actor,
            evidence=body.evidence,
        )
        return PersonOut.of(person)


def _status_route(change: StatusChange, summary: str) -> None:
    verb = change.value

    @router.post(
        f"/{{person_id}}/{verb}", response_model=PersonOut, summary=summary, name=f"{verb}_person"
    )
    def endpoint(
        person_id: uuid.UUID, body: StatusReason, principal: Registrar, runtime: RuntimeDep
    ) -> PersonOut:
        with runtime.database.session() as session:
            person = sso_sessions.change_person_status(
                session,
                runtime.provider,
                persons.get_person(session, person_id),
                change,
                actor=principal.actor,
                reason=body.reason,
            )
            return PersonOut.of(person)


_status_route(StatusChange.SUSPEND, "Suspend a person (revokes their tokens)")
_status_route(StatusChange.REINSTATE, "Reinstate a suspended person")
_status_route(StatusChange.CLOSE, "Close a person's record (final)")


@router.get(
    "/{person_id}/sessions",
    response_model=list[SessionOut],
    summary="A person's live sign-on sessions (staff; audited)",
)
def person_sessions(
    person_id: uuid.UUID, principal: PersonReader, runtime: RuntimeDep
) -> list[SessionOut]:
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        persons.record_staff_view(session, [person], actor=principal.actor, why="sessions")
        rows = sso_sessions.sessions_of(session, person.id)
        return [SessionOut.model_validate(row, from_attributes=True) for row in rows]


@router.post(
    "/{person_id}/sessions/end",
    response_model=SessionsEnded,
    summary="End every sign-on session of a person (portals are told by back-channel logout)",
)
def end_person_sessions(
    person_id: uuid.UUID, principal: Registrar, runtime: RuntimeDep
) -> SessionsEnded:
    with runtime.database.session() as session:
        person = persons.get_person(session, person_id)
        ended = sso_sessions.end_all_sessions(
            session, runtime.provider, person.id, reason="ended_by_staff", actor=principal.actor
        )
        return SessionsEnded(ended=ended)


@router.get(
    "/{person_id}/audit-events",
    response_model=PageOut[AuditEventOut],
    summary="Audit events about a person (staff)",
)
def person_events(
    person_id: uuid.UUID,
    principal: PersonReader,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[AuditEventOut]:
    with runtime.database.session() as session:
        persons.get_person(session, person_id)
        events = list_events(
            session, limit=limit + 1, after=event_cursor(cursor), person_id=person_id
        )
    return events_page(events, limit, AuditEventOut)


def event_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise InvalidInput("the cursor is not one this service issued", code="bad_cursor") from None


def events_page(
    events: list[AuditEvent], limit: int, view: type[AuditEventOut]
) -> PageOut[AuditEventOut]:
    more = len(events) > limit
    events = events[:limit]
    return PageOut(
        items=[view.of(e) for e in events],
        next_cursor=str(events[-1].id) if more and events else None,
    )
