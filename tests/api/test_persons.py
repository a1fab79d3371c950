"""Persons over HTTP: registration, idempotency, who may do what, lifecycle, audited reads,
search, reveal and pagination."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest

from onecard.core.audit import Actor, AuditEvent
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.validators import identity_check_character
from onecard.identity.models import PasswordCredential, Person
from onecard.identity.oidc.first_party import mint_person_token
from tests.factories import (
    bearer,
    count_rows,
    counter_registration_body,
    expect_problem,
    fresh_runtime,
    identity_number,
    identity_number_ending_in_x,
    phone,
    signed_in_citizen,
    staff_member,
    with_wrong_check_character,
)
from tests.oidc_flow import sign_in

PASSWORD = "a long passphrase"


def register(client, **fields):  # type: ignore[no-untyped-def]
    body = {"name": "王五", "identity_number": identity_number(), "password": PASSWORD}
    body.update(fields)
    return client.post("/v1/persons/register", json=body)


def my_events(client, headers, action: str | None = None) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get("/v1/me/audit-events", params={"limit": 200}, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return [e for e in items if action is None or e["action"] == action]


def registered_citizen(client) -> tuple[str, str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A self-registered, signed-in citizen: (id, identity number, headers)."""
    number = identity_number()
    registered = register(client, identity_number=number)
    assert registered.status_code == 201, registered.text
    client.cookies.clear()
    _, signed_in = sign_in(client, client.app.state.runtime, number, PASSWORD)
    assert signed_in is not None
    assert signed_in.status_code == 200
    return registered.json()["id"], number, bearer(signed_in.json()["access_token"])


def person_events(client, headers, person_id, action: str) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get(
        f"/v1/persons/{person_id}/audit-events", params={"limit": 200}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["action"] == action]


@pytest.fixture
def isolated(settings, fresh_db):  # type: ignore[no-untyped-def]
    """A client and runtime on a database of their own, for tests that count every row."""
    from fastapi.testclient import TestClient

    from onecard.api.main import create_app

    runtime = fresh_runtime(settings, fresh_db())
    with TestClient(create_app(runtime)) as test_client:
        yield test_client, runtime


# -- registration -------------------------------------------------------------------------


def test_self_registration_gives_level_1_and_stores_a_password(client, runtime) -> None:
    number = identity_number()
    response = register(client, identity_number=number)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["assurance_level"] == 1
    assert body["acr"] == "urn:onecard:loa:1"
    assert body["registered_by"] == "self"
    assert body["status"] == "active"
    with runtime.database.session() as session:
        credential = session.get(PasswordCredential, uuid.UUID(body["id"]))
        assert credential is not None
        assert PASSWORD not in credential.hash
    client.cookies.clear()
    _, signed_in = sign_in(client, runtime, number, PASSWORD)
    assert signed_in is not None
    assert signed_in.status_code == 200


