"""Staff roles: granted and withdrawn by administrators over HTTP; the last-admin rule at the
domain level on a database of its own (the shared one holds admins from other tests)."""

from __future__ import annotations

import uuid

import pytest

from onecard.core.audit import Actor
from onecard.core.errors import InvalidState
from onecard.identity import staff as staff_roles
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import AssuranceLevel, StaffRoleName
from onecard.identity.persons import change_status
from tests.factories import counter_registration_body, expect_problem, person


def grant(client, headers, person_id, role: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/staff-roles", json={"person_id": str(person_id), "role": role}, headers=headers
    )


def test_admin_grants_a_role_that_takes_effect_at_once(client, staff) -> None:
    admin, admin_headers = staff("admin")
    member, member_headers = staff()
    expect_problem(
        client.post("/v1/persons", json=counter_registration_body(), headers=member_headers),
        403,
        "role_required",
    )

    response = grant(client, admin_headers, member.id, "registrar")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["role"] == "registrar"
    assert body["person_id"] == str(member.id)
    assert body["granted_by"] == str(admin.id)
    registered = client.post(
        "/v1/persons", json=counter_registration_body(), headers=member_headers
    )
    assert registered.status_code == 201, registered.text


def test_admin_withdraws_a_role_that_stops_working_at_once(client, staff) -> None:
    _, admin_headers = staff("admin")
    member, member_headers = staff()
    granted = grant(client, admin_headers, member.id, "registrar").json()

    response = client.delete(f"/v1/staff-roles/{granted['id']}", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["withdrawn_at"] is not None
    expect_problem(
        client.post("/v1/persons", json=counter_registration_body(), headers=member_headers),
        403,
        "role_required",
    )
    current = client.get(
        "/v1/staff-roles", params={"person_id": str(member.id)}, headers=admin_headers
    ).json()
    assert granted["id"] not in {g["id"] for g in current["items"]}


def test_grant_and_withdrawal_are_audited_for_the_member(client, staff) -> None:
    admin, admin_headers = staff("admin")
    member, member_headers = staff()
    granted = grant(client, admin_headers, member.id, "auditor").json()
    client.delete(f"/v1/staff-roles/{granted['id']}", headers=admin_headers)

    events = client.get("/v1/me/audit-events", headers=member_headers).json()["items"]
    actions = {e["action"]: e for e in events if e["action"].startswith("identity:staff_role:")}

    assert set(actions) == {"identity:staff_role:grant", "identity:staff_role:withdraw"}
    assert all(e["actor_id"] == str(admin.id) for e in actions.values())
    assert actions["identity:staff_role:grant"]["data"] == {"role": "auditor"}


def test_list_of_staff_roles_shows_current_grants(client, staff) -> None:
    member, admin_headers = staff("admin", "auditor")

    response = client.get(
        "/v1/staff-roles", params={"person_id": str(member.id)}, headers=admin_headers
    )

    assert response.status_code == 200
    mine = {g["role"] for g in response.json()["items"] if g["person_id"] == str(member.id)}
    assert mine == {"admin", "auditor"}


def test_granting_a_held_role_again_is_409(client, staff) -> None:
    _, admin_headers = staff("admin")
    member, _ = staff("card_officer")

    expect_problem(
        grant(client, admin_headers, member.id, "card_officer"), 409, "role_already_held"
    )


@pytest.mark.parametrize("role", ["superuser", "Admin", "", "registrar "])
def test_unknown_role_is_422(client, staff, role) -> None:
    _, admin_headers = staff("admin")
    member, _ = staff()

    expect_problem(grant(client, admin_headers, member.id, role), 422, "role_unknown")


def test_only_admins_manage_staff_roles(client, staff, citizen) -> None:
    member, _ = staff()
    _, registrar = staff("registrar")
    _, auditor = staff("auditor")
    _, citizen_headers, _ = citizen()

    for headers in (registrar, auditor, citizen_headers):
        expect_problem(grant(client, headers, member.id, "admin"), 403, "role_required")
        expect_problem(client.get("/v1/staff-roles", headers=headers), 403, "role_required")


def test_level_1_admin_cannot_manage_staff_roles(client, staff) -> None:
    member, _ = staff()
    _, headers = staff("admin", level=1)

    expect_problem(grant(client, headers, member.id, "auditor"), 403, "assurance_level_too_low")


def test_grant_to_an_unknown_or_inactive_person_is_refused(client, staff, citizen) -> None:
    _, admin_headers = staff("admin")
    _, registrar = staff("registrar")
    suspended, _, _ = citizen()
    client.post(f"/v1/persons/{suspended.id}/suspend", json={"reason": "x"}, headers=registrar)

    expect_problem(grant(client, admin_headers, uuid.uuid4(), "auditor"), 404, "person_not_found")
    expect_problem(grant(client, admin_headers, suspended.id, "auditor"), 409, "person_not_active")


def test_withdrawing_an_unknown_or_withdrawn_grant_is_404(client, staff) -> None:
    _, admin_headers = staff("admin")
    member, _ = staff()
    granted = grant(client, admin_headers, member.id, "auditor").json()
    assert client.delete(f"/v1/staff-roles/{granted['id']}", headers=admin_headers).is_success

    for grant_id in (granted["id"], str(uuid.uuid4())):
        expect_problem(
            client.delete(f"/v1/staff-roles/{grant_id}", headers=admin_headers),
            404,
            "staff_role_not_found",
        )


def test_retried_grant_with_the_same_idempotency_key_replays(client, staff) -> None:
    _, admin_headers = staff("admin")
    member, _ = staff()
    headers = {**admin_headers, "Idempotency-Key": uuid.uuid4().hex}

    first = grant(client, headers, member.id, "ca_officer")
    retry = grant(client, headers, member.id, "ca_officer")

    assert first.status_code == retry.status_code == 201, retry.text
    assert retry.json() == first.json()


# -- the last administrator (domain level, own database) ----------------------------------


def _admin(session, sealer):  # type: ignore[no-untyped-def]
    member = person(session, sealer, level=AssuranceLevel.SUBSTANTIAL)
    grant_row = staff_roles.grant_role(
        session, member, StaffRoleName.ADMIN, actor=Actor.system(), granted_by=None
    )
    return member, grant_row


def test_last_admin_cannot_be_withdrawn(fresh_db, sealer) -> None:
    database = fresh_db()
    with database.session() as session:
        _, only = _admin(session, sealer)

    with database.session() as session, pytest.raises(InvalidState) as refused:
        staff_roles.withdraw_role(session, only.id, actor=Actor.system(), withdrawn_by=None)

    assert refused.value.code == "last_admin"
    with database.session() as session:
        assert staff_roles.admin_exists(session)


def test_one_of_two_admins_can_be_withdrawn_but_not_the_second(fresh_db, sealer) -> None:
    database = fresh_db()
    with database.session() as session:
        (_, first), (_, second) = _admin(session, sealer), _admin(session, sealer)

    with database.session() as session:
        staff_roles.withdraw_role(session, first.id, actor=Actor.system(), withdrawn_by=None)
    with database.session() as session, pytest.raises(InvalidState) as refused:
        staff_roles.withdraw_role(session, second.id, actor=Actor.system(), withdrawn_by=None)

    assert refused.value.code == "last_admin"


def test_sole_holder_of_another_role_can_be_withdrawn(fresh_db, sealer) -> None:
    database = fresh_db()
    with database.session() as session:
        _admin(session, sealer)
        member = person(session, sealer, level=AssuranceLevel.SUBSTANTIAL)
        auditor = staff_roles.grant_role(
            session, member, StaffRoleName.AUDITOR, actor=Actor.system(), granted_by=None
        )

    with database.session() as session:
        staff_roles.withdraw_role(session, auditor.id, actor=Actor.system(), withdrawn_by=None)
        assert staff_roles.current_roles(session, member.id) == frozenset()


def test_admin_grant_of_a_closed_person_does_not_count_towards_the_last_admin(
    fresh_db, sealer
) -> None:
    database = fresh_db()
    with database.session() as session:
        closed, _ = _admin(session, sealer)
        _, active = _admin(session, sealer)
        change_status(session, closed, StatusChange.CLOSE, actor=Actor.system(), reason="left")

    with database.session() as session, pytest.raises(InvalidState) as refused:
        staff_roles.withdraw_role(session, active.id, actor=Actor.system(), withdrawn_by=None)

    assert refused.value.code == "last_admin"
