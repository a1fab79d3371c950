"""Enterprise roles at the domain level: when a grant is in force (moved with the injectable
clock), who may manage roles, and what a change of legal representative does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from onecard.core.audit import Actor, AuditEvent
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.errors import Conflict, Forbidden, InvalidInput, InvalidState
from onecard.identity import enterprises
from onecard.identity.actions import IdentityAction
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import SubjectStatus
from onecard.identity.persons import change_status
from tests.factories import credit_code, person

SYSTEM = Actor.system()
T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def make_enterprise(session, sealer, name: str = "厦门示例贸易有限公司"):  # type: ignore[no-untyped-def]
    representative = person(session, sealer)
    enterprise = enterprises.register_enterprise(
        session,
        enterprises.NewEnterprise(name, credit_code(), representative.id),
        actor=SYSTEM,
    )
    return enterprise, representative


def grant(session, enterprise, member, role: str = "tax.filing", **period):  # type: ignore[no-untyped-def]
    return enterprises.grant_role(
        session, enterprise, member.id, role, actor=SYSTEM, granted_by=None, **period
    )


@pytest.fixture
def frozen():  # type: ignore[no-untyped-def]
    with use_clock(FrozenClock(T0)) as clock:
        yield clock


def test_legal_representative_implicitly_holds_admin(db, sealer) -> None:
    with db.session() as session:
        enterprise, representative = make_enterprise(session, sealer)

        assert enterprises.roles_of(session, enterprise, representative.id) == {"admin"}
        assert enterprises.can_manage(session, enterprise, representative.id)
        assert enterprises.enterprises_of(session, representative.id) == [enterprise]


def test_grant_with_valid_from_in_the_future_is_not_yet_in_force(db, sealer, frozen) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, valid_from=T0 + timedelta(hours=1))

        assert enterprises.roles_of(session, enterprise, member.id) == set()
        assert enterprises.enterprises_of(session, member.id) == []

        frozen.advance(timedelta(hours=1))  # valid_from itself is in force
        assert enterprises.roles_of(session, enterprise, member.id) == {"tax.filing"}
        assert enterprises.enterprises_of(session, member.id) == [enterprise]


def test_grant_whose_valid_until_passed_is_out_of_force(db, sealer, frozen) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, valid_until=T0 + timedelta(hours=1))
        assert enterprises.roles_of(session, enterprise, member.id) == {"tax.filing"}

        frozen.advance(timedelta(hours=1))  # valid_until itself is out of force

        assert enterprises.roles_of(session, enterprise, member.id) == set()
        assert enterprises.current_grants(session, enterprise.id, person_id=member.id) == []
        assert enterprises.enterprises_of(session, member.id) == []


def test_expired_admin_grant_no_longer_manages_roles(db, sealer, frozen) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, "admin", valid_until=T0 + timedelta(days=1))
        enterprises.require_manager(session, enterprise, member.id)

        frozen.advance(timedelta(days=2))

        with pytest.raises(Forbidden) as refused:
            enterprises.require_manager(session, enterprise, member.id)
        assert refused.value.code == "not_enterprise_admin"


def test_agent_does_not_manage_roles(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        agent = person(session, sealer)
        grant(session, enterprise, agent, "agent")

        assert enterprises.roles_of(session, enterprise, agent.id) == {"agent"}
        assert not enterprises.can_manage(session, enterprise, agent.id)


def test_withdrawn_grant_is_out_of_force_and_can_be_granted_again(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        first = grant(session, enterprise, member, "agent")

        enterprises.withdraw_role(session, enterprise, first.id, actor=SYSTEM, withdrawn_by=None)

        assert enterprises.roles_of(session, enterprise, member.id) == set()
        again = grant(session, enterprise, member, "agent")
        assert again.id != first.id
        assert enterprises.roles_of(session, enterprise, member.id) == {"agent"}


def test_held_role_cannot_be_granted_twice(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, "agent")

        with pytest.raises(Conflict) as refused:
            grant(session, enterprise, member, "agent")
        assert refused.value.code == "role_already_held"


def test_conflict_leaves_the_outer_transaction_usable(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, "agent")
        with pytest.raises(Conflict):
            grant(session, enterprise, member, "agent")

        # onecard.core.db.flush_or_conflict promises the transaction is still usable.
        assert enterprises.roles_of(session, enterprise, member.id) == {"agent"}


def test_role_can_be_granted_again_after_an_earlier_grant_expired(db, sealer, frozen) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        grant(session, enterprise, member, "agent", valid_until=T0 + timedelta(days=30))
        frozen.advance(timedelta(days=31))

        grant(session, enterprise, member, "agent")

        assert enterprises.roles_of(session, enterprise, member.id) == {"agent"}


@pytest.mark.parametrize(
    "period",
    [
        {"valid_from": T0 + timedelta(days=2), "valid_until": T0 + timedelta(days=1)},
        {"valid_from": T0 + timedelta(days=1), "valid_until": T0 + timedelta(days=1)},
        {"valid_until": T0},
        {"valid_until": T0 - timedelta(seconds=1)},
    ],
    ids=["ends-before-start", "empty", "ends-now", "already-ended"],
)
def test_impossible_grant_period_is_refused(db, sealer, frozen, period) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)

        with pytest.raises(InvalidInput) as refused:
            grant(session, enterprise, member, **period)
        assert refused.value.code == "role_period_invalid"


@pytest.mark.parametrize("role", ["admin", "agent", "tax.filing", "hr:payroll", "a1-b2_c3"])
def test_role_names_accepted(role) -> None:
    assert enterprises.parse_role(f" {role} ") == role


@pytest.mark.parametrize("role", ["", "Tax", "tax filing", "tax..filing", "tax.", "9tax", "x" * 65])
def test_role_names_refused(role) -> None:
    with pytest.raises(InvalidInput) as refused:
        enterprises.parse_role(role)
    assert refused.value.code == "enterprise_role_invalid"


def test_closed_enterprise_refuses_new_grants(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        enterprises.change_status(
            session, enterprise, StatusChange.CLOSE, actor=SYSTEM, reason="wound up"
        )

        with pytest.raises(InvalidState) as refused:
            grant(session, enterprise, member)
        assert refused.value.code == "enterprise_closed"


def test_grant_to_a_suspended_person_is_refused(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        member = person(session, sealer)
        change_status(session, member, StatusChange.SUSPEND, actor=SYSTEM, reason="checking")

        with pytest.raises(InvalidState) as refused:
            grant(session, enterprise, member)
        assert refused.value.code == "person_not_active"


def test_change_of_legal_representative_keeps_grants_and_audits_both(db, sealer) -> None:
    with db.session() as session:
        enterprise, old = make_enterprise(session, sealer)
        new = person(session, sealer)
        agent = person(session, sealer)
        kept = grant(session, enterprise, agent, "agent")

        enterprises.change_legal_representative(session, enterprise, new.id, actor=SYSTEM)

        assert enterprise.legal_representative_id == new.id
        assert [g.id for g in enterprises.current_grants(session, enterprise.id)] == [kept.id]
        assert enterprises.roles_of(session, enterprise, old.id) == set()
        assert enterprises.roles_of(session, enterprise, new.id) == {"admin"}
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == IdentityAction.ENTERPRISE_LEGAL_REPRESENTATIVE,
                AuditEvent.subject_id == str(enterprise.id),
            )
        ).all()
        assert {e.person_id for e in events} == {old.id, new.id}
        assert all(e.data_dict() == {"from": str(old.id), "to": str(new.id)} for e in events)


def test_same_legal_representative_again_records_nothing(db, sealer) -> None:
    with db.session() as session:
        enterprise, representative = make_enterprise(session, sealer)

        enterprises.change_legal_representative(
            session, enterprise, representative.id, actor=SYSTEM
        )

        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == IdentityAction.ENTERPRISE_LEGAL_REPRESENTATIVE,
                AuditEvent.subject_id == str(enterprise.id),
            )
        ).all()
        assert events == []


def test_inactive_person_cannot_become_legal_representative(db, sealer) -> None:
    with db.session() as session:
        enterprise, _ = make_enterprise(session, sealer)
        closed = person(session, sealer)
        change_status(session, closed, StatusChange.CLOSE, actor=SYSTEM, reason="gone")

        with pytest.raises(InvalidState) as refused:
            enterprises.change_legal_representative(session, enterprise, closed.id, actor=SYSTEM)
        assert refused.value.code == "person_not_active"
        assert enterprise.status == SubjectStatus.ACTIVE


def test_enterprises_of_lists_represented_and_member_enterprises_by_name(db, sealer) -> None:
    with db.session() as session:
        member = person(session, sealer)
        second, _ = make_enterprise(session, sealer, name="乙公司")
        first, _ = make_enterprise(session, sealer, name="甲公司")
        grant(session, second, member, "agent")
        grant(session, first, member, "agent")

        listed = enterprises.enterprises_of(session, member.id)

        assert [e.id for e in listed] == sorted(
            [first.id, second.id], key=lambda i: {first.id: first.name, second.id: second.name}[i]
        )
