"""Test factories: valid national numbers and persons in known states."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlmodel import Session

from onecard.core.audit import Actor
from onecard.core.sealing import Sealer
from onecard.identity.models import AssuranceLevel, Person, RegisteredBy
from onecard.identity.persons import NewPerson, register_person

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_REGIONS = ("110105", "310104", "320102", "440305", "510107", "330106")
_rng = random.Random()


def identity_number(*, birth: date | None = None, male: bool | None = None) -> str:
    """A random valid GB 11643 number (random region, date and sequence)."""
    birth = birth or date(1940, 1, 1) + timedelta(days=_rng.randrange(0, 30000))
    sequence = _rng.randrange(0, 1000)
    if male is not None and (sequence % 2 == 1) != male:
        sequence = (sequence + 1) % 1000
    body = f"{_rng.choice(_REGIONS)}{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return body + _CHECK[total % 11]


def credit_code() -> str:
    """A random valid GB 32100 unified social credit code."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = "91" + _rng.choice(_REGIONS) + "".join(_rng.choice(alphabet) for _ in range(9))
    total = sum(alphabet.index(ch) * pow(3, i, 31) for i, ch in enumerate(body))
    return body + alphabet[(31 - total % 31) % 31]


def phone() -> str:
    return f"13{_rng.randrange(0, 10**9):09d}"


def person(
    session: Session,
    sealer: Sealer,
    *,
    level: AssuranceLevel = AssuranceLevel.LOW,
    number: str | None = None,
    name: str = "张三",
    with_phone: bool = False,
) -> Person:
    return register_person(
        session,
        sealer,
        NewPerson(
            name=name,
            identity_number=number or identity_number(),
            phone=phone() if with_phone else None,
        ),
        actor=Actor.system(),
        level=level,
        registered_by=RegisteredBy.SELF if level == AssuranceLevel.LOW else RegisteredBy.REGISTRAR,
    )


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff_member(runtime, *roles: str, level: int = 2) -> tuple[Person, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A person holding ``roles`` at ``level``, with an admin API token."""
    from datetime import timedelta

    from onecard.identity.models import StaffRoleName
    from onecard.identity.oidc.first_party import mint_person_token
    from onecard.identity.staff import grant_role

    with runtime.database.session() as session:
        member = person(session, runtime.sealer, level=AssuranceLevel(level))
        for role in roles:
            grant_role(session, member, StaffRoleName(role), actor=Actor.system(), granted_by=None)
        token = mint_person_token(
            session,
            runtime.provider,
            member,
            scope="openid account staff",
            ttl=timedelta(hours=1),
            actor=Actor.system(),
        )
    return member, _headers(token)


def signed_in_citizen(
    runtime, *, level: int = 1, password: str = "correct horse battery"
) -> tuple[Person, dict[str, str], str]:  # type: ignore[no-untyped-def]
    """A registered citizen with a password and an access token for their own account."""
    from onecard.identity.credentials import set_password
    from onecard.identity.oidc.first_party import mint_person_token

    with runtime.database.session() as session:
        member = person(session, runtime.sealer, level=AssuranceLevel(level))
        set_password(
            session, runtime.sealer, runtime.hasher, member, password, actor=Actor.system()
        )
        token = mint_person_token(
            session,
            runtime.provider,
            member,
            scope="openid account",
            ttl=timedelta(hours=1),
            actor=Actor.system(),
        )
    return member, _headers(token), password


# -- helpers added for the identity behaviour tests ----------------------------------------


def identity_number_ending_in_x() -> str:
    """A random valid identity number whose check character is ``X``."""
    while True:
        number = identity_number()
        if number.endswith("X"):
            return number


def with_wrong_check_character(number: str) -> str:
    """``number`` with a check character that does not match its first 17 digits."""
    wrong = next(ch for ch in _CHECK if ch != number[-1])
    return number[:-1] + wrong


def fresh_runtime(settings, database):  # type: ignore[no-untyped-def]
    """A runtime on its own (fresh, migrated) database, signing keys created."""
    from onecard.api.runtime import build_runtime

    built = build_runtime(settings, database=database)
    with database.session() as session:
        built.keyring.ensure_keys(session, Actor.system())
    return built


def bearer(token: str) -> dict[str, str]:
    return _headers(token)


def count_rows(database, model) -> int:  # type: ignore[no-untyped-def]
    """How many rows ``model``'s table holds now."""
    from sqlalchemy import func
    from sqlmodel import select

    with database.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def expect_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    """Assert ``response`` is an RFC 9457 problem with ``status`` and ``code``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    return body


def counter_registration_body(**fields) -> dict:  # type: ignore[no-untyped-def]
    """A valid body for ``POST /v1/persons`` (registration at the counter)."""
    body = {
        "name": "赵六",
        "identity_number": identity_number(),
        "document_checked": "resident identity card",
    }
    body.update(fields)
    return body