def test_registrar_registers_at_level_2_and_the_audit_event_names_the_document(
    client, staff
) -> None:
    registrar, headers = staff("registrar")
    response = client.post("/v1/persons", json=counter_registration_body(), headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["assurance_level"] == 2
    assert body["registered_by"] == "registrar"
    (event,) = person_events(client, headers, body["id"], "identity:person:register")
    assert event["data"]["document_checked"] == "resident identity card"
    assert event["data"]["level"] == 2
    assert event["actor_id"] == str(registrar.id)


def test_registrar_registration_with_initial_password_lets_the_person_sign_in(
    client, staff
) -> None:
    _, headers = staff("registrar")
    number = identity_number()
    body = counter_registration_body(
        identity_number=number, initial_password="counter chosen words"
    )
    assert client.post("/v1/persons", json=body, headers=headers).status_code == 201

    client.cookies.clear()
    _, signed_in = sign_in(client, client.app.state.runtime, number, "counter chosen words")
    assert signed_in is not None
    assert signed_in.status_code == 200


@pytest.mark.parametrize(
    "variant",
    [lambda n: n, lambda n: n.lower(), lambda n: f"  {n}  "],
    ids=["same", "lowercase-x", "surrounding-spaces"],
)
def test_duplicate_identity_number_is_refused_with_409(client, runtime, variant) -> None:
    number = identity_number_ending_in_x()
    assert register(client, identity_number=number).status_code == 201
    before = count_rows(runtime.database, Person)

    response = register(client, identity_number=variant(number))

    expect_problem(response, 409, "identity_number_taken")
    assert number not in response.text.upper()
    assert count_rows(runtime.database, Person) == before


def test_duplicate_phone_is_refused_with_409_phone_taken(client) -> None:
    number = phone()
    assert register(client, phone=number).status_code == 201

    expect_problem(register(client, phone=number), 409, "phone_taken")
    expect_problem(register(client, phone=f"+86 {number}"), 409, "phone_taken")


def test_duplicate_email_is_refused_with_409_email_taken(client) -> None:
    local = uuid.uuid4().hex[:12]
    assert register(client, email=f"{local}@example.cn").status_code == 201

    expect_problem(register(client, email=f"{local.upper()}@Example.CN"), 409, "email_taken")


def _with_bad_date() -> str:
    first17 = "110105" + "19990231" + "123"
    return first17 + identity_check_character(first17)


@pytest.mark.parametrize(
    ("make_number", "code"),
    [
        (lambda: with_wrong_check_character(identity_number()), "identity_number_check_character"),
        (_with_bad_date, "identity_number_birth_date"),
        (lambda: identity_number()[:-1], "identity_number_length"),
        (lambda: identity_number() + "1", "identity_number_length"),
        (
            lambda: identity_number()[:8] + "AB" + identity_number()[10:],
            "identity_number_character",
        ),
    ],
    ids=["check-character", "date", "too-short", "too-long", "letters"],
)
def test_invalid_identity_number_is_refused_with_the_validator_code(
    client, make_number, code
) -> None:
    number = make_number()
    response = register(client, identity_number=number)

    body = expect_problem(response, 422, code)
    assert body["field"] == "identity_number"
    assert number not in response.text
    assert number[:14] not in response.text


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short one", "password_too_short"),
        ("abcd efgh " * 13, "password_too_long"),
        ("abcabcabcabc", "password_too_simple"),
    ],
)
def test_weak_password_is_refused_with_422(client, password, code) -> None:
    response = register(client, password=password)

    expect_problem(response, 422, code)
    assert password not in response.text


def test_password_containing_the_identity_number_is_refused(client) -> None:
    number = identity_number()
    password = f"me {number.lower()}"
    response = register(client, identity_number=number, password=password)

    expect_problem(response, 422, "password_contains_personal_data")
    assert number not in response.text.upper()


def test_password_containing_the_phone_is_refused(client) -> None:
    number = phone()
    expect_problem(
        register(client, phone=number, password=f"call me at {number}"),
        422,
        "password_contains_personal_data",
    )


def test_request_with_unknown_fields_is_refused_with_request_invalid(client) -> None:
    number = identity_number()
    response = register(client, identity_number=number, level=3)

    body = expect_problem(response, 422, "request_invalid")
    assert any("level" in error["location"] for error in body["errors"])
    assert number not in response.text
    assert PASSWORD not in response.text


def test_422_body_never_echoes_the_identity_number_or_password(client) -> None:
    number = identity_number()
    password = "z" * 300  # over the schema's length limit
    response = client.post(
        "/v1/persons/register",
        json={"name": ["not", "a", "string"], "identity_number": number, "password": password},
    )

    expect_problem(response, 422, "request_invalid")
    assert number not in response.text
    assert "zzzzzzzzzz" not in response.text


def test_failed_registration_writes_nothing(client, runtime) -> None:
    persons_before = count_rows(runtime.database, Person)
    events_before = count_rows(runtime.database, AuditEvent)

    expect_problem(register(client, password="too short"), 422, "password_too_short")

    assert count_rows(runtime.database, Person) == persons_before
    assert count_rows(runtime.database, AuditEvent) == events_before


def test_registration_failing_after_the_insert_is_rolled_back_whole(client, runtime) -> None:
    # The email rule is checked by set_password, after the person row is inserted.
    email = f"{uuid.uuid4().hex[:10]}@example.cn"
    number = identity_number()
    persons_before = count_rows(runtime.database, Person)
    events_before = count_rows(runtime.database, AuditEvent)

    response = register(client, identity_number=number, email=email, password=f"x {email} y")

    expect_problem(response, 422, "password_contains_personal_data")
    assert count_rows(runtime.database, Person) == persons_before
    assert count_rows(runtime.database, AuditEvent) == events_before
    assert register(client, identity_number=number, email=email).status_code == 201


