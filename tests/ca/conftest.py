"""Fixtures of the CA tests: subjects, issuance in one call, and a CA of one's own for tests
that change the hierarchy."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlmodel import func, select

from onecard.ca import issuance
from onecard.ca.csr import check_csr
from onecard.ca.hierarchy import ensure_hierarchy
from onecard.ca.models import Certificate
from onecard.ca.profiles import get_profile
from onecard.core.audit import Actor, AuditEvent
from onecard.core.jobs import JobContext, run_due
from onecard.identity.enterprises import NewEnterprise, register_enterprise
from onecard.identity.models import AssuranceLevel
from tests import factories
from tests.ca import csr_factory


@pytest.fixture
def new_person(runtime) -> Callable[..., uuid.UUID]:  # type: ignore[no-untyped-def]
    def make(level: int = 2) -> uuid.UUID:
        with runtime.database.session() as session:
            return factories.person(session, runtime.sealer, level=AssuranceLevel(level)).id

    return make


@pytest.fixture
def new_enterprise(runtime, new_person) -> Callable[..., tuple[uuid.UUID, uuid.UUID]]:  # type: ignore[no-untyped-def]
    """-> (enterprise id, legal representative id)."""

    def make(level: int = 2, name: str = "示例科技有限公司") -> tuple[uuid.UUID, uuid.UUID]:
        representative = new_person(level)
        with runtime.database.session() as session:
            enterprise = register_enterprise(
                session,
                NewEnterprise(name, factories.credit_code(), representative),
                actor=Actor.system(),
            )
            return enterprise.id, representative

    return make


@pytest.fixture
def issue(runtime) -> Callable[..., Certificate]:  # type: ignore[no-untyped-def]
    """``issue(person_id=…, profile=…, csr=…)``: one certificate through the domain flow."""

    def make(
        *,
        person_id: uuid.UUID | None = None,
        enterprise_id: uuid.UUID | None = None,
        dns_names: list[str] | None = None,
        profile: str = "citizen-auth",
        csr: bytes | None = None,
        database=None,  # type: ignore[no-untyped-def]
    ) -> Certificate:
        database = database or runtime.database
        with database.session() as session:
            if person_id is not None:
                subject = issuance.person_subject(session, person_id)
            elif enterprise_id is not None:
                subject = issuance.enterprise_subject(session, enterprise_id)
            else:
                subject = issuance.service_subject(
                    session, runtime.ca.organization, dns_names or []
                )
            return issuance.issue(
                session,
                runtime.ca,
                profile=get_profile(profile),
                subject=subject,
                csr=check_csr(csr or csr_factory.csr()),
                actor=Actor.system(),
            )

    return make


@pytest.fixture
def run_jobs(runtime) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    return lambda: run_due(JobContext.from_runtime(runtime))


@pytest.fixture
def own_ca(fresh_db, settings):  # type: ignore[no-untyped-def]
    """A runtime with a database and CA hierarchy of its own."""
    from onecard.api.runtime import build_runtime

    database = fresh_db()
    runtime = build_runtime(settings, database=database)
    with database.session() as session:
        runtime.keyring.ensure_keys(session, Actor.system())
        ensure_hierarchy(session, runtime.ca, Actor.system())
    yield runtime
    runtime.close()  # give the connections back: PostgreSQL allows only so many


def counts(database) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(certificates, audit events): what a refused request must leave unchanged."""
    with database.session() as session:
        return (
            session.exec(select(func.count()).select_from(Certificate)).one(),
            session.exec(select(func.count()).select_from(AuditEvent)).one(),
        )
