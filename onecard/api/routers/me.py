"""The signed-in citizen's own record: details, credentials, enterprises, sign-on sessions,
consents given to portals, and who looked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from onecard.api.deps import CurrentPrincipal, RuntimeDep
from onecard.api.routers.persons import event_cursor, events_page
from onecard.api.schemas import (
    AuditEventOut,
    ConsentOut,
    ContactUpdate,
    EnterpriseOut,
    MeOut,
    MyEnterpriseOut,
    PageOut,
    PasswordChange,
    RecoveryCodesOut,
    SessionOut,
    TotpCode,
    TotpEnrolmentOut,
)
from onecard.core.audit import list_events
from onecard.core.errors import InvalidInput
from onecard.core.pagination import DEFAULT_LIMIT
from onecard.identity import credentials, enterprises, persons
from onecard.identity.oidc import clients, consent
from onecard.identity.oidc import sessions as sso_sessions
from onecard.identity.staff import current_roles

router = APIRouter(prefix="/v1/me", tags=["me"])


def _me(session, principal: CurrentPrincipal) -> MeOut:  # type: ignore[no-untyped-def]
    person = persons.get_person(session, principal.require_person())
    return MeOut.of_me(
        person,
        totp=credentials.has_totp(session, person.id),
        roles=sorted(current_roles(session, person.id)),
    )


@router.get("", response_model=MeOut, summary="My record")
def me(principal: CurrentPrincipal, runtime: RuntimeDep) -> MeOut:
    with runtime.database.session() as session:
        return _me(session, principal)


@router.patch("", response_model=MeOut, summary="Change my phone or email")
def update_me(body: ContactUpdate, principal: CurrentPrincipal, runtime: RuntimeDep) -> MeOut:
    with runtime.database.session() as session:
        persons.update_contact(
            session,
            persons.get_person(session, principal.require_person()),
            actor=principal.actor,
            phone=body.phone,
            email=body.email,
            clear=frozenset(body.clear),
        )
        return _me(session, principal)


@router.put("/password", status_code=204, summary="Change my password")
def change_password(body: PasswordChange, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        person = persons.get_person(session, principal.require_person())
        current = credentials.password_hash_of(session, person.id)
    # Both argon2id computations happen outside any transaction.
    if current is None or not runtime.hasher.verify(current, body.current_password):
        raise InvalidInput("the current password is not correct", code="password_incorrect")
    new_hash = credentials.hash_new_password(
        runtime.hasher,
        body.new_password,
        personal_values=credentials.personal_values(runtime.sealer, person),
    )
    with runtime.database.session() as session:
        credentials.store_password(session, person, new_hash, actor=principal.actor)


@router.post(
    "/totp", status_code=201, response_model=TotpEnrolmentOut, summary="Start TOTP enrolment"
)
def enrol_totp(principal: CurrentPrincipal, runtime: RuntimeDep) -> TotpEnrolmentOut:
    with runtime.database.session() as session:
        person = persons.get_person(session, principal.require_person())
        enrolment = credentials.begin_totp_enrolment(
            session,
            runtime.sealer,
            person,
            actor=principal.actor,
            label=person.identity_number_masked,
        )
    return TotpEnrolmentOut(secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri)


@router.post("/totp/confirm", status_code=204, summary="Confirm TOTP with a first code")
def confirm_totp(body: TotpCode, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        person = persons.get_person(session, principal.require_person())
        credentials.confirm_totp(session, runtime.sealer, person, body.code, actor=principal.actor)


@router.post("/totp/remove", status_code=204, summary="Remove my TOTP authenticator")
def remove_totp(body: TotpCode, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        person = persons.get_person(session, principal.require_person())
        if not credentials.verify_totp(session, runtime.sealer, person.id, body.code):
            raise InvalidInput("the code is not valid", code="totp_invalid")
        credentials.remove_totp(session, person, actor=principal.actor)


@router.post(
    "/recovery-codes",
    status_code=201,
    response_model=RecoveryCodesOut,
    summary="New recovery codes (shown once; earlier ones stop working)",
)
def recovery_codes(principal: CurrentPrincipal, runtime: RuntimeDep) -> RecoveryCodesOut:
    with runtime.database.session() as session:
        person = persons.get_person(session, principal.require_person())
        codes = credentials.generate_recovery_codes(
            session, runtime.sealer, person, actor=principal.actor
        )
    return RecoveryCodesOut(recovery_codes=codes)


@router.get(
    "/audit-events",
    response_model=PageOut[AuditEventOut],
    summary="Everything recorded about me, including who looked at my data",
)
def my_events(
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[AuditEventOut]:
    with runtime.database.session() as session:
        events = list_events(
            session,
            limit=limit + 1,
            after=event_cursor(cursor),
            person_id=principal.require_person(),
        )
    return events_page(events, limit, AuditEventOut)


@router.get("/enterprises", response_model=list[MyEnterpriseOut], summary="Enterprises I act for")
def my_enterprises(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[MyEnterpriseOut]:
    person_id = principal.require_person()
    with runtime.database.session() as session:
        return [
            MyEnterpriseOut(
                **EnterpriseOut.of(e).model_dump(),
                my_roles=sorted(enterprises.roles_of(session, e, person_id)),
            )
            for e in enterprises.enterprises_of(session, person_id)
        ]


# -- sign-on sessions and consents --------------------------------------------------------


@router.get("/sessions", response_model=list[SessionOut], summary="My live sign-on sessions")
def my_sessions(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[SessionOut]:
    with runtime.database.session() as session:
        rows = sso_sessions.sessions_of(session, principal.require_person())
        return [SessionOut.model_validate(row, from_attributes=True) for row in rows]


@router.delete(
    "/sessions/{sid}",
    status_code=204,
    summary="End one of my sessions (portals in it are told by back-channel logout)",
)
def end_my_session(sid: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        sso_sessions.end_person_session(
            session, runtime.provider, principal.require_person(), sid[:64], actor=principal.actor
        )


@router.get("/consents", response_model=list[ConsentOut], summary="What I agreed to share")
def my_consents(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[ConsentOut]:
    with runtime.database.session() as session:
        rows = consent.consents_of(session, principal.require_person())
        return [
            ConsentOut(
                client_id=client.client_id,
                client_name=client.name,
                scopes=row.scopes,
                claims=row.claims,
                granted_at=row.granted_at,
                updated_at=row.updated_at,
            )
            for row, client in rows
        ]


@router.delete(
    "/consents/{client_id}",
    status_code=204,
    summary="Withdraw my consent for a portal (its refresh tokens stop working at once)",
)
def withdraw_my_consent(client_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> None:
    with runtime.database.session() as session:
        client = clients.get_client(session, client_id[:64])
        consent.withdraw_consent(session, principal.require_person(), client, actor=principal.actor)