# -- Idempotency-Key ----------------------------------------------------------------------


def test_retried_registration_with_the_same_key_creates_one_person(client, runtime) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "钱七", "identity_number": identity_number(), "password": PASSWORD}
    before = count_rows(runtime.database, Person)

    first = client.post("/v1/persons/register", json=body, headers=key)
    retry = client.post("/v1/persons/register", json=body, headers=key)

    assert first.status_code == retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert count_rows(runtime.database, Person) == before + 1


def test_same_idempotency_key_with_a_different_body_is_refused(client, runtime) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = {"name": "钱七", "identity_number": identity_number(), "password": PASSWORD}
    assert client.post("/v1/persons/register", json=first, headers=key).status_code == 201
    before = count_rows(runtime.database, Person)

    other = {**first, "identity_number": identity_number()}
    response = client.post("/v1/persons/register", json=other, headers=key)

    expect_problem(response, 422, "idempotency_key_reused")
    assert count_rows(runtime.database, Person) == before


def test_retried_counter_registration_with_the_same_key_replays(client, staff, runtime) -> None:
    _, headers = staff("registrar")
    headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    body = counter_registration_body()
    before = count_rows(runtime.database, Person)

    first = client.post("/v1/persons", json=body, headers=headers)
    retry = client.post("/v1/persons", json=body, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert count_rows(runtime.database, Person) == before + 1


def test_overlong_idempotency_key_is_refused(client, runtime) -> None:
    before = count_rows(runtime.database, Person)

    response = client.post(
        "/v1/persons/register",
        json={"name": "钱七", "identity_number": identity_number(), "password": PASSWORD},
        headers={"Idempotency-Key": "k" * 256},
    )

    expect_problem(response, 422, "bad_idempotency_key")
    assert count_rows(runtime.database, Person) == before


# -- authorisation ------------------------------------------------------------------------


def test_citizen_cannot_use_staff_endpoints(client, citizen) -> None:
    me, headers, _ = citizen()

    expect_problem(client.get("/v1/persons", headers=headers), 403, "role_required")
    expect_problem(client.get(f"/v1/persons/{me.id}", headers=headers), 403, "role_required")
    expect_problem(
        client.post("/v1/persons", json=counter_registration_body(), headers=headers),
        403,
        "role_required",
    )
    expect_problem(
        client.post(
            "/v1/persons/search", json={"identity_number": identity_number()}, headers=headers
        ),
        403,
        "role_required",
    )


def test_level_1_person_holding_a_staff_role_is_refused(client, staff) -> None:
    _, headers = staff("registrar", level=1)

    response = client.post("/v1/persons", json=counter_registration_body(), headers=headers)

    expect_problem(response, 403, "assurance_level_too_low")


def test_admin_cannot_register_persons(client, staff, runtime) -> None:
    _, headers = staff("admin")
    before = count_rows(runtime.database, Person)

    response = client.post("/v1/persons", json=counter_registration_body(), headers=headers)

    expect_problem(response, 403, "role_required")
    assert count_rows(runtime.database, Person) == before


def test_auditor_can_read_but_not_write(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("auditor")

    assert client.get(f"/v1/persons/{person.id}", headers=headers).status_code == 200
    assert client.get("/v1/persons", params={"limit": 1}, headers=headers).status_code == 200
    for path, body in [
        (f"/v1/persons/{person.id}/suspend", {"reason": "checking"}),
        (f"/v1/persons/{person.id}/level", {"level": 2, "evidence": "passport"}),
        ("/v1/persons", counter_registration_body()),
    ]:
        expect_problem(client.post(path, json=body, headers=headers), 403, "role_required")
    expect_problem(
        client.get(f"/v1/persons/{person.id}/identity-number", headers=headers),
        403,
        "role_required",
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}],
    ids=["none", "basic", "empty-bearer"],
)
def test_missing_token_is_401_with_www_authenticate_bearer(client, headers) -> None:
    response = client.get("/v1/me", headers=headers)

    expect_problem(response, 401, "token_missing")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token", ["garbage", "oct_" + "A" * 43, "oct_" + "x" * 200], ids=["garbage", "unknown", "long"]
)
def test_garbage_token_is_401_invalid_token(client, token) -> None:
    response = client.get("/v1/me", headers=bearer(token))

    expect_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401_invalid_token(client, runtime, citizen) -> None:
    person, _, _ = citizen()
    with use_clock(FrozenClock()) as frozen:
        with runtime.database.session() as session:
            token = mint_person_token(
                session,
                runtime.provider,
                person,
                scope="openid account",
                ttl=timedelta(seconds=60),
                actor=Actor.system(),
            )
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        frozen.advance(60 + 6)  # past exp and the 5 s leeway

        expect_problem(client.get("/v1/me", headers=bearer(token)), 401, "invalid_token")


