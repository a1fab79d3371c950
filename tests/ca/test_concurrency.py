"""Under parallel load (threads with their own sessions, on SQLite and PostgreSQL alike): 200
issuances give 200 distinct serials, and after 50 parallel revocations, with two job runners
racing to rebuild it, the CRL lists exactly the revoked certificates."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from sqlmodel import select

from onecard.ca import revocation
from onecard.ca.crl import current_crl
from onecard.ca.models import Authority, Certificate
from onecard.core.audit import Actor
from onecard.core.jobs import JobContext, run_due
from onecard.identity.models import AssuranceLevel
from tests import factories
from tests.ca import csr_factory

pytestmark = pytest.mark.slow


def test_parallel_issuance_and_revocation_stay_consistent(own_ca, issue, new_person) -> None:
    with own_ca.database.session() as session:
        people = [
            factories.person(session, own_ca.sealer, level=AssuranceLevel.SUBSTANTIAL).id
            for _ in range(20)
        ]
    requests = [csr_factory.csr() for _ in range(200)]

    def one(index: int) -> Certificate:
        return issue(
            person_id=people[index % len(people)], csr=requests[index], database=own_ca.database
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        issued = list(pool.map(one, range(200)))
    serials = {c.serial for c in issued}
    assert len(serials) == 200
    with own_ca.database.session() as session:
        stored = session.exec(select(Certificate.serial)).all()
    assert set(stored) == serials

    doomed = issued[:50]

    def revoke(certificate: Certificate) -> None:
        with own_ca.database.session() as session:
            revocation.revoke(
                session,
                session.get_one(Certificate, certificate.id),
                revocation.RevocationReason.KEY_COMPROMISE,
                actor=Actor.system(),
            )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(revoke, doomed))

    context = JobContext.from_runtime(own_ca)
    barrier = threading.Barrier(2)

    def runner() -> None:
        barrier.wait()
        while run_due(context).total:
            pass

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with own_ca.database.session() as session:
        authority = session.exec(select(Authority).where(Authority.name == "citizen-1")).one()
        crl = x509.load_der_x509_crl(current_crl(session, authority).der)
        revision = authority.revision
        stored_crl = current_crl(session, authority)
        assert stored_crl.revision == revision
    listed = {format(entry.serial_number, "x") for entry in crl}
    assert listed == {c.serial for c in doomed}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == (
        stored_crl.number
    )
