"""The CA hierarchy: the root, the issuing authorities and their delegated OCSP responders.

- :func:`ensure_hierarchy` (``onecard ca init``, and ``onecard serve`` on first start) creates
  whatever is missing: a P-384 root, one P-384 issuing authority per kind (citizen, enterprise,
  service), a P-256 OCSP responder for each, and each authority's first CRL.
- :func:`add_authority` creates a new issuing authority of a kind and retires the one it
  replaces; :func:`retire_authority` only retires. A retired authority issues nothing new but
  keeps signing CRLs and OCSP answers for what it issued, so no chain breaks.
- :func:`export_root_key` and :func:`remove_root_key` move the root key to offline custody;
  afterwards :func:`add_authority` and the root's CRL take the exported key.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, func, select

from onecard.ca import keys
from onecard.ca.actions import CaAction
from onecard.ca.certificates import (
    build_intermediate,
    build_ocsp_responder,
    build_root,
    ca_name,
    key_hash,
)
from onecard.ca.crl import publish_crl
from onecard.ca.models import Authority, AuthorityKind, AuthorityStatus
from onecard.ca.service import CertificateAuthority, active_authority, get_authority
from onecard.core import clock
from onecard.core.audit import Actor, record
from onecard.core.errors import InvalidInput, InvalidState

ROOT_LIFETIME = timedelta(days=20 * 365)
ISSUING_LIFETIME = timedelta(days=8 * 365)
OCSP_RESPONDER_LIFETIME = timedelta(days=90)
# Renewed this long before expiry: OCSP answers it signed stay verifiable meanwhile.
OCSP_RESPONDER_RENEWAL = timedelta(days=30)
ISSUING_KINDS = (AuthorityKind.CITIZEN, AuthorityKind.ENTERPRISE, AuthorityKind.SERVICE)


def ensure_hierarchy(session: Session, ca: CertificateAuthority, actor: Actor) -> list[Authority]:
    """Create the root and any missing issuing authority; returns what was created."""
    created: list[Authority] = []
    existing = {
        a.kind
        for a in session.exec(select(Authority).where(Authority.status == AuthorityStatus.ACTIVE))
    }
    if AuthorityKind.ROOT not in existing:
        created.append(_create_root(session, ca, actor))
    for kind in ISSUING_KINDS:
        if kind not in existing:
            created.append(_create_issuing(session, ca, kind, actor, root_key=None))
    return created


def _create_root(session: Session, ca: CertificateAuthority, actor: Actor) -> Authority:
    key = keys.generate("P-384")
    certificate = build_root(
        key, ca_name(ca.organization, AuthorityKind.ROOT, 1), clock.now(), ROOT_LIFETIME
    )
    authority = _new_row(AuthorityKind.ROOT, "root", certificate)
    authority.private_key = keys.seal(
        ca.sealer, key, authority_id=authority.id, column="private_key"
    )
    session.add(authority)
    session.flush()
    _audit_created(session, authority, certificate, actor)
    publish_crl(session, ca, authority, actor=actor, key=key)
    return authority


def add_authority(
    session: Session,
    ca: CertificateAuthority,
    kind: AuthorityKind,
    actor: Actor,
    *,
    root_key: ec.EllipticCurvePrivateKey | None = None,
) -> Authority:
    """A new issuing authority of ``kind``; the one it replaces is retired in the same step."""
    if kind not in ISSUING_KINDS:
        raise InvalidInput(f"{kind} is not an issuing authority kind", code="authority_kind")
    current = session.exec(
        select(Authority).where(Authority.kind == kind, Authority.status == AuthorityStatus.ACTIVE)
    ).one_or_none()
    if current is not None:
        retire_authority(session, current, actor)
    return _create_issuing(session, ca, kind, actor, root_key=root_key)


def _create_issuing(
    session: Session,
    ca: CertificateAuthority,
    kind: AuthorityKind,
    actor: Actor,
    *,
    root_key: ec.EllipticCurvePrivateKey | None,
) -> Authority:
    root = active_authority(session, AuthorityKind.ROOT)
    root_certificate = ca.certificate(root)
    signing_key = _root_key(ca, root, root_key)
    generation = (
        1
        + session.exec(
            select(func.count()).select_from(Authority).where(Authority.kind == kind)
        ).one()
    )
    key = keys.generate("P-384")
    certificate = build_intermediate(
        kind=kind,
        public_key=key.public_key(),
        name=ca_name(ca.organization, kind, generation),
        root=root_certificate,
        root_key=signing_key,
        urls=ca.urls,
        not_before=clock.now(),
        lifetime=ISSUING_LIFETIME,
    )
    authority = _new_row(kind, f"{kind}-{generation}", certificate)
    authority.parent_id = root.id
    authority.private_key = keys.seal(
        ca.sealer, key, authority_id=authority.id, column="private_key"
    )
    session.add(authority)
    session.flush()
    _audit_created(session, authority, certificate, actor)
    issue_ocsp_responder(session, ca, authority, actor, issuer_key=key)
    publish_crl(session, ca, authority, actor=actor, key=key)
    return authority


def _root_key(
    ca: CertificateAuthority, root: Authority, supplied: ec.EllipticCurvePrivateKey | None
) -> ec.EllipticCurvePrivateKey:
    if supplied is None:
        return ca.private_key(root)
    if not keys.same_key(supplied, ca.certificate(root).public_key()):
        raise InvalidInput("the key file does not hold the root's key", code="root_key_mismatch")
    return supplied


def _new_row(kind: AuthorityKind, name: str, certificate: x509.Certificate) -> Authority:
    return Authority(
        name=name,
        kind=kind,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
        key_hash=key_hash(certificate.public_key()),
        not_after=certificate.not_valid_after_utc,
        created_at=clock.now(),
    )


def _audit_created(
    session: Session, authority: Authority, certificate: x509.Certificate, actor: Actor
) -> None:
    record(
        session,
        CaAction.AUTHORITY_CREATE,
        actor=actor,
        subject=("ca_authority", authority.name),
        data={
            "kind": authority.kind,
            "serial": format(certificate.serial_number, "x"),
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
        },
    )


def issue_ocsp_responder(
    session: Session,
    ca: CertificateAuthority,
    authority: Authority,
    actor: Actor,
    *,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A fresh delegated OCSP responder key and certificate for ``authority``."""
    key = keys.generate("P-256")
    certificate = build_ocsp_responder(
        public_key=key.public_key(),
        issuer=ca.certificate(authority),
        issuer_key=issuer_key or ca.private_key(authority),
        not_before=clock.now(),
        lifetime=OCSP_RESPONDER_LIFETIME,
    )
    authority.ocsp_certificate = certificate.public_bytes(serialization.Encoding.DER)
    authority.ocsp_private_key = keys.seal(
        ca.sealer, key, authority_id=authority.id, column="ocsp_private_key"
    )
    authority.revision += 1  # cached answers name the old responder: let workers re-read
    session.add(authority)
    ca.forget(authority.id)
    record(
        session,
        CaAction.OCSP_RESPONDER_ISSUE,
        actor=actor,
        subject=("ca_authority", authority.name),
        data={
            "serial": format(certificate.serial_number, "x"),
            "not_after": certificate.not_valid_after_utc.isoformat(),
        },
    )
    return certificate


