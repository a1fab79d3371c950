"""Credentials at the domain level, with the injectable clock: TOTP windows and replay,
enrolment, recovery codes, passwords and sign-in lockout."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp
import pytest
from sqlmodel import select

from onecard.core.audit import Actor, AuditEvent
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from onecard.identity import credentials
from onecard.identity.actions import IdentityAction
from onecard.identity.credentials import TOTP_STEP
from onecard.identity.signin import check_password, check_second_factor
from tests.factories import identity_number, person, phone

SYSTEM = Actor.system()
# 10 s into a 30-second step, so "the current step" is never ambiguous.
T0 = datetime.fromtimestamp((1_900_000_000 // TOTP_STEP) * TOTP_STEP + 10, UTC)
STEP0 = int(T0.timestamp()) // TOTP_STEP
PASSWORD = "correct horse battery"


@pytest.fixture
def frozen():  # type: ignore[no-untyped-def]
    with use_clock(FrozenClock(T0)) as clock:
        yield clock


def enrolled(db, sealer, frozen):  # type: ignore[no-untyped-def]
    """A person with a confirmed authenticator (confirmed with the code of STEP0)."""
    with db.session() as session:
        member = person(session, sealer)
        enrolment = credentials.begin_totp_enrolment(
            session, sealer, member, actor=SYSTEM, label="test"
        )
        totp = pyotp.TOTP(enrolment.secret)
        credentials.confirm_totp(session, sealer, member, totp.generate_otp(STEP0), actor=SYSTEM)
    return member, totp


def verify(db, sealer, member, code: str) -> bool:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return credentials.verify_totp(session, sealer, member.id, code)


# -- TOTP ---------------------------------------------------------------------------------


def test_codes_of_the_neighbouring_steps_are_accepted_for_clock_drift(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)
    frozen.advance(3 * TOTP_STEP)  # now in STEP0 + 3

    assert verify(db, sealer, member, totp.generate_otp(STEP0 + 2))  # one step behind
    assert verify(db, sealer, member, totp.generate_otp(STEP0 + 3))  # the current step
    assert verify(db, sealer, member, totp.generate_otp(STEP0 + 4))  # one step ahead


@pytest.mark.parametrize("offset", [-2, 2, 10])
def test_code_two_or_more_steps_away_is_refused(db, sealer, frozen, offset) -> None:
    member, totp = enrolled(db, sealer, frozen)
    frozen.advance(5 * TOTP_STEP)

    assert not verify(db, sealer, member, totp.generate_otp(STEP0 + 5 + offset))


def test_code_is_refused_when_replayed_within_its_window(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)
    frozen.advance(TOTP_STEP)
    code = totp.generate_otp(STEP0 + 1)

    assert verify(db, sealer, member, code)
    assert not verify(db, sealer, member, code)
    frozen.advance(TOTP_STEP - 1)  # still inside the code's window (one step behind)
    assert not verify(db, sealer, member, code)


def test_code_older_than_the_last_accepted_one_is_refused(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)
    frozen.advance(2 * TOTP_STEP)  # STEP0 + 2: window STEP0+1 .. STEP0+3

    assert verify(db, sealer, member, totp.generate_otp(STEP0 + 3))
    assert not verify(db, sealer, member, totp.generate_otp(STEP0 + 2))
    assert not verify(db, sealer, member, totp.generate_otp(STEP0 + 1))


def test_code_used_for_confirmation_cannot_be_used_again(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)

    assert not verify(db, sealer, member, totp.generate_otp(STEP0))


def test_code_with_spaces_is_accepted(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)
    code = totp.generate_otp(STEP0 + 1)

    assert verify(db, sealer, member, f" {code[:3]} {code[3:]} ")


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12345a", "12 34 5"])
def test_malformed_code_is_refused(db, sealer, frozen, code) -> None:
    member, _ = enrolled(db, sealer, frozen)

    assert not verify(db, sealer, member, code)


@pytest.mark.parametrize(
    "code",
    ["\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11\uff12\uff13\uff14\uff15\uff16"],
    ids=["arabic-indic", "fullwidth"],
)
def test_code_of_non_ascii_digits_is_refused(db, sealer, frozen, code) -> None:
    member, _ = enrolled(db, sealer, frozen)

    assert not verify(db, sealer, member, code)


def test_unconfirmed_authenticator_neither_counts_nor_verifies(db, sealer, frozen) -> None:
    with db.session() as session:
        member = person(session, sealer)
        enrolment = credentials.begin_totp_enrolment(
            session, sealer, member, actor=SYSTEM, label="test"
        )
    code = pyotp.TOTP(enrolment.secret).generate_otp(STEP0)

    with db.session() as session:
        assert not credentials.has_totp(session, member.id)
    assert not verify(db, sealer, member, code)


def test_restarted_enrolment_replaces_the_unconfirmed_secret(db, sealer, frozen) -> None:
    with db.session() as session:
        member = person(session, sealer)
        first = credentials.begin_totp_enrolment(session, sealer, member, actor=SYSTEM, label="x")
        second = credentials.begin_totp_enrolment(session, sealer, member, actor=SYSTEM, label="x")
    assert first.secret != second.secret

    with db.session() as session, pytest.raises(InvalidInput) as refused:
        credentials.confirm_totp(
            session, sealer, member, pyotp.TOTP(first.secret).generate_otp(STEP0), actor=SYSTEM
        )
    assert refused.value.code == "totp_invalid"
    with db.session() as session:
        code = pyotp.TOTP(second.secret).generate_otp(STEP0)
        credentials.confirm_totp(session, sealer, member, code, actor=SYSTEM)
        assert credentials.has_totp(session, member.id)


def test_enrolment_secret_is_stored_sealed(db, sealer, frozen) -> None:
    from onecard.identity.models import TotpCredential

    with db.session() as session:
        member = person(session, sealer)
        enrolment = credentials.begin_totp_enrolment(
            session, sealer, member, actor=SYSTEM, label="x"
        )
        stored = session.get(TotpCredential, member.id)
        assert enrolment.secret.encode() not in stored.secret_sealed
        assert enrolment.secret not in repr(enrolment)
        assert enrolment.provisioning_uri.startswith("otpauth://totp/")


def test_enrolment_and_confirmation_are_refused_once_confirmed(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)

    with db.session() as session, pytest.raises(Conflict) as again:
        credentials.begin_totp_enrolment(session, sealer, member, actor=SYSTEM, label="x")
    assert again.value.code == "totp_already_enrolled"
    code = totp.generate_otp(STEP0 + 1)
    with db.session() as session, pytest.raises(Conflict) as reconfirm:
        credentials.confirm_totp(session, sealer, member, code, actor=SYSTEM)
    assert reconfirm.value.code == "totp_already_enrolled"


def test_confirmation_without_an_enrolment_is_not_found(db, sealer) -> None:
    with db.session() as session:
        member = person(session, sealer)
        with pytest.raises(NotFound) as refused:
            credentials.confirm_totp(session, sealer, member, "123456", actor=SYSTEM)
    assert refused.value.code == "totp_not_enrolled"


def test_removed_authenticator_no_longer_verifies(db, sealer, frozen) -> None:
    member, totp = enrolled(db, sealer, frozen)

    with db.session() as session:
        credentials.remove_totp(session, member, actor=SYSTEM)
        assert not credentials.has_totp(session, member.id)
    assert not verify(db, sealer, member, totp.generate_otp(STEP0 + 1))
    with db.session() as session, pytest.raises(NotFound):
        credentials.remove_totp(session, member, actor=SYSTEM)


# -- recovery codes -----------------------------------------------------------------------


def use(db, sealer, member, code: str) -> bool:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return credentials.use_recovery_code(session, sealer, member.id, code, actor=SYSTEM)


def generate(db, sealer, member) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return credentials.generate_recovery_codes(session, sealer, member, actor=SYSTEM)


def test_recovery_codes_need_a_confirmed_authenticator(db, sealer, frozen) -> None:
    with db.session() as session:
        member = person(session, sealer)
        credentials.begin_totp_enrolment(session, sealer, member, actor=SYSTEM, label="x")
        with pytest.raises(InvalidState) as refused:
            credentials.generate_recovery_codes(session, sealer, member, actor=SYSTEM)
    assert refused.value.code == "totp_not_enrolled"


def test_ten_distinct_readable_recovery_codes(db, sealer, frozen) -> None:
    member, _ = enrolled(db, sealer, frozen)

    codes = generate(db, sealer, member)

    assert len(set(codes)) == 10
    for code in codes:
        head, tail = code.split("-")
        assert len(head) == len(tail) == 5
        assert not set(head + tail) & set("01ilo")


def test_each_recovery_code_works_once_in_any_spelling(db, sealer, frozen) -> None:
    member, _ = enrolled(db, sealer, frozen)
    codes = generate(db, sealer, member)

    assert use(db, sealer, member, codes[0])
    assert not use(db, sealer, member, codes[0])
    assert use(db, sealer, member, f"  {codes[1].upper().replace('-', ' ')} ")
    assert not use(db, sealer, member, codes[1])


def test_using_a_recovery_code_records_how_many_remain(db, sealer, frozen) -> None:
    member, _ = enrolled(db, sealer, frozen)
    codes = generate(db, sealer, member)
    use(db, sealer, member, codes[3])

    with db.session() as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.person_id == member.id,
                AuditEvent.action == IdentityAction.RECOVERY_CODE_USE,
            )
        ).one()
    assert event.data_dict() == {"remaining": 9}
    assert codes[3] not in event.data


def test_regenerating_recovery_codes_invalidates_the_old_ones(db, sealer, frozen) -> None:
    member, _ = enrolled(db, sealer, frozen)
    old = generate(db, sealer, member)

    new = generate(db, sealer, member)

    assert not any(use(db, sealer, member, code) for code in old)
    assert use(db, sealer, member, new[0])


def test_recovery_code_of_another_person_is_refused(db, sealer, frozen) -> None:
    owner, _ = enrolled(db, sealer, frozen)
    other, _ = enrolled(db, sealer, frozen)
    codes = generate(db, sealer, owner)

    assert not use(db, sealer, other, codes[0])
    assert use(db, sealer, owner, codes[0])


# -- passwords ----------------------------------------------------------------------------


def test_password_policy_refuses_the_persons_phone_and_email(db, sealer, runtime) -> None:
    mobile = phone()
    with db.session() as session:
        member = person(session, sealer)
        member.phone, member.email = mobile, "lin.yi@example.cn"
        session.add(member)
        for password in (f"my {mobile} number", "Lin.Yi@Example.cn!"):
            with pytest.raises(InvalidInput) as refused:
                credentials.set_password(
                    session, runtime.sealer, runtime.hasher, member, password, actor=SYSTEM
                )
            assert refused.value.code == "password_contains_personal_data"


def test_password_is_stored_as_an_argon2id_hash(db, sealer, runtime) -> None:
    with db.session() as session:
        member = person(session, sealer)
        credentials.set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=SYSTEM
        )
        stored = credentials.password_hash_of(session, member.id)

    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert runtime.hasher.verify(stored, PASSWORD)
    assert not runtime.hasher.verify(stored, PASSWORD + "!")


# -- sign-in and throttling ---------------------------------------------------------------


def citizen_with_password(db, sealer, runtime):  # type: ignore[no-untyped-def]
    number = identity_number()
    with db.session() as session:
        member = person(session, sealer, number=number)
        credentials.set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=SYSTEM
        )
    return member, number


def attempt(db, sealer, runtime, login: str, password: str, address: str | None = None):  # type: ignore[no-untyped-def]
    return check_password(
        db,
        sealer,
        runtime.hasher,
        runtime.settings,
        login=login,
        password=password,
        address=address,
    )


def fail(db, sealer, runtime, number: str, times: int, address: str | None = None) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        result = attempt(db, sealer, runtime, number, "wrong password!", address)
        assert result.failure == "invalid_credentials"


def test_lockout_after_the_maximum_failures_expires_by_itself(db, sealer, runtime, frozen) -> None:
    member, number = citizen_with_password(db, sealer, runtime)
    lockout = runtime.settings.login_lockout_seconds
    fail(db, sealer, runtime, number, runtime.settings.login_max_failures)

    locked = attempt(db, sealer, runtime, number, PASSWORD)
    assert locked.failure == "throttled"
    assert locked.person_id is None
    assert locked.retry_after == lockout + 1

    frozen.advance(lockout - 1)
    assert attempt(db, sealer, runtime, number, PASSWORD).failure == "throttled"
    frozen.advance(1)
    result = attempt(db, sealer, runtime, number, PASSWORD)
    assert result.person_id == member.id


def test_failures_are_audited(db, sealer, runtime, frozen) -> None:
    member, number = citizen_with_password(db, sealer, runtime)
    fail(db, sealer, runtime, number, 2)

    with db.session() as session:
        actions = [
            e.action
            for e in session.exec(
                select(AuditEvent).where(AuditEvent.person_id == member.id).order_by(AuditEvent.seq)
            )
        ]
    assert actions[-2:] == [IdentityAction.SIGN_IN_FAILURE] * 2


def test_an_unknown_login_is_locked_out_like_a_known_one(db, sealer, runtime, frozen) -> None:
    _, number = citizen_with_password(db, sealer, runtime)
    unknown = identity_number()
    fail(db, sealer, runtime, number, runtime.settings.login_max_failures)
    fail(db, sealer, runtime, unknown, runtime.settings.login_max_failures)

    known_locked = attempt(db, sealer, runtime, number, "wrong password!")
    unknown_locked = attempt(db, sealer, runtime, unknown, "wrong password!")

    assert known_locked == unknown_locked
    assert known_locked.failure == "throttled"


def test_one_address_is_throttled_across_many_logins(db, sealer, runtime, frozen) -> None:
    limit = runtime.settings.login_address_max_failures
    address = f"198.51.100.{len(str(frozen))}"
    for _ in range(limit):
        result = attempt(db, sealer, runtime, identity_number(), "guess", address)
        assert result.failure == "invalid_credentials"

    _, number = citizen_with_password(db, sealer, runtime)
    blocked = attempt(db, sealer, runtime, number, PASSWORD, address)
    assert blocked.failure == "throttled"
    assert attempt(db, sealer, runtime, number, PASSWORD, "203.0.113.9").person_id is not None


def test_after_a_lock_expires_one_more_failure_does_not_lock_again(
    db, sealer, runtime, frozen
) -> None:
    _, number = citizen_with_password(db, sealer, runtime)
    fail(db, sealer, runtime, number, runtime.settings.login_max_failures)
    frozen.advance(runtime.settings.login_lockout_seconds)

    fail(db, sealer, runtime, number, 1)

    assert attempt(db, sealer, runtime, number, PASSWORD).person_id is not None


def test_success_resets_the_failure_count(db, sealer, runtime, frozen) -> None:
    _, number = citizen_with_password(db, sealer, runtime)
    almost = runtime.settings.login_max_failures - 1

    fail(db, sealer, runtime, number, almost)
    assert attempt(db, sealer, runtime, number, PASSWORD).person_id is not None
    fail(db, sealer, runtime, number, almost)

    assert attempt(db, sealer, runtime, number, PASSWORD).person_id is not None


def test_wrong_totp_codes_are_throttled_and_a_replayed_code_refused(
    db, sealer, runtime, frozen
) -> None:
    member, _ = citizen_with_password(db, sealer, runtime)
    with db.session() as session:
        enrolment = credentials.begin_totp_enrolment(
            session, sealer, member, actor=SYSTEM, label="x"
        )
        totp = pyotp.TOTP(enrolment.secret)
        credentials.confirm_totp(session, sealer, member, totp.generate_otp(STEP0), actor=SYSTEM)
    valid = totp.generate_otp(STEP0 + 1)
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" != valid)

    def second(code: str):  # type: ignore[no-untyped-def]
        with db.session() as session:
            return check_second_factor(
                session, sealer, runtime.settings, member.id, totp_code=code, recovery_code=None
            )

    assert second(valid).person_id == member.id
    assert second(valid).failure == "totp_invalid"  # the same code again: a replay
    for _ in range(runtime.settings.login_max_failures - 1):
        assert second(wrong).failure == "totp_invalid"
    assert second(totp.generate_otp(STEP0 + 2)).failure == "throttled"


def test_unknown_login_is_answered_like_a_wrong_password(db, sealer, runtime) -> None:
    _, number = citizen_with_password(db, sealer, runtime)

    wrong = attempt(db, sealer, runtime, number, "wrong password!")
    unknown = attempt(db, sealer, runtime, identity_number(), "wrong password!")
    garbage = attempt(db, sealer, runtime, "not a login at all", "wrong password!")

    assert wrong == unknown == garbage
    assert wrong.failure == "invalid_credentials"
    assert wrong.person_id is None
