"""Finding certificates: by serial, by owner, by subject (staff search), and their chains."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from cryptography import x509
from sqlmodel import Session, select

from onecard.ca.models import Authority, Certificate
from onecard.ca.service import CertificateAuthority
from onecard.core.errors import InvalidInput, NotFound
from onecard.core.pagination import Page, paginate

_HEX = re.compile(r"^[0-9a-f]{1,40}$")


def parse_serial(text: str) -> str:
    """A serial as stored (lower-case hex, no leading zeros), from hex with or without colons
    or a ``0x`` prefix, as openssl and browsers print them."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not _HEX.match(cleaned) or int(cleaned, 16) == 0:
        raise InvalidInput("a serial number is 1 to 40 hexadecimal digits", code="serial_invalid")
    return format(int(cleaned, 16), "x")


def get_by_serial(session: Session, serial: str) -> Certificate:
    certificate = session.exec(
        select(Certificate).where(Certificate.serial == parse_serial(serial))
    ).one_or_none()
    if certificate is None:
        raise NotFound("no certificate with this serial number", code="certificate_not_found")
    return certificate


def certificates_of(
    session: Session,
    *,
    person_id: uuid.UUID | None = None,
    enterprise_id: uuid.UUID | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Certificate]:
    stmt = select(Certificate)
    if person_id is not None:
        stmt = stmt.where(Certificate.person_id == person_id)
    if enterprise_id is not None:
        stmt = stmt.where(Certificate.enterprise_id == enterprise_id)
    return paginate(session, stmt, Certificate, limit=limit, cursor=cursor)


def search(
    session: Session, text: str | None, *, limit: int, cursor: str | None
) -> Page[Certificate]:
    """Certificates whose subject (or DNS names) contain ``text``, oldest first."""
    stmt = select(Certificate)
    if text:
        needle = text.strip().lower()
        if len(needle) > 200:
            raise InvalidInput("the search text is too long", code="search_too_long")
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Certificate.search_text.like(f"%{escaped}%", escape="\\"))  # type: ignore[attr-defined]
    return paginate(session, stmt, Certificate, limit=limit, cursor=cursor)


def chain(
    session: Session, ca: CertificateAuthority, certificate: Certificate
) -> list[x509.Certificate]:
    """The leaf, its issuing authority and the root, in that order."""
    result = [x509.load_der_x509_certificate(certificate.der)]
    authority = session.get(Authority, certificate.authority_id)
    while authority is not None:
        result.append(ca.certificate(authority))
        authority = session.get(Authority, authority.parent_id) if authority.parent_id else None
    return result


def openssl_index(session: Session, authority: Authority) -> str:
    """The authority's certificates as an ``openssl ca`` index file (``index.txt``), so that
    ``openssl ocsp -index`` can answer for them (the benchmark's peer, audits, migrations)."""
    lines = []
    for certificate in session.exec(
        select(Certificate)
        .where(Certificate.authority_id == authority.id)
        .order_by(Certificate.created_at)
    ):
        serial = certificate.serial.upper()
        serial = "0" * (len(serial) % 2) + serial
        subject = "/" + "/".join(reversed(certificate.subject_dn.split(",")))
        revoked = ""
        if certificate.revoked_at is not None:
            revoked = _openssl_time(certificate.revoked_at)
            if certificate.revocation_reason:
                revoked += f",{certificate.revocation_reason}"
        status = "R" if certificate.revoked_at is not None else "V"
        expiry = _openssl_time(certificate.not_after)
        lines.append(f"{status}\t{expiry}\t{revoked}\t{serial}\tunknown\t{subject}\n")
    return "".join(lines)


def _openssl_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%y%m%d%H%M%SZ")