def test_suspending_a_person_revokes_their_tokens_at_once(client, staff, citizen) -> None:
    person, headers, _ = citizen()
    _, registrar = staff("registrar")
    assert client.get("/v1/me", headers=headers).status_code == 200

    suspended = client.post(
        f"/v1/persons/{person.id}/suspend", json={"reason": "lost card"}, headers=registrar
    )
    assert suspended.status_code == 200, suspended.text
    expect_problem(client.get("/v1/me", headers=headers), 401, "invalid_token")

    reinstated = client.post(
        f"/v1/persons/{person.id}/reinstate", json={"reason": "card found"}, headers=registrar
    )
    assert reinstated.status_code == 200
    # Revoked, not merely blocked while suspended: the old token stays dead.
    expect_problem(client.get("/v1/me", headers=headers), 401, "invalid_token")


def test_suspended_person_cannot_sign_in(client, staff, runtime) -> None:
    number = identity_number()
    registered = register(client, identity_number=number)
    _, registrar = staff("registrar")
    client.post(
        f"/v1/persons/{registered.json()['id']}/suspend", json={"reason": "x"}, headers=registrar
    )

    client.cookies.clear()
    result, token = sign_in(client, client.app.state.runtime, number, PASSWORD)

    assert token is None
    assert result.page_error == "account_not_active"


# -- lifecycle ----------------------------------------------------------------------------


def _change(client, headers, person_id, verb: str, reason: str | None = "a reason"):  # type: ignore[no-untyped-def]
    body = {} if reason is None else {"reason": reason}
    return client.post(f"/v1/persons/{person_id}/{verb}", json=body, headers=headers)


