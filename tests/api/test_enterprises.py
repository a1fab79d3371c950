"""Enterprises over HTTP: registration by a registrar, the roles members hold, who may grant
them, the legal representative, and status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from onecard.identity.models import Enterprise
from tests.factories import count_rows, credit_code, expect_problem, fresh_runtime, staff_member


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def register_enterprise(client, headers, representative_id, code: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/enterprises",
        json={
            "name": "福州示例科技有限公司",
            "credit_code": code or credit_code(),
            "legal_representative_id": str(representative_id),
        },
        headers=headers,
    )


def grant(client, headers, enterprise_id, person_id, role: str, **period):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/enterprises/{enterprise_id}/roles",
        json={"person_id": str(person_id), "role": role, **period},
        headers=headers,
    )


def my_enterprises(client, headers) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    response = client.get("/v1/me/enterprises", headers=headers)
    assert response.status_code == 200, response.text
    return {item["id"]: item["my_roles"] for item in response.json()}


@pytest.fixture
def company(client, staff, citizen):  # type: ignore[no-untyped-def]
    """An enterprise and its signed-in legal representative: (enterprise, rep, rep headers)."""
    representative, rep_headers, _ = citizen()
    _, registrar = staff("registrar")
    response = register_enterprise(client, registrar, representative.id)
    assert response.status_code == 201, response.text
    return response.json(), representative, rep_headers


# -- registration -------------------------------------------------------------------------


def test_registrar_registers_enterprises_with_the_design_examples(settings, fresh_db) -> None:
    from fastapi.testclient import TestClient

    from onecard.api.main import create_app
    from tests.factories import signed_in_citizen

    runtime = fresh_runtime(settings, fresh_db())
    _, registrar = staff_member(runtime, "registrar")
    representative, _, _ = signed_in_citizen(runtime)
    with TestClient(create_app(runtime)) as client:
        for code in ("91350100M000100Y43", " 91110000600037341l "):
            response = register_enterprise(client, registrar, representative.id, code)
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["credit_code"] == code.strip().upper()
            assert body["legal_representative_id"] == str(representative.id)
            assert body["status"] == "active"


def test_duplicate_credit_code_is_refused_with_409(client, staff, citizen, runtime) -> None:
    representative, _, _ = citizen()
    _, registrar = staff("registrar")
    code = credit_code()
    assert register_enterprise(client, registrar, representative.id, code).status_code == 201
    before = count_rows(runtime.database, Enterprise)

    for variant in (code, code.lower(), f" {code} "):
        response = register_enterprise(client, registrar, representative.id, variant)
        expect_problem(response, 409, "credit_code_taken")
    assert count_rows(runtime.database, Enterprise) == before


def _wrong_check(code: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return code[:-1] + next(ch for ch in alphabet if ch != code[-1])


@pytest.mark.parametrize(
    ("make_code", "code"),
    [
        (lambda: _wrong_check(credit_code()), "credit_code_check_character"),
        (lambda: credit_code()[:-1], "credit_code_length"),
        (lambda: "9" + "I" + credit_code()[2:], "credit_code_character"),
        (lambda: credit_code()[:2] + "AB" + credit_code()[4:], "credit_code_region"),
    ],
    ids=["check-character", "length", "excluded-letter", "region"],
)
def test_invalid_credit_code_is_422_with_the_validator_code(
    client, staff, citizen, make_code, code
) -> None:
    representative, _, _ = citizen()
    _, registrar = staff("registrar")

    response = register_enterprise(client, registrar, representative.id, make_code())

    body = expect_problem(response, 422, code)
    assert body["field"] == "credit_code"


def test_only_a_registrar_registers_enterprises(client, staff, citizen) -> None:
    representative, rep_headers, _ = citizen()
    _, admin = staff("admin")

    for headers in (rep_headers, admin):
        expect_problem(
            register_enterprise(client, headers, representative.id), 403, "role_required"
        )


def test_legal_representative_must_be_an_active_registered_person(client, staff, citizen) -> None:
    _, registrar = staff("registrar")
    expect_problem(register_enterprise(client, registrar, uuid.uuid4()), 404, "person_not_found")

    suspended, _, _ = citizen()
    client.post(f"/v1/persons/{suspended.id}/suspend", json={"reason": "x"}, headers=registrar)
    expect_problem(register_enterprise(client, registrar, suspended.id), 409, "person_not_active")


def test_retried_enterprise_registration_with_the_same_key_creates_one(
    client, staff, citizen, runtime
) -> None:
    representative, _, _ = citizen()
    _, registrar = staff("registrar")
    headers = {**registrar, "Idempotency-Key": uuid.uuid4().hex}
    code = credit_code()
    before = count_rows(runtime.database, Enterprise)

    first = register_enterprise(client, headers, representative.id, code)
    retry = register_enterprise(client, headers, representative.id, code)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert count_rows(runtime.database, Enterprise) == before + 1


# -- roles --------------------------------------------------------------------------------


def test_legal_representative_grants_admin_agent_and_a_service_role(
    client, citizen, company
) -> None:
    enterprise, _, rep_headers = company
    admin_member, _, _ = citizen()
    agent, _, _ = citizen()
    valid_from, valid_until = _iso(timedelta(minutes=-5)), _iso(timedelta(days=30))

    granted = [
        grant(client, rep_headers, enterprise["id"], admin_member.id, "admin"),
        grant(client, rep_headers, enterprise["id"], agent.id, "agent"),
        grant(
            client,
            rep_headers,
            enterprise["id"],
            agent.id,
            "tax.filing",
            valid_from=valid_from,
            valid_until=valid_until,
        ),
    ]

    assert [g.status_code for g in granted] == [201, 201, 201], [g.text for g in granted]
    service = granted[2].json()
    assert service["role"] == "tax.filing"
    assert datetime.fromisoformat(service["valid_from"]) == datetime.fromisoformat(valid_from)
    assert datetime.fromisoformat(service["valid_until"]) == datetime.fromisoformat(valid_until)
    listed = client.get(f"/v1/enterprises/{enterprise['id']}/roles", headers=rep_headers)
    assert listed.status_code == 200
    assert {(g["person_id"], g["role"]) for g in listed.json()["items"]} == {
        (str(admin_member.id), "admin"),
        (str(agent.id), "agent"),
        (str(agent.id), "tax.filing"),
    }


def test_member_holding_enterprise_admin_can_grant(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    member, member_headers, _ = citizen()
    newcomer, _, _ = citizen()
    assert grant(client, rep_headers, enterprise["id"], member.id, "admin").status_code == 201

    response = grant(client, member_headers, enterprise["id"], newcomer.id, "hr:payroll")

    assert response.status_code == 201, response.text
    assert response.json()["granted_by"] == str(member.id)


def test_agent_cannot_grant_roles(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    agent, agent_headers, _ = citizen()
    other, _, _ = citizen()
    assert grant(client, rep_headers, enterprise["id"], agent.id, "agent").status_code == 201

    response = grant(client, agent_headers, enterprise["id"], other.id, "agent")

    expect_problem(response, 403, "not_enterprise_admin")


def test_outsider_cannot_grant_or_read_roles(client, citizen, company) -> None:
    enterprise, _, _ = company
    outsider, outsider_headers, _ = citizen()

    expect_problem(
        grant(client, outsider_headers, enterprise["id"], outsider.id, "admin"),
        403,
        "not_enterprise_admin",
    )
    for path in (
        f"/v1/enterprises/{enterprise['id']}",
        f"/v1/enterprises/{enterprise['id']}/roles",
    ):
        expect_problem(client.get(path, headers=outsider_headers), 403, "not_enterprise_member")


def test_registrar_at_the_counter_can_grant_roles(client, staff, citizen, company) -> None:
    enterprise, _, _ = company
    person, _, _ = citizen()
    registrar, headers = staff("registrar")

    response = grant(client, headers, enterprise["id"], person.id, "agent")

    assert response.status_code == 201, response.text
    assert response.json()["granted_by"] == str(registrar.id)


def test_withdrawn_role_is_no_longer_held(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    agent, agent_headers, _ = citizen()
    granted = grant(client, rep_headers, enterprise["id"], agent.id, "agent").json()
    assert my_enterprises(client, agent_headers) == {enterprise["id"]: ["agent"]}

    response = client.delete(
        f"/v1/enterprises/{enterprise['id']}/roles/{granted['id']}", headers=rep_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["withdrawn_at"] is not None
    assert my_enterprises(client, agent_headers) == {}
    again = client.delete(
        f"/v1/enterprises/{enterprise['id']}/roles/{granted['id']}", headers=rep_headers
    )
    expect_problem(again, 404, "role_grant_not_found")
    # Withdrawn, the role can be granted afresh.
    assert grant(client, rep_headers, enterprise["id"], agent.id, "agent").status_code == 201


def test_grant_cannot_be_withdrawn_through_another_enterprise(
    client, staff, citizen, company
) -> None:
    enterprise, _, rep_headers = company
    agent, _, _ = citizen()
    granted = grant(client, rep_headers, enterprise["id"], agent.id, "agent").json()
    _, registrar = staff("registrar")
    other_rep, other_headers, _ = citizen()
    other = register_enterprise(client, registrar, other_rep.id).json()

    response = client.delete(
        f"/v1/enterprises/{other['id']}/roles/{granted['id']}", headers=other_headers
    )

    expect_problem(response, 404, "role_grant_not_found")


def test_agent_cannot_withdraw_roles(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    agent, agent_headers, _ = citizen()
    granted = grant(client, rep_headers, enterprise["id"], agent.id, "agent").json()

    response = client.delete(
        f"/v1/enterprises/{enterprise['id']}/roles/{granted['id']}", headers=agent_headers
    )

    expect_problem(response, 403, "not_enterprise_admin")


def test_role_not_yet_in_force_is_not_shown_among_my_enterprises(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    person, headers, _ = citizen()
    response = grant(
        client,
        rep_headers,
        enterprise["id"],
        person.id,
        "tax.filing",
        valid_from=_iso(timedelta(days=1)),
    )
    assert response.status_code == 201, response.text

    assert my_enterprises(client, headers) == {}
    expect_problem(
        client.get(f"/v1/enterprises/{enterprise['id']}", headers=headers),
        403,
        "not_enterprise_member",
    )


def test_my_enterprises_shows_my_roles(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    agent, agent_headers, _ = citizen()
    grant(client, rep_headers, enterprise["id"], agent.id, "tax.filing")
    grant(client, rep_headers, enterprise["id"], agent.id, "agent")

    assert my_enterprises(client, rep_headers) == {enterprise["id"]: ["admin"]}
    assert my_enterprises(client, agent_headers) == {enterprise["id"]: ["agent", "tax.filing"]}
    member_view = client.get(f"/v1/enterprises/{enterprise['id']}", headers=agent_headers)
    assert member_view.status_code == 200
    assert member_view.json()["credit_code"] == enterprise["credit_code"]


def test_granting_a_held_role_again_is_409(client, citizen, company) -> None:
    enterprise, _, rep_headers = company
    person, _, _ = citizen()
    assert grant(client, rep_headers, enterprise["id"], person.id, "agent").status_code == 201

    expect_problem(
        grant(client, rep_headers, enterprise["id"], person.id, "agent"), 409, "role_already_held"
    )


@pytest.mark.parametrize("role", ["Tax Filing", "tax..filing", "", "x" * 65, "1tax"])
def test_malformed_role_name_is_422(client, citizen, company, role) -> None:
    enterprise, _, rep_headers = company
    person, _, _ = citizen()

    response = grant(client, rep_headers, enterprise["id"], person.id, role)

    assert response.status_code == 422, response.text
    assert response.json()["code"] in {"enterprise_role_invalid", "request_invalid"}


def test_grant_to_an_unknown_person_is_404(client, company) -> None:
    enterprise, _, rep_headers = company

    expect_problem(
        grant(client, rep_headers, enterprise["id"], uuid.uuid4(), "agent"),
        404,
        "person_not_found",
    )


@pytest.mark.parametrize(
    "period",
    [
        {"valid_from": "2030-01-01T00:00:00"},
        {"valid_until": "2030-01-01T00:00:00"},
        {"valid_from": "2030-01-01"},
    ],
    ids=["naive-from", "naive-until", "date-only"],
)
def test_naive_datetimes_are_422(client, citizen, company, period) -> None:
    enterprise, _, rep_headers = company
    person, _, _ = citizen()

    response = grant(client, rep_headers, enterprise["id"], person.id, "agent", **period)

    expect_problem(response, 422, "request_invalid")


@pytest.mark.parametrize(
    "period",
    [
        {"valid_from": _iso(timedelta(days=2)), "valid_until": _iso(timedelta(days=1))},
        {"valid_until": _iso(timedelta(days=-1))},
    ],
    ids=["ends-before-it-starts", "already-ended"],
)
def test_impossible_role_period_is_422(client, citizen, company, period) -> None:
    enterprise, _, rep_headers = company
    person, _, _ = citizen()

    response = grant(client, rep_headers, enterprise["id"], person.id, "agent", **period)

    expect_problem(response, 422, "role_period_invalid")


# -- legal representative and status ----------------------------------------------------------


def test_change_of_legal_representative_keeps_grants_and_audits_both(
    client, staff, citizen, company
) -> None:
    enterprise, old_rep, old_headers = company
    new_rep, new_headers, _ = citizen()
    agent, _, _ = citizen()
    kept = grant(client, old_headers, enterprise["id"], agent.id, "agent").json()
    _, registrar = staff("registrar")

    response = client.put(
        f"/v1/enterprises/{enterprise['id']}/legal-representative",
        json={"legal_representative_id": str(new_rep.id)},
        headers=registrar,
    )

    assert response.status_code == 200, response.text
    assert response.json()["legal_representative_id"] == str(new_rep.id)
    listed = client.get(f"/v1/enterprises/{enterprise['id']}/roles", headers=new_headers).json()
    assert [g["id"] for g in listed["items"]] == [kept["id"]]
    for headers in (old_headers, new_headers):
        events = client.get("/v1/me/audit-events", headers=headers).json()["items"]
        (event,) = [e for e in events if e["action"] == "identity:enterprise:legal_representative"]
        assert event["data"] == {"from": str(old_rep.id), "to": str(new_rep.id)}
        assert event["subject_id"] == enterprise["id"]
    # The former representative no longer manages roles; the new one does.
    expect_problem(
        grant(client, old_headers, enterprise["id"], old_rep.id, "agent"),
        403,
        "not_enterprise_admin",
    )
    assert grant(client, new_headers, enterprise["id"], old_rep.id, "agent").status_code == 201


def test_closed_enterprise_refuses_new_grants(client, staff, citizen, company) -> None:
    enterprise, _, rep_headers = company
    person, _, _ = citizen()
    _, registrar = staff("registrar")
    closed = client.post(
        f"/v1/enterprises/{enterprise['id']}/close",
        json={"reason": "deregistered"},
        headers=registrar,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"

    expect_problem(
        grant(client, rep_headers, enterprise["id"], person.id, "agent"), 409, "enterprise_closed"
    )
    expect_problem(
        client.put(
            f"/v1/enterprises/{enterprise['id']}/legal-representative",
            json={"legal_representative_id": str(person.id)},
            headers=registrar,
        ),
        409,
        "enterprise_closed",
    )


def test_enterprise_status_transitions(client, staff, company) -> None:
    enterprise, _, _ = company
    _, registrar = staff("registrar")
    path = f"/v1/enterprises/{enterprise['id']}"

    expect_problem(
        client.post(f"{path}/reinstate", json={"reason": "x"}, headers=registrar),
        409,
        "enterprise_status_conflict",
    )
    for verb, status in [("suspend", "suspended"), ("reinstate", "active"), ("close", "closed")]:
        response = client.post(f"{path}/{verb}", json={"reason": verb}, headers=registrar)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    expect_problem(
        client.post(f"{path}/suspend", json={"reason": "x"}, headers=registrar),
        409,
        "enterprise_status_conflict",
    )


def test_staff_readers_can_read_any_enterprise(client, staff, company) -> None:
    enterprise, _, _ = company
    _, auditor = staff("auditor")

    assert client.get(f"/v1/enterprises/{enterprise['id']}", headers=auditor).status_code == 200
    listed = client.get("/v1/enterprises", params={"limit": 1}, headers=auditor)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 1


def test_unknown_enterprise_is_404(client, staff) -> None:
    _, registrar = staff("registrar")

    expect_problem(
        client.get(f"/v1/enterprises/{uuid.uuid4()}", headers=registrar),
        404,
        "enterprise_not_found",
    )
