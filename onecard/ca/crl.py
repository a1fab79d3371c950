"""Certificate revocation lists (RFC 5280 §5), one full CRL per authority.

A CRL is rebuilt from the revocation records in one pass: the whole list of entries goes to
the builder at once (adding entries one by one copies the list each time, which is quadratic).
Numbers only grow: the authority row is locked while its next number is taken, so two workers
rebuilding at once publish two CRLs with different numbers, the higher one built from the newer
records. Revoked certificates stay listed until they expire. A CRL is valid for seven days
(the root's, signed rarely and perhaps offline, for ninety) and is rebuilt within seconds of a
revocation (a job) and daily on schedule.

The HTTP layer only serves the stored bytes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, select

from onecard.ca.actions import CaAction
from onecard.ca.certificates import signature_hash
from onecard.ca.models import Authority, AuthorityKind, Certificate, CertificateStatus, Crl
from onecard.ca.revocation import RevocationReason
from onecard.ca.service import CertificateAuthority
from onecard.core import clock
from onecard.core.audit import Actor, record

CRL_LIFETIME = timedelta(days=7)
ROOT_CRL_LIFETIME = timedelta(days=90)
# Rebuilt on schedule once this much of its life has passed, well before nextUpdate.
CRL_REFRESH_AFTER = timedelta(days=1)
ROOT_CRL_REFRESH_AFTER = timedelta(days=30)


def build_crl(
    issuer: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: list[tuple[str, datetime, str | None]],
) -> x509.CertificateRevocationList:
    """Sign a CRL listing ``revoked`` = (serial hex, revocation time, reason) in one pass."""
    entries = [_entry(serial, at, reason) for serial, at, reason in revoked]
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=[
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            ),
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
        ],
        revoked_certificates=entries,
    )
    return builder.sign(key, signature_hash(key))


def _entry(serial: str, at: datetime, reason: str | None) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder(int(serial, 16), at)
    # RFC 5280 §5.3.1: the reasonCode "unspecified" SHOULD be absent.
    if reason and reason != RevocationReason.UNSPECIFIED:
        builder = builder.add_extension(
            x509.CRLReason(RevocationReason(reason).flag), critical=False
        )
    return builder.build()


def publish_crl(
    session: Session,
    ca: CertificateAuthority,
    authority: Authority,
    *,
    actor: Actor,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Crl:
    """Build, sign and store the authority's next CRL (in the caller's transaction)."""
    locked = session.exec(
        select(Authority)
        .where(Authority.id == authority.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    locked.crl_number += 1
    session.add(locked)
    now = clock.now()
    lifetime = ROOT_CRL_LIFETIME if locked.kind == AuthorityKind.ROOT else CRL_LIFETIME
    revoked = list(
        session.exec(
            select(Certificate.serial, Certificate.revoked_at, Certificate.revocation_reason).where(
                Certificate.authority_id == locked.id,
                Certificate.status == CertificateStatus.REVOKED,
                Certificate.not_after > now,
            )
        )
    )
    signed = build_crl(
        ca.certificate(locked),
        key or ca.private_key(locked),
        number=locked.crl_number,
        this_update=now,
        next_update=now + lifetime,
        revoked=revoked,  # type: ignore[arg-type]
    )
    crl = session.get(Crl, locked.id) or Crl(authority_id=locked.id)  # type: ignore[call-arg]
    crl.number, crl.this_update, crl.next_update = locked.crl_number, now, now + lifetime
    crl.entries, crl.revision = len(revoked), locked.revision
    crl.der = signed.public_bytes(serialization.Encoding.DER)
    session.add(crl)
    record(
        session,
        CaAction.CRL_PUBLISH,
        actor=actor,
        subject=("ca_authority", locked.name),
        data={"number": crl.number, "entries": crl.entries},
    )
    return crl


def current_crl(session: Session, authority: Authority) -> Crl | None:
    return session.get(Crl, authority.id)


def due_for_refresh(crl: Crl | None, kind: str, now: datetime) -> bool:
    after = ROOT_CRL_REFRESH_AFTER if kind == AuthorityKind.ROOT else CRL_REFRESH_AFTER
    return crl is None or now - crl.this_update >= after