def test_person_is_suspended_reinstated_and_closed_with_reasons(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")

    for verb, status, reason in [
        ("suspend", "suspended", "reported stolen"),
        ("reinstate", "active", "owner confirmed at counter"),
        ("close", "closed", "deceased"),
    ]:
        response = _change(client, headers, person.id, verb, reason)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
        assert response.json()["status_reason"] == reason
        (event,) = person_events(client, headers, person.id, f"identity:person:{verb}")
        assert event["data"]["reason"] == reason
        assert event["data"]["to"] == status


@pytest.mark.parametrize(
    ("steps", "illegal"),
    [
        ([], "reinstate"),
        (["suspend"], "suspend"),
        (["close"], "suspend"),
        (["close"], "reinstate"),
        (["close"], "close"),
    ],
    ids=["reinstate-active", "suspend-suspended", "suspend-closed", "reinstate-closed", "reclose"],
)
def test_illegal_status_transition_is_409_person_status_conflict(
    client, staff, citizen, steps, illegal
) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")
    for verb in steps:
        assert _change(client, headers, person.id, verb).status_code == 200

    expect_problem(_change(client, headers, person.id, illegal), 409, "person_status_conflict")


def test_status_change_without_a_reason_is_422(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")

    expect_problem(_change(client, headers, person.id, "suspend", None), 422, "request_invalid")
    expect_problem(_change(client, headers, person.id, "suspend", ""), 422, "request_invalid")
    expect_problem(_change(client, headers, person.id, "suspend", "   "), 422, "reason_required")
    me = client.get(f"/v1/persons/{person.id}", headers=headers).json()
    assert me["status"] == "active"


def test_level_change_records_the_evidence(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")

    response = client.post(
        f"/v1/persons/{person.id}/level",
        json={"level": 2, "evidence": "resident identity card checked"},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["assurance_level"] == 2
    assert response.json()["acr"] == "urn:onecard:loa:2"
    (event,) = person_events(client, headers, person.id, "identity:person:level")
    assert event["data"] == {"from": 1, "to": 2, "evidence": "resident identity card checked"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"level": 2}, "request_invalid"),
        ({"level": 2, "evidence": ""}, "request_invalid"),
        ({"level": 2, "evidence": "  "}, "evidence_required"),
        ({"level": 4, "evidence": "passport"}, "request_invalid"),
    ],
    ids=["missing", "empty", "blank", "level-4"],
)
def test_level_change_without_evidence_or_with_a_bad_level_is_422(
    client, staff, citizen, body, code
) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")

    response = client.post(f"/v1/persons/{person.id}/level", json=body, headers=headers)

    expect_problem(response, 422, code)


def test_level_of_a_suspended_person_cannot_change(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("registrar")
    _change(client, headers, person.id, "suspend")

    response = client.post(
        f"/v1/persons/{person.id}/level", json={"level": 2, "evidence": "x"}, headers=headers
    )

    expect_problem(response, 409, "person_status_conflict")


def test_unknown_person_is_404(client, staff) -> None:
    _, headers = staff("registrar")

    expect_problem(
        client.get(f"/v1/persons/{uuid.uuid4()}", headers=headers), 404, "person_not_found"
    )
    expect_problem(_change(client, headers, uuid.uuid4(), "suspend"), 404, "person_not_found")


def test_contact_correction_to_a_taken_phone_is_409(client, staff, citizen) -> None:
    taken = phone()
    assert register(client, phone=taken).status_code == 201
    person, _, _ = citizen()
    _, headers = staff("registrar")

    response = client.patch(f"/v1/persons/{person.id}", json={"phone": taken}, headers=headers)

    expect_problem(response, 409, "phone_taken")


# -- audited reads, search, reveal ----------------------------------------------------------


def test_staff_read_is_visible_to_the_citizen_as_a_view_event(client, staff, citizen) -> None:
    person, citizen_headers, _ = citizen()
    registrar, headers = staff("registrar")
    assert my_events(client, citizen_headers, "identity:person:view") == []

    assert client.get(f"/v1/persons/{person.id}", headers=headers).status_code == 200

    (event,) = my_events(client, citizen_headers, "identity:person:view")
    assert event["actor_id"] == str(registrar.id)
    assert event["data"] == {"via": "read"}


def test_staff_search_is_visible_to_the_citizen_as_a_view_event(client, staff) -> None:
    person_id, number, citizen_headers = registered_citizen(client)
    auditor, headers = staff("auditor")

    response = client.post("/v1/persons/search", json={"identity_number": number}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == person_id
    (event,) = my_events(client, citizen_headers, "identity:person:view")
    assert event["actor_id"] == str(auditor.id)
    assert event["data"] == {"via": "search"}


def test_my_audit_events_are_paginated_newest_first(client, staff) -> None:
    person_id, _, citizen_headers = registered_citizen(client)
    _, headers = staff("registrar")
    for _ in range(3):
        client.get(f"/v1/persons/{person_id}", headers=headers)
    everything = my_events(client, citizen_headers)

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/me/audit-events", params=params, headers=citizen_headers).json()
        seen += [event["id"] for event in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [event["id"] for event in everything]
    assert all("seq" not in event for event in everything)
    assert len(seen) == len(set(seen)) >= 5
    expect_problem(
        client.get("/v1/me/audit-events", params={"cursor": "abc"}, headers=citizen_headers),
        422,
        "bad_cursor",
    )


def test_staff_list_is_visible_to_the_citizen_as_a_view_event(isolated) -> None:
    client, runtime = isolated
    person, citizen_headers, _ = signed_in_citizen(runtime)
    admin, headers = staff_member(runtime, "admin")

    page = client.get("/v1/persons", params={"limit": 200}, headers=headers)

    assert page.status_code == 200, page.text
    assert str(person.id) in {item["id"] for item in page.json()["items"]}
    (event,) = my_events(client, citizen_headers, "identity:person:view")
    assert event["actor_id"] == str(admin.id)
    assert event["data"] == {"via": "list"}


def test_search_finds_a_person_by_the_number_in_the_body(client, staff) -> None:
    number = identity_number_ending_in_x()
    registered = register(client, identity_number=number).json()
    _, headers = staff("registrar")

    for variant in (number, number.lower(), f" {number} "):
        response = client.post(
            "/v1/persons/search", json={"identity_number": variant}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == registered["id"]
        assert number not in response.text
        assert response.json()["identity_number_masked"] == number[:4] + "*" * 10 + number[-4:]


def test_search_for_an_unknown_or_invalid_number_is_refused(client, staff) -> None:
    _, headers = staff("registrar")

    expect_problem(
        client.post(
            "/v1/persons/search", json={"identity_number": identity_number()}, headers=headers
        ),
        404,
        "person_not_found",
    )
    bad = with_wrong_check_character(identity_number())
    response = client.post("/v1/persons/search", json={"identity_number": bad}, headers=headers)
    expect_problem(response, 422, "identity_number_check_character")
    assert bad not in response.text


def test_reveal_returns_the_full_number_to_a_registrar_and_is_audited(client, staff) -> None:
    person_id, number, citizen_headers = registered_citizen(client)
    registrar, headers = staff("registrar")

    response = client.get(f"/v1/persons/{person_id}/identity-number", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"identity_number": number}
    (event,) = my_events(client, citizen_headers, "identity:person:reveal_identity_number")
    assert event["actor_id"] == str(registrar.id)


def test_reveal_is_refused_to_admins(client, staff, citizen) -> None:
    person, _, _ = citizen()
    _, headers = staff("admin")

    expect_problem(
        client.get(f"/v1/persons/{person.id}/identity-number", headers=headers),
        403,
        "role_required",
    )


# -- pagination ---------------------------------------------------------------------------


def test_pagination_walks_every_person_once(isolated) -> None:
    client, runtime = isolated
    _, headers = staff_member(runtime, "registrar")
    for _ in range(7):
        signed_in_citizen(runtime)
    expected = count_rows(runtime.database, Person)

    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/persons", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == expected == 8
    assert pages == 3


def test_pagination_filters_by_level_and_status(isolated) -> None:
    client, runtime = isolated
    registrar, headers = staff_member(runtime, "registrar")
    citizens = [signed_in_citizen(runtime)[0] for _ in range(3)]
    _change(client, headers, citizens[0].id, "suspend")

    level_2 = client.get("/v1/persons", params={"level": 2}, headers=headers).json()
    suspended = client.get("/v1/persons", params={"status": "suspended"}, headers=headers).json()

    assert [item["id"] for item in level_2["items"]] == [str(registrar.id)]
    assert [item["id"] for item in suspended["items"]] == [str(citizens[0].id)]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        _b64(b"[1, 2, 3]"),
        _b64(b'{"a": 1}'),
        _b64(json.dumps(["yesterday", str(uuid.uuid4())]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00", "not-a-uuid"]).encode()),
        _b64(b"\xff\xfe"),
    ],
    ids=["garbage", "three-items", "object", "bad-date", "bad-uuid", "not-utf8"],
)
def test_bad_cursor_is_422_bad_cursor(client, staff, cursor) -> None:
    _, headers = staff("registrar")

    response = client.get("/v1/persons", params={"cursor": cursor}, headers=headers)

    expect_problem(response, 422, "bad_cursor")


def test_cursor_with_a_naive_datetime_is_422_bad_cursor(app, staff) -> None:
    from fastapi.testclient import TestClient

    _, headers = staff("registrar")
    cursor = _b64(json.dumps(["2024-01-01T00:00:00", str(uuid.uuid4())]).encode())

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/persons", params={"cursor": cursor}, headers=headers)

    expect_problem(response, 422, "bad_cursor")


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_limit_out_of_range_is_422(client, staff, limit) -> None:
    _, headers = staff("registrar")

    response = client.get("/v1/persons", params={"limit": limit}, headers=headers)

    expect_problem(response, 422, "request_invalid")


def test_email_taken_is_named_right_even_when_the_address_mentions_a_phone(client) -> None:
    email = f"phone{identity_number()[-6:]}@example.cn"
    first = client.post(
        "/v1/persons/register",
        json={
            "name": "甲",
            "identity_number": identity_number(),
            "password": "a long passphrase",
            "email": email,
        },
    )
    assert first.status_code == 201, first.text
    second = client.post(
        "/v1/persons/register",
        json={
            "name": "乙",
            "identity_number": identity_number(),
            "password": "a long passphrase",
            "email": email,
        },
    )
    expect_problem(second, 409, "email_taken")