def renew_ocsp_responders(session: Session, ca: CertificateAuthority, actor: Actor) -> int:
    """Renew every responder certificate that expires within the renewal window."""
    horizon = clock.now() + OCSP_RESPONDER_RENEWAL
    renewed = 0
    for authority in session.exec(
        select(Authority).where(Authority.kind != AuthorityKind.ROOT, Authority.not_after > horizon)
    ):
        if authority.ocsp_certificate is None:
            continue
        responder = x509.load_der_x509_certificate(authority.ocsp_certificate)
        if responder.not_valid_after_utc <= horizon:
            issue_ocsp_responder(session, ca, authority, actor)
            renewed += 1
    return renewed


def retire_authority(session: Session, authority: Authority, actor: Actor) -> Authority:
    if authority.kind == AuthorityKind.ROOT:
        raise InvalidInput("the root cannot be retired here", code="authority_kind")
    if authority.status == AuthorityStatus.RETIRED:
        raise InvalidState(f"{authority.name} is already retired", code="authority_retired")
    authority.status, authority.retired_at = AuthorityStatus.RETIRED, clock.now()
    session.add(authority)
    session.flush()  # free the "one active per kind" slot before a successor takes it
    record(
        session,
        CaAction.AUTHORITY_RETIRE,
        actor=actor,
        subject=("ca_authority", authority.name),
        data={"kind": authority.kind},
    )
    return authority


def retire_by_name(session: Session, name: str, actor: Actor) -> Authority:
    return retire_authority(session, get_authority(session, name), actor)


def export_root_key(
    session: Session, ca: CertificateAuthority, passphrase: str, actor: Actor
) -> bytes:
    """The root key as encrypted PKCS#8 PEM, for offline custody (audited)."""
    root = active_authority(session, AuthorityKind.ROOT)
    exported = keys.export_encrypted(ca.private_key(root), passphrase)
    record(session, CaAction.ROOT_KEY_EXPORT, actor=actor, subject=("ca_authority", root.name))
    return exported


def load_root_key(
    session: Session, ca: CertificateAuthority, exported: bytes, passphrase: str
) -> ec.EllipticCurvePrivateKey:
    """Open an exported root key and check it is this root's."""
    root = active_authority(session, AuthorityKind.ROOT)
    return _root_key(ca, root, keys.load_exported(exported, passphrase))


def remove_root_key(
    session: Session, ca: CertificateAuthority, exported: bytes, passphrase: str, actor: Actor
) -> Authority:
    """Erase the root key from the database, after proving the exported copy opens and is the
    root's: a removal can never lose the only copy."""
    load_root_key(session, ca, exported, passphrase)
    root = active_authority(session, AuthorityKind.ROOT)
    if root.private_key is None:
        raise InvalidState("the root key is already offline", code="authority_key_offline")
    root.private_key, root.key_removed_at = None, clock.now()
    session.add(root)
    ca.forget(root.id)
    record(session, CaAction.ROOT_KEY_REMOVE, actor=actor, subject=("ca_authority", root.name))
    return root
