"""The audit trail over HTTP: auditors read events with their chain links and verify the
chain; nobody else may; citizens see their own events without chain positions."""

from __future__ import annotations

from tests.factories import expect_problem


def test_auditor_pages_through_events_with_chain_links(client, staff) -> None:
    _, headers = staff("auditor")
    first = client.get("/v1/audit/events", params={"limit": 3}, headers=headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 3
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert page["items"][0]["prev_hash"] == page["items"][1]["hash"]
    second = client.get(
        "/v1/audit/events", params={"limit": 3, "cursor": page["next_cursor"]}, headers=headers
    ).json()
    assert second["items"][0]["seq"] < seqs[-1]


def test_auditor_filters_by_person_and_action(client, staff) -> None:
    member, headers = staff("auditor")
    response = client.get(
        "/v1/audit/events",
        params={"person_id": str(member.id), "action": "identity:staff_role:grant"},
        headers=headers,
    )
    (event,) = response.json()["items"]
    assert event["data"] == {"role": "auditor"}


def test_auditor_verifies_the_chain(client, staff) -> None:
    _, headers = staff("auditor")
    report = client.post("/v1/audit/verify", headers=headers).json()
    assert report["ok"] is True
    assert report["events"] > 0
    assert report["broken_seq"] is None


def test_only_auditors_read_the_trail(client, staff, citizen) -> None:
    _, admin = staff("admin")
    _, citizen_headers, _ = citizen()
    for headers in (admin, citizen_headers):
        expect_problem(client.get("/v1/audit/events", headers=headers), 403, "role_required")
        expect_problem(client.post("/v1/audit/verify", headers=headers), 403, "role_required")


def test_unknown_event_cursor_gives_an_empty_page_and_garbage_a_422(client, staff) -> None:
    _, headers = staff("auditor")
    expect_problem(
        client.get("/v1/audit/events", params={"cursor": "12"}, headers=headers), 422, "bad_cursor"
    )
    response = client.get(
        "/v1/audit/events",
        params={"cursor": "00000000-0000-0000-0000-000000000000"},
        headers=headers,
    )
    assert response.json() == {"items": [], "next_cursor": None}
