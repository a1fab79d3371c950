"""Issuing certificates: who a certificate is for, whether they may have it, and the signing.

The flow, all in the caller's transaction: decide the subject from the verified identity
(:func:`person_subject`, :func:`enterprise_subject`, :func:`service_subject`), check the
profile's policy (subject kind, status, assurance level, DNS allow-list), bind the public key to
that subject (one key never stands for two subjects), sign with the profile's active
authority, store the record with its pre-signed OCSP answer, and audit. A failure at any step
raises before anything is written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, bindparam, insert, literal_column, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from onecard.ca import keys
from onecard.ca.actions import CaAction
from onecard.ca.certificates import (
    BACKDATE,
    MAX_COMMON_NAME,
    MAX_ORGANIZATION,
    LeafRequest,
    build_leaf,
    new_serial,
    serial_hex,
)
from onecard.ca.csr import CheckedCsr, CsrRejected
from onecard.ca.dns import check_allowed, normalise_dns_name
from onecard.ca.models import (
    Authority,
    AuthorityStatus,
    Certificate,
    CertificateStatus,
    CertifiedKey,
    SubjectKind,
)
from onecard.ca.ocsp import CertificateState, Responder, presigned_answer, store_answers
from onecard.ca.profiles import Profile
from onecard.ca.service import CertificateAuthority
from onecard.core import clock
from onecard.core.audit import Actor, EventSpec, record_many
from onecard.core.db import pipelined
from onecard.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidState,
    NotFound,
    OnecardError,
)
from onecard.identity.models import Enterprise, Person, SubjectStatus


@dataclass(frozen=True)
class Subject:
    """Who a certificate is for, as the verified records say."""

    kind: SubjectKind
    name: x509.Name
    binding: str  # the key-binding identity: "person:<id>", "enterprise:<id>", "service:<h>"
    level: int  # the assurance level standing behind the subject
    person_id: uuid.UUID | None = None
    enterprise_id: uuid.UUID | None = None
    dns_names: tuple[str, ...] = ()


def _bounded(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise InvalidInput(
            f"the {what} has more than {limit} characters and cannot go in a certificate",
            code="name_too_long",
        )
    return value


_PERSON = select(Person.id, Person.status, Person.name, Person.assurance_level).where(
    Person.id == bindparam("person_id")
)


def person_subject(session: Session, person_id: uuid.UUID) -> Subject:
    person = session.exec(_PERSON, params={"person_id": person_id}).one_or_none()
    if person is None:
        raise NotFound("no such person", code="person_not_found")
    _require_active(person.status, "person")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.COMMON_NAME, _bounded(person.name, MAX_COMMON_NAME, "name")),
            # A pseudonymous, stable reference: never the identity number.
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(person.id)),
        ]
    )
    return Subject(
        SubjectKind.PERSON, name, f"person:{person.id}", person.assurance_level, person.id
    )


def enterprise_subject(session: Session, enterprise_id: uuid.UUID) -> Subject:
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None:
        raise NotFound("no such enterprise", code="enterprise_not_found")
    _require_active(enterprise.status, "enterprise")
    representative = session.get(Person, enterprise.legal_representative_id)
    if representative is None or representative.status != SubjectStatus.ACTIVE:
        raise InvalidState(
            "the enterprise's legal representative is not active",
            code="legal_representative_inactive",
        )
    organization = _bounded(enterprise.name, MAX_ORGANIZATION, "enterprise name")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            # ETSI EN 319 412-1 §5.1.4: "NTR" (national trade register) + country + identifier.
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{enterprise.credit_code}"),
            x509.NameAttribute(NameOID.COMMON_NAME, organization),
        ]
    )
    return Subject(
        SubjectKind.ENTERPRISE,
        name,
        f"enterprise:{enterprise.id}",
        representative.assurance_level,
        enterprise_id=enterprise.id,
    )


def service_subject(
    session: Session, organization: str, dns_names: list[str] | tuple[str, ...]
) -> Subject:
    names = tuple(dict.fromkeys(normalise_dns_name(n) for n in dns_names))
    if not names:
        raise InvalidInput(
            "a TLS certificate needs at least one DNS name", code="dns_names_missing"
        )
    if len(names) > 100:
        raise InvalidInput("at most 100 DNS names", code="dns_names_too_many")
    check_allowed(session, names)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, _bounded(names[0], MAX_COMMON_NAME, "name")),
        ]
    )
    digest = hashlib.sha256(",".join(sorted(names)).encode()).hexdigest()
    # Service certificates are requested by staff at level 2 (the route requires it).
    return Subject(SubjectKind.SERVICE, name, f"service:{digest}", 2, dns_names=names)


def _require_active(status: str, what: str) -> None:
    if status != SubjectStatus.ACTIVE:
        raise InvalidState(
            f"the {what} is {status}: no certificate can be issued", code=f"{what}_not_active"
        )


def check_eligible(profile: Profile, subject: Subject, csr: CheckedCsr) -> None:
    if subject.kind != profile.subject:
        raise InvalidInput(
            f"the {profile.name} profile is for a {profile.subject}, not a {subject.kind}",
            code="profile_subject_mismatch",
        )
    if subject.level < profile.min_level:
        raise Forbidden(
            f"the {profile.name} profile needs assurance level {profile.min_level}",
            code="assurance_level_too_low",
        )
    extra = set(csr.dns_names) - set(subject.dns_names)
    if extra:
        raise CsrRejected(
            "the request asks for names that are not being certified: " + ", ".join(sorted(extra)),
            code="csr_names_not_allowed",
        )


@dataclass(frozen=True)
class Signed:
    """A certificate signed but not yet recorded: what :func:`prepare` hands :func:`record`.

    Nothing leaves the CA before :func:`record` commits it; if recording fails the signed
    bytes are simply dropped.
    """

    profile: Profile
    subject: Subject
    authority_id: uuid.UUID
    authority_name: str
    csr: CheckedCsr
    serial: int
    der: bytes
    subject_dn: str
    not_before: datetime
    not_after: datetime
    ocsp_answer: dict[str, Any]


def prepare(
    session: Session,
    ca: CertificateAuthority,
    *,
    profile: Profile,
    subject: Subject,
    csr: CheckedCsr,
) -> Signed:
    """Check the policy and sign the certificate and its first OCSP answer. Only reads: on
    SQLite this runs in a read session, so the signatures are made outside the write lock."""
    check_eligible(profile, subject, csr)
    authority = ca.active(session, profile.authority)
    issuer = ca.issuer(authority)
    not_before = clock.now() - BACKDATE
    # RFC 5280 §4.1.2.5 counts both ends: the last second is notBefore + validity - 1 s.
    not_after = min(
        not_before + profile.validity - timedelta(seconds=1),
        issuer.certificate.not_valid_after_utc,
    )
    request = LeafRequest(
        profile=profile,
        subject=subject.name,
        public_key=csr.public_key,
        dns_names=subject.dns_names,
        not_before=not_before,
        not_after=not_after,
        serial=new_serial(),
    )
    signed = build_leaf(
        request,
        issuer=issuer.certificate,
        issuer_name=issuer.name,
        issuer_key=issuer.key,
        urls=ca.urls,
    )
    answer = presigned_answer(
        Responder.of(ca, authority), request.serial, CertificateState("good"), clock.now()
    )
    return Signed(
        profile=profile,
        subject=subject,
        authority_id=authority.id,
        authority_name=authority.name,
        csr=csr,
        serial=request.serial,
        der=signed.public_bytes(serialization.Encoding.DER),
        subject_dn=signed.subject.rfc4514_string(),
        not_before=not_before,
        not_after=not_after,
        ocsp_answer=answer,
    )


def record_signed(session: Session, signed: Signed, *, actor: Actor) -> Certificate:
    """Record one signed certificate (see :func:`record_batch`); raises what refused it."""
    outcome = record_batch(session, [(signed, actor)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


_CERTIFICATES = Certificate.__table__  # type: ignore[attr-defined]
_KEYS = CertifiedKey.__table__  # type: ignore[attr-defined]


def record_batch(
    session: Session, batch: Sequence[tuple[Signed, Actor]]
) -> list[Certificate | OnecardError]:
    """Record signed certificates, each with its key binding, its pre-signed OCSP answer and
    its audit event, in the caller's transaction; one statement per table however many there
    are (several workers' requests share one write, see :mod:`onecard.core.group_commit`).

    Each is first checked again, inside the write transaction: its authority still issues, its
    subject is still active, and its key stands for no other subject (the primary key decides
    races: of two subjects racing for one key, one insert wins). One that fails gets its error
    in its place and writes nothing; the others are recorded.
    """
    # The statements go straight to the connection (Core, no ORM bookkeeping: this runs
    # while the SQLite writer's turn or the audit head is held), so nothing may wait in the ORM.
    session.flush()
    connection = session.connection()
    outcomes: list[Certificate | OnecardError | None] = [None] * len(batch)
    _recheck(connection, [signed for signed, _ in batch], outcomes)
    _bind_keys(connection, [signed for signed, _ in batch], outcomes)
    now = clock.now()
    pending = [
        (signed, actor, _certificate_row(signed, actor, now))
        for (signed, actor), outcome in zip(batch, outcomes, strict=True)
        if outcome is None
    ]
    if pending:
        answers = [{"certificate_id": row["id"], **s.ocsp_answer} for s, _, row in pending]
        with pipelined(connection):
            connection.execute(insert(_CERTIFICATES), [row for _, _, row in pending])
            store_answers(connection, answers)
        record_many(session, [_issue_event(s, actor, row["serial"]) for s, actor, row in pending])
    recorded = (Certificate(**row) for _, _, row in pending)
    return [outcome if outcome is not None else next(recorded) for outcome in outcomes]


def _recheck(
    connection: Connection,
    batch: list[Signed],
    outcomes: list[Certificate | OnecardError | None],
) -> None:
    """Authorities and subjects as they are now (one query: one round trip in the write)."""
    status = _statuses(
        connection,
        {
            Authority: {s.authority_id for s in batch},
            Person: {s.subject.person_id for s in batch} - {None},
            Enterprise: {s.subject.enterprise_id for s in batch} - {None},
        },
    )
    for index, signed in enumerate(batch):
        subject = signed.subject
        try:
            if status.get(("ca_authority", signed.authority_id)) != AuthorityStatus.ACTIVE:
                raise InvalidState(
                    "the issuing authority was retired meanwhile; ask again",
                    code="authority_retired",
                )
            if subject.person_id is not None:
                _require_active(status[("person", subject.person_id)], "person")
            if subject.enterprise_id is not None:
                _require_active(status[("enterprise", subject.enterprise_id)], "enterprise")
        except OnecardError as exc:
            outcomes[index] = exc


def _statuses(
    connection: Connection, wanted: dict[type[Authority | Person | Enterprise], set[Any]]
) -> dict[tuple[str, Any], str]:
    """The status of each row asked for, keyed by (table, id)."""
    parts = [
        select(literal_column(f"'{model.__tablename__}'"), model.id, model.status).where(
            model.id.in_(ids)
        )
        for model, ids in wanted.items()
        if ids
    ]
    return {(table, id_): status for table, id_, status in connection.execute(union_all(*parts))}


def _bind_keys(
    connection: Connection,
    batch: list[Signed],
    outcomes: list[Certificate | OnecardError | None],
) -> None:
    """Bind each key to its subject (one insert), then refuse those another subject holds
    (looked up only for keys the insert did not take: already bound, to someone)."""
    wanted = {
        signed.csr.spki_sha256: signed.subject.binding
        for signed, outcome in zip(reversed(batch), reversed(outcomes), strict=True)
        if outcome is None
    }  # reversed: of two subjects in one batch asking for one key, the first one wins
    if not wanted:
        return
    insert_key = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    now = clock.now()
    bound = set(
        connection.execute(
            insert_key(_KEYS)
            .on_conflict_do_nothing(index_elements=["spki_sha256"])
            .returning(_KEYS.c.spki_sha256),
            [{"spki_sha256": k, "subject": b, "created_at": now} for k, b in wanted.items()],
        ).scalars()
    )
    owners = {key: wanted[key] for key in bound}
    if len(bound) < len(wanted):
        taken = [key for key in wanted if key not in bound]
        rows = connection.execute(
            select(_KEYS.c.spki_sha256, _KEYS.c.subject).where(_KEYS.c.spki_sha256.in_(taken))
        )
        owners.update((row[0], row[1]) for row in rows)
    for index, signed in enumerate(batch):
        if outcomes[index] is None and owners[signed.csr.spki_sha256] != signed.subject.binding:
            outcomes[index] = Conflict(
                "this public key is already certified for another subject",
                code="key_already_certified",
            )


def _certificate_row(signed: Signed, actor: Actor, now: datetime) -> dict[str, Any]:
    subject = signed.subject
    return {
        "id": uuid.uuid4(),
        "serial": serial_hex(signed.serial),
        "authority_id": signed.authority_id,
        "profile": signed.profile.name,
        "subject_kind": subject.kind,
        "person_id": subject.person_id,
        "enterprise_id": subject.enterprise_id,
        "subject_dn": signed.subject_dn[:500],
        "search_text": " ".join([signed.subject_dn, *subject.dns_names]).lower()[:2000],
        "spki_sha256": signed.csr.spki_sha256,
        "der": signed.der,
        "not_before": signed.not_before,
        "not_after": signed.not_after,
        "status": CertificateStatus.VALID,
        "issued_by": actor.label,
        "created_at": now,
    }


def _issue_event(signed: Signed, actor: Actor, serial: str) -> EventSpec:
    return EventSpec(
        CaAction.CERTIFICATE_ISSUE,
        actor,
        subject=("ca_certificate", serial),
        person_id=signed.subject.person_id,
        data={
            "profile": signed.profile.name,
            "authority": signed.authority_name,
            "key": signed.csr.key_description,
            "not_after": signed.not_after.isoformat(),
        },
    )


def issue(
    session: Session,
    ca: CertificateAuthority,
    *,
    profile: Profile,
    subject: Subject,
    csr: CheckedCsr,
    actor: Actor,
) -> Certificate:
    """:func:`prepare` and :func:`record_signed` in one transaction (the CLI, tests)."""
    signed = prepare(session, ca, profile=profile, subject=subject, csr=csr)
    return record_signed(session, signed, actor=actor)


def generated_key_request() -> tuple[keys.CaPrivateKey, CheckedCsr]:
    """A fresh P-256 key made here, for citizens without their own tooling."""
    key = keys.generate("P-256")
    public_key = key.public_key()
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, CheckedCsr(public_key=public_key, spki_der=spki, dns_names=())


def pkcs12_bundle(
    ca: CertificateAuthority,
    session: Session,
    signed: Signed,
    key: keys.CaPrivateKey,
    passphrase: str,
) -> bytes:
    """The key, its certificate and the issuing CA's, under the citizen's passphrase
    (PBES2 AES-256-CBC, HMAC-SHA256). The key is not kept anywhere."""
    secret = keys.check_passphrase(passphrase)
    authority = session.get_one(Authority, signed.authority_id)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(200_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(secret)
    )
    return pkcs12.serialize_key_and_certificates(
        name=b"onecard",
        key=key,
        cert=x509.load_der_x509_certificate(signed.der),
        cas=[ca.certificate(authority)],
        encryption_algorithm=encryption,
    )
