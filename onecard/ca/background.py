"""The CA's background work, run by the job loop (:mod:`onecard.core.jobs`), and its reaction
to identities closing.

- ``ca.revocation`` (queued by every revocation, in its transaction): rebuild the authority's
  CRL unless a newer one already lists the revocation, and sign the revoked certificates' new
  OCSP answers.
- ``ca.maintenance`` (queued by housekeeping every few minutes): renew delegated OCSP
  responders before they expire, rebuild CRLs on schedule, and re-sign OCSP answers past half
  their life (and any that are missing).
- A closed person or enterprise has its certificates revoked (``cessationOfOperation``) in the
  closing transaction. A suspended one keeps them but cannot get new ones (issuance needs an
  active subject), so nothing is renewed while it is suspended.

Every handler is safe to run twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlmodel import Session, select

from onecard.ca.crl import due_for_refresh, publish_crl
from onecard.ca.hierarchy import renew_ocsp_responders
from onecard.ca.models import Authority, Certificate, Crl, OcspResponse
from onecard.ca.ocsp import RESPONSE_REFRESH_AFTER, presign
from onecard.ca.revocation import REVOCATION_JOB, RevocationReason, revoke_subject
from onecard.ca.service import CertificateAuthority
from onecard.core import clock, jobs
from onecard.core.audit import Actor
from onecard.core.jobs import JobContext, PermanentJobError
from onecard.identity.lifecycle import Transition, register_status_listener
from onecard.identity.models import SubjectStatus

log = logging.getLogger(__name__)
MAINTENANCE_JOB = "ca.maintenance"
MAINTENANCE_EVERY_SECONDS = 300.0
_RESIGN_BATCH = 2000


def _authority_of(session: Session, payload: dict[str, Any]) -> Authority:
    try:
        authority = session.get(Authority, uuid.UUID(str(payload["authority_id"])))
    except (KeyError, ValueError):
        authority = None
    if authority is None:
        raise PermanentJobError("no such authority")
    return authority


def handle_revocation(context: JobContext, payload: dict[str, Any]) -> None:
    ca = CertificateAuthority(context.sealer, context.settings)
    with context.database.session() as session:
        authority = _authority_of(session, payload)
        crl = session.get(Crl, authority.id)
        if crl is None or crl.revision < int(payload.get("revision", 0)):
            publish_crl(session, ca, authority, actor=Actor.system())
        ids = [uuid.UUID(i) for i in payload.get("certificates", [])]
        certificates = list(session.exec(select(Certificate).where(Certificate.id.in_(ids))))
        presign(session, ca, authority, certificates)


def handle_maintenance(context: JobContext, _payload: dict[str, Any]) -> None:
    ca = CertificateAuthority(context.sealer, context.settings)
    with context.database.session() as session:
        renew_ocsp_responders(session, ca, Actor.system())
    now = clock.now()
    with context.database.session() as session:
        for authority in session.exec(select(Authority)):
            if authority.private_key is None or authority.not_after <= now:
                continue  # an offline root's CRL is signed with `onecard ca crl --root-key`
            if due_for_refresh(session.get(Crl, authority.id), authority.kind, now):
                publish_crl(session, ca, authority, actor=Actor.system())
    while _resign_stale(context, ca) == _RESIGN_BATCH:
        pass


def _resign_stale(context: JobContext, ca: CertificateAuthority) -> int:
    """Re-sign one batch of answers past half their life, or missing; returns the batch size."""
    now = clock.now()
    with context.database.session() as session:
        stale = list(
            session.exec(
                select(Certificate)
                .outerjoin(OcspResponse, OcspResponse.certificate_id == Certificate.id)
                .where(
                    Certificate.not_after > now,
                    (OcspResponse.certificate_id.is_(None))  # type: ignore[union-attr]
                    | (OcspResponse.produced_at < now - RESPONSE_REFRESH_AFTER),
                )
                .limit(_RESIGN_BATCH)
            )
        )
        by_authority: dict[uuid.UUID, list[Certificate]] = {}
        for certificate in stale:
            by_authority.setdefault(certificate.authority_id, []).append(certificate)
        for authority_id, certificates in by_authority.items():
            presign(session, ca, session.get_one(Authority, authority_id), certificates)
    return len(stale)


def enqueue_maintenance(session: Session) -> int:
    """Housekeeping: queue one maintenance job unless one is already waiting."""
    waiting = session.exec(
        select(jobs.Job.id).where(
            jobs.Job.kind == MAINTENANCE_JOB, jobs.Job.status == jobs.JobStatus.PENDING
        )
    ).first()
    if waiting is None:
        jobs.enqueue(session, MAINTENANCE_JOB, {}, max_attempts=3)
    return 0


def on_status_change(
    session: Session, kind: str, subject_id: uuid.UUID, transition: Transition, actor: Actor
) -> None:
    if transition.target != SubjectStatus.CLOSED:
        return
    owner = {"person_id": subject_id} if kind == "person" else {"enterprise_id": subject_id}
    revoked = revoke_subject(
        session, reason=RevocationReason.CESSATION_OF_OPERATION, actor=actor, **owner
    )
    if revoked:
        log.info("closing %s revoked %d certificates", kind, revoked)


jobs.register_handler(REVOCATION_JOB, handle_revocation)
jobs.register_handler(MAINTENANCE_JOB, handle_maintenance)
jobs.register_housekeeping("ca_maintenance", MAINTENANCE_EVERY_SECONDS, enqueue_maintenance)
register_status_listener(on_status_change)
