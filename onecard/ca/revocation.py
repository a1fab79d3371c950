"""Revocation: who may give which reason, and what a revocation changes.

A revocation is a record on the certificate (time, reason, actor in the audit trail). In the
same transaction it drops the certificate's pre-signed OCSP answer, bumps its authority's
revision (every worker re-reads its cached answers) and queues the job that rebuilds the
authority's CRL and signs the new OCSP answer within seconds. ``certificateHold`` is never
offered: a revocation is final.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from cryptography import x509
from sqlalchemy import delete, update
from sqlmodel import Session, select

from onecard.ca.actions import CaAction
from onecard.ca.models import Authority, Certificate, CertificateStatus, OcspResponse
from onecard.core import clock, jobs
from onecard.core.audit import Actor, record
from onecard.core.errors import Forbidden, InvalidInput, InvalidState

REVOCATION_JOB = "ca.revocation"


class RevocationReason(StrEnum):
    """RFC 5280 §5.3.1 reason codes, by their ASN.1 names."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"

    @property
    def flag(self) -> x509.ReasonFlags:
        return x509.ReasonFlags(self.value)


SUBJECT_REASONS = frozenset(
    {
        RevocationReason.UNSPECIFIED,
        RevocationReason.KEY_COMPROMISE,
        RevocationReason.SUPERSEDED,
        RevocationReason.CESSATION_OF_OPERATION,
    }
)
STAFF_REASONS = SUBJECT_REASONS | {
    RevocationReason.AFFILIATION_CHANGED,
    RevocationReason.PRIVILEGE_WITHDRAWN,
}


def parse_reason(text: str, *, by_staff: bool) -> RevocationReason:
    allowed = STAFF_REASONS if by_staff else SUBJECT_REASONS
    try:
        reason = RevocationReason(text)
    except ValueError:
        reason = None
    if reason is None or reason not in allowed:
        names = ", ".join(sorted(allowed))
        if reason in STAFF_REASONS:
            raise Forbidden(
                f"only CA officers may give the reason {text}; yours: {names}",
                code="revocation_reason_not_allowed",
            )
        raise InvalidInput(
            f"unknown revocation reason {text!r}; allowed: {names}",
            code="revocation_reason_invalid",
        )
    return reason


def revoke(
    session: Session, certificate: Certificate, reason: RevocationReason, *, actor: Actor
) -> Certificate:
    """Revoke one certificate (the caller has checked who may, and the reason)."""
    locked = session.exec(
        select(Certificate)
        .where(Certificate.id == certificate.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    now = clock.now()
    if locked.status == CertificateStatus.REVOKED:
        raise InvalidState("the certificate is already revoked", code="certificate_revoked")
    if locked.not_after <= now:
        raise InvalidState("the certificate has expired", code="certificate_expired")
    locked.status, locked.revoked_at, locked.revocation_reason = (
        CertificateStatus.REVOKED,
        now,
        reason.value,
    )
    session.add(locked)
    _after_revocation(session, locked.authority_id, [locked.id])
    _audit(session, locked, actor)
    return locked


def revoke_subject(
    session: Session,
    *,
    person_id: uuid.UUID | None = None,
    enterprise_id: uuid.UUID | None = None,
    reason: RevocationReason,
    actor: Actor,
) -> int:
    """Revoke every unexpired certificate of a person or an enterprise (a closed identity)."""
    owner = (
        Certificate.person_id == person_id
        if person_id is not None
        else Certificate.enterprise_id == enterprise_id
    )
    now = clock.now()
    certificates = list(
        session.exec(
            select(Certificate)
            .where(
                owner, Certificate.status == CertificateStatus.VALID, Certificate.not_after > now
            )
            .with_for_update()
        )
    )
    by_authority: dict[uuid.UUID, list[uuid.UUID]] = {}
    for certificate in certificates:
        certificate.status, certificate.revoked_at = CertificateStatus.REVOKED, now
        certificate.revocation_reason = reason.value
        session.add(certificate)
        by_authority.setdefault(certificate.authority_id, []).append(certificate.id)
        _audit(session, certificate, actor)
    for authority_id, ids in by_authority.items():
        _after_revocation(session, authority_id, ids)
    return len(certificates)


def _after_revocation(
    session: Session, authority_id: uuid.UUID, certificate_ids: list[uuid.UUID]
) -> None:
    session.flush()
    session.exec(  # type: ignore[call-overload]
        delete(OcspResponse).where(OcspResponse.certificate_id.in_(certificate_ids))
    )
    revision = session.exec(  # type: ignore[call-overload]
        update(Authority)
        .where(Authority.id == authority_id)
        .values(revision=Authority.revision + 1)
        .returning(Authority.revision)
    ).scalar_one()
    jobs.enqueue(
        session,
        REVOCATION_JOB,
        {
            "authority_id": str(authority_id),
            "revision": revision,
            "certificates": [str(i) for i in certificate_ids],
        },
    )


def _audit(session: Session, certificate: Certificate, actor: Actor) -> None:
    record(
        session,
        CaAction.CERTIFICATE_REVOKE,
        actor=actor,
        subject=("ca_certificate", certificate.serial),
        person_id=certificate.person_id,
        data={"reason": certificate.revocation_reason, "profile": certificate.profile},
    )
