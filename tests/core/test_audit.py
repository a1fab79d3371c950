"""The audit chain: appended in the change's transaction, gap-free under concurrency, and any
tampering caught by verify_chain (content, links, removal, and a wholesale rewrite)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from onecard.core.audit import Actor, AuditEvent, checkpoint, record, verify_chain
from onecard.core.keyring import KEY_USES, Keyring
from onecard.core.sealing import Sealer


@pytest.fixture
def chain(fresh_db, sealer: Sealer):
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(days=1))
    with database.session() as session:
        keyring.ensure_keys(session, Actor.system())
    for i in range(5):
        with database.session() as session:
            record(session, "test:thing:create", actor=Actor.cli("tester"), data={"n": i})
    return database, keyring


def _initial_events() -> int:
    """The chain's five records plus the creation of each key use's next and active keys
    (packages register their key uses when imported, so the count depends on what is)."""
    return 5 + 2 * len(KEY_USES)


def _drop_guards(database) -> None:
    """What an attacker with database access would do first."""
    with database.engine.begin() as connection:
        if database.backend == "postgresql":
            connection.execute(sa.text("DROP TRIGGER audit_event_append_only ON audit_event"))
        else:
            connection.execute(sa.text("DROP TRIGGER audit_event_no_update"))
            connection.execute(sa.text("DROP TRIGGER audit_event_no_delete"))


def test_fresh_chain_verifies(chain) -> None:
    database, keyring = chain
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert report.ok, report.broken
    assert report.events == _initial_events()


def test_database_refuses_updates_and_deletes_of_events(chain) -> None:
    database, _ = chain
    with pytest.raises(sa.exc.DatabaseError), database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_event SET action = 'x' WHERE seq = 1"))
    with pytest.raises(sa.exc.DatabaseError), database.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_event WHERE seq = 1"))


def test_tampered_row_is_caught_and_named(chain) -> None:
    database, keyring = chain
    _drop_guards(database)
    with database.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE audit_event SET data = :data WHERE seq = 9"), {"data": '{"n":99}'}
        )
    with database.session() as session:
        report = verify_chain(session, keyring)
        altered = session.exec(select(AuditEvent).where(AuditEvent.seq == 9)).one()
    assert not report.ok
    assert report.broken.seq == 9
    assert report.broken.event_id == str(altered.id)
    assert "altered" in report.broken.reason


def test_removed_event_in_the_middle_is_caught(chain) -> None:
    database, keyring = chain
    _drop_guards(database)
    with database.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_event WHERE seq = 4"))
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert report.broken.seq == 4
    assert "missing" in report.broken.reason


def test_removed_events_at_the_end_are_caught(chain) -> None:
    database, keyring = chain
    _drop_guards(database)
    with database.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_event WHERE seq >= 10"))
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert not report.ok
    assert "removed" in report.broken.reason


def test_rewritten_chain_with_recomputed_hashes_fails_the_signed_checkpoint(chain) -> None:
    database, keyring = chain
    with database.session() as session:
        mark = checkpoint(session, keyring)
    assert mark is not None
    _drop_guards(database)
    # Rewrite event 3 and recompute every hash after it, as a careful forger would.
    with database.session() as session:
        events = list(session.exec(select(AuditEvent).order_by(AuditEvent.seq)))
        prev = events[1].hash
        for event in events[2:]:
            if event.seq == 3:
                event.data = '{"n":"forged"}'
            event.prev_hash = prev
            event.hash = prev = event.computed_hash()
            session.add(event)
        session.execute(sa.text("UPDATE audit_head SET hash = :h"), {"h": prev})
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert not report.ok
    assert report.broken.seq == mark.seq
    assert "checkpoint" in report.broken.reason


def test_checkpoint_is_signed_and_verifies(chain) -> None:
    database, keyring = chain
    with database.session() as session:
        assert checkpoint(session, keyring) is not None
    with database.session() as session:
        assert checkpoint(session, keyring) is not None  # the checkpoint event itself is new
        report = verify_chain(session, keyring)
    assert report.ok
    assert report.checkpoints == 2


def test_event_rolls_back_with_its_change(chain) -> None:
    database, keyring = chain

    def failing_change() -> None:
        with database.session() as session:
            record(session, "test:thing:create", actor=Actor.system())
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with database.session() as session:
        count = session.exec(select(sa.func.count()).select_from(AuditEvent)).one()
        assert count == _initial_events()
        assert verify_chain(session, keyring).ok


def test_concurrent_appends_give_a_gap_free_chain(chain) -> None:
    database, keyring = chain
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(10):
                with database.session() as session:
                    record(
                        session,
                        "test:race:append",
                        actor=Actor.system(),
                        data={"w": worker, "i": i},
                    )
        except BaseException as exc:  # surface the failure in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with database.session() as session:
        report = verify_chain(session, keyring)
    assert report.ok, report.broken
    assert report.events == _initial_events() + 60
