"""The certificate authority as a service: its configuration and the authorities it holds.

:class:`CertificateAuthority` is built once per process (it lives on the runtime). It caches
the authorities' parsed certificates (keyed by authority id: an authority's certificate never
changes) and opened private keys (keyed by the sealed bytes too, so a key another process
replaced, such as a renewed OCSP responder's, is never used in place of the new one). Which authority is active
is always read from the database inside the caller's transaction: :meth:`CertificateAuthority.
active` asks for its id and revision only, and re-reads the whole row (certificate, sealed keys)
when they move (a new authority, a renewed OCSP responder, a revocation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import bindparam
from sqlmodel import Session, select

from onecard.ca import keys
from onecard.ca.certificates import CaUrls
from onecard.ca.models import Authority, AuthorityKind, AuthorityStatus
from onecard.core.errors import InvalidState, NotFound
from onecard.core.sealing import Sealer
from onecard.core.settings import Settings


@dataclass(frozen=True)
class Issuer:
    """An authority ready to sign: its row's identity, certificate and private key."""

    id: uuid.UUID
    name: str
    kind: AuthorityKind
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


_ACTIVE = select(Authority.id, Authority.revision).where(
    Authority.kind == bindparam("kind"), Authority.status == AuthorityStatus.ACTIVE
)


class CertificateAuthority:
    def __init__(self, sealer: Sealer, settings: Settings) -> None:
        self.sealer = sealer
        self.urls = CaUrls(settings.issuer)
        self.organization = settings.ca_organization
        self._certificates: dict[uuid.UUID, x509.Certificate] = {}
        self._keys: dict[tuple[uuid.UUID, str, bytes], ec.EllipticCurvePrivateKey] = {}
        self._active: dict[AuthorityKind, Authority] = {}
        # Per (authority id, revision): what signing with it needs, derived once (see ocsp.py).
        self.derived: dict[tuple[uuid.UUID, int], Any] = {}

    # -- authorities -----------------------------------------------------------------------

    def certificate(self, authority: Authority) -> x509.Certificate:
        cached = self._certificates.get(authority.id)
        if cached is None:
            cached = x509.load_der_x509_certificate(authority.certificate)
            self._certificates[authority.id] = cached
        return cached

    def private_key(
        self, authority: Authority, column: keys.Column = "private_key"
    ) -> ec.EllipticCurvePrivateKey:
        sealed = getattr(authority, column)
        if sealed is None:
            raise InvalidState(
                f"the {authority.name} authority's key is held offline; supply the exported key",
                code="authority_key_offline",
            )
        cached = self._keys.get((authority.id, column, sealed))
        if cached is None:
            cached = keys.open_sealed(self.sealer, sealed, authority_id=authority.id, column=column)
            self._keys[(authority.id, column, sealed)] = cached
        return cached

    def active(self, session: Session, kind: AuthorityKind) -> Authority:
        """The active authority of ``kind``: a copy kept by this process (read it, do not
        change it), taken again when the authority's revision moves."""
        row = session.exec(_ACTIVE, params={"kind": kind}).one_or_none()
        if row is None:
            raise _missing(kind)
        cached = self._active.get(kind)
        if cached is None or (cached.id, cached.revision) != tuple(row):
            loaded = session.get_one(Authority, row[0])
            # A copy, so the caller's session keeps its own object (and any change to it).
            columns = Authority.__table__.columns  # type: ignore[attr-defined]
            cached = Authority(**{c.key: getattr(loaded, c.key) for c in columns})
            self._active[kind] = cached
        return cached

    def issuer(self, authority: Authority) -> Issuer:
        return Issuer(
            authority.id,
            authority.name,
            AuthorityKind(authority.kind),
            self.certificate(authority),
            self.private_key(authority),
        )

    def forget(self, authority_id: uuid.UUID) -> None:
        """Drop the keys cached for an authority (a replaced or erased key)."""
        for cached in [k for k in self._keys if k[0] == authority_id]:
            del self._keys[cached]


def active_authority(session: Session, kind: AuthorityKind) -> Authority:
    authority = session.exec(
        select(Authority).where(Authority.kind == kind, Authority.status == AuthorityStatus.ACTIVE)
    ).one_or_none()
    if authority is None:
        raise _missing(kind)
    return authority


def _missing(kind: AuthorityKind) -> InvalidState:
    return InvalidState(
        f"no active {kind} authority: run `onecard ca init`", code="authority_missing"
    )


def get_authority(session: Session, name: str) -> Authority:
    authority = session.exec(select(Authority).where(Authority.name == name)).one_or_none()
    if authority is None:
        raise NotFound(f"no authority named {name!r}", code="authority_not_found")
    return authority


def list_authorities(session: Session) -> list[Authority]:
    return list(session.exec(select(Authority).order_by(Authority.created_at, Authority.name)))
