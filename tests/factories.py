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
        NewPerson(name=name, identity_number=number or identity_number(),
                  phone=phone() if with_phone else None),
        actor=Actor.system(),
        level=level,
        registered_by=RegisteredBy.SELF if level == AssuranceLevel.LOW else RegisteredBy.REGISTRAR,
    )
