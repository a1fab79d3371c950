"""The scheduled maintenance job: CRLs rebuilt before they go stale, OCSP answers re-signed
past half their life, and delegated OCSP responders renewed before they expire."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from sqlmodel import select

from onecard.ca.background import MAINTENANCE_JOB, enqueue_maintenance, handle_maintenance
from onecard.ca.models import Authority, Crl, OcspResponse
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jobs import Job, JobContext
from onecard.identity.models import AssuranceLevel
from tests import factories


def _state(runtime, certificate_id):  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        citizen = session.exec(select(Authority).where(Authority.name == "citizen-1")).one()
        crl = session.get(Crl, citizen.id)
        answer = session.get(OcspResponse, certificate_id)
        responder = x509.load_der_x509_certificate(citizen.ocsp_certificate)
        return crl.number, answer.produced_at, responder.serial_number


def test_maintenance_refreshes_crls_answers_and_responders(own_ca, issue) -> None:
    with own_ca.database.session() as session:
        person_id = factories.person(session, own_ca.sealer, level=AssuranceLevel.LOW).id
    certificate = issue(person_id=person_id, database=own_ca.database)
    context = JobContext.from_runtime(own_ca)
    crl_number, produced, responder = _state(own_ca, certificate.id)

    handle_maintenance(context, {})  # nothing is due yet
    assert _state(own_ca, certificate.id) == (crl_number, produced, responder)

    with use_clock(FrozenClock()) as frozen:
        frozen.advance(timedelta(days=61))  # CRL a day old, answers past half, responder < 30 d
        handle_maintenance(context, {})
        number, refreshed, renewed = _state(own_ca, certificate.id)
    assert number > crl_number
    assert refreshed > produced
    assert renewed != responder


def test_housekeeping_queues_one_maintenance_job_at_a_time(own_ca) -> None:
    with own_ca.database.session() as session:
        enqueue_maintenance(session)
    with own_ca.database.session() as session:
        enqueue_maintenance(session)
    with own_ca.database.session() as session:
        waiting = session.exec(select(Job).where(Job.kind == MAINTENANCE_JOB)).all()
    assert len(waiting) == 1
