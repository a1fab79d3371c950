"""The OCSP responder (RFC 6960, nonces per RFC 9654), answering from pre-signed responses.

Every certificate has a pre-signed answer (SHA-1 CertID, no nonce) in ``ca_ocsp_response``,
made at issuance, re-signed at once when it is revoked (the revocation job) and before it
expires (maintenance). Each worker keeps the answers it has served, and the status of each
certificate it was asked about, in memory, and re-reads the authorities' revision at most every
second: a revocation bumps it, so a worker drops that authority's memory within a second.

Requests that carry a nonce, or name the issuer with another hash than SHA-1, are signed on
demand by the authority's delegated responder (the status from memory, else the database; the
DER encoded by hand in :mod:`onecard.ca.ocsp_der`, for speed). A serial the authority never
issued is ``unknown``; an issuer we do not operate gets ``unauthorized``; anything that does
not parse, or a nonce outside 1 to 128 octets, gets ``malformedRequest``.

:meth:`OcspResponder.cached` answers from memory only (no I/O), so the HTTP layer can call it
on the event loop and fall back to :meth:`OcspResponder.answer` in a thread.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from onecard.ca import ocsp_der
from onecard.ca.models import Authority, Certificate, CertificateStatus, OcspResponse
from onecard.ca.revocation import RevocationReason
from onecard.ca.service import CertificateAuthority
from onecard.core import clock
from onecard.core.db import Database

MAX_REQUEST_BYTES = 10 * 1024
MAX_NONCE_BYTES = 128
RESPONSE_LIFETIME = timedelta(days=4)
# Re-signed once this much of its life has passed (the CA/B Forum asks for half).
RESPONSE_REFRESH_AFTER = timedelta(days=2)
UNKNOWN_LIFETIME = timedelta(hours=1)
_RECHECK_SECONDS = 1.0
_MEMORY_LIMIT = 200_000
_STATE_MEMORY_SECONDS = 300.0  # a status only changes by revocation, which clears it at once
_UNKNOWN_MEMORY_SECONDS = 5.0
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

MALFORMED = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST
).public_bytes(serialization.Encoding.DER)
UNAUTHORIZED = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.UNAUTHORIZED
).public_bytes(serialization.Encoding.DER)
INTERNAL_ERROR = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.INTERNAL_ERROR
).public_bytes(serialization.Encoding.DER)


class MalformedRequest(ValueError):
    """The request cannot be answered (RFC 6960 ``malformedRequest``)."""


@dataclass(frozen=True)
class ParsedRequest:
    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    nonce: bytes | None


def parse_request(der: bytes) -> ParsedRequest:
    if not der or len(der) > MAX_REQUEST_BYTES:
        raise MalformedRequest("empty or oversized request")
    try:
        request = ocsp.load_der_ocsp_request(der)
        hash_name = request.hash_algorithm.name
        extensions = request.extensions
    except Exception as exc:  # the parser raises several types for hostile input
        raise MalformedRequest("not a single-certificate OCSP request") from exc
    if hash_name not in _HASHES:
        raise MalformedRequest(f"unsupported CertID hash {hash_name}")
    if request.serial_number < 0:  # DER allows it; no certificate has one (RFC 5280 §4.1.2.2)
        raise MalformedRequest("negative serial number")
    nonce = None
    for extension in extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            nonce = extension.value.nonce
            if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
                raise MalformedRequest("nonce length outside 1..128 octets")
    return ParsedRequest(
        hash_name,
        request.issuer_name_hash,
        request.issuer_key_hash,
        request.serial_number,
        nonce,
    )


@dataclass(frozen=True)
class Responder:
    """One authority as the responder sees it: how requests name it, and who signs."""

    authority_id: uuid.UUID
    revision: int
    issuer_name_hashes: dict[str, bytes]
    issuer_key_hashes: dict[str, bytes]
    key: ec.EllipticCurvePrivateKey  # the delegated responder's
    parts: ocsp_der.ResponderParts  # what all its answers carry (its certificate), encoded once

    @classmethod
    def of(cls, ca: CertificateAuthority, authority: Authority) -> Responder:
        """The authority's responder, derived once per revision (a renewal bumps it)."""
        key = (authority.id, authority.revision)
        responder = ca.derived.get(key)
        if responder is None:
            if len(ca.derived) > 100:  # revisions only grow: old ones are never asked again
                ca.derived.clear()
            responder = ca.derived[key] = cls._derive(ca, authority)
        return responder

    @classmethod
    def _derive(cls, ca: CertificateAuthority, authority: Authority) -> Responder:
        issuer = ca.certificate(authority)
        name_der = issuer.subject.public_bytes()
        key_bits = issuer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert authority.ocsp_certificate is not None
        responder = x509.load_der_x509_certificate(authority.ocsp_certificate)
        return cls(
            authority.id,
            authority.revision,
            {name: _digest(alg, name_der) for name, alg in _HASHES.items()},
            {name: _digest(alg, key_bits) for name, alg in _HASHES.items()},
            ca.private_key(authority, "ocsp_private_key"),
            ocsp_der.ResponderParts.of(responder),
        )

    def matches(self, request: ParsedRequest) -> bool:
        return (
            self.issuer_key_hashes[request.hash_name] == request.issuer_key_hash
            and self.issuer_name_hashes[request.hash_name] == request.issuer_name_hash
        )


def _digest(algorithm: type[hashes.HashAlgorithm], data: bytes) -> bytes:
    digest = hashes.Hash(algorithm())
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class CertificateState:
    status: str  # "good", "revoked" or "unknown"
    revoked_at: datetime | None = None
    reason: str | None = None

    @classmethod
    def of(cls, certificate: Certificate | None) -> CertificateState:
        if certificate is None:
            return cls("unknown")
        if certificate.status == CertificateStatus.REVOKED:
            return cls("revoked", certificate.revoked_at, certificate.revocation_reason)
        return cls("good")


def sign_response(
    responder: Responder,
    request: ParsedRequest,
    state: CertificateState,
    now: datetime,
) -> tuple[bytes, datetime]:
    """Sign one answer, produced and updated ``now``; returns its DER and its nextUpdate."""
    lifetime = UNKNOWN_LIFETIME if state.status == "unknown" else RESPONSE_LIFETIME
    next_update = now + lifetime
    tbs = ocsp_der.response_data(
        responder.parts,
        cert_id=ocsp_der.cert_id(
            request.hash_name, request.issuer_name_hash, request.issuer_key_hash, request.serial
        ),
        cert_status=_cert_status(state),
        this_update=now,
        next_update=next_update,
        nonce=request.nonce,
    )
    return ocsp_der.signed_response(responder.parts, responder.key, tbs), next_update


def _cert_status(state: CertificateState) -> bytes:
    if state.status == "good":
        return ocsp_der.GOOD
    if state.status == "unknown":
        return ocsp_der.UNKNOWN
    if state.revoked_at is None:
        raise ValueError("a revoked certificate without its revocation time")
    # unspecified is said by leaving the reason out (RFC 5280 §5.3.1 asks for that in CRLs).
    reason = None
    if state.reason and state.reason != RevocationReason.UNSPECIFIED:
        reason = RevocationReason(state.reason).flag
    return ocsp_der.revoked(state.revoked_at, reason)


def presigned_answer(
    responder: Responder, serial: int, state: CertificateState, now: datetime
) -> dict[str, Any]:
    """The stored form of a certificate's nonce-less SHA-1 answer (``certificate_id`` unset)."""
    request = ParsedRequest(
        "sha1",
        responder.issuer_name_hashes["sha1"],
        responder.issuer_key_hashes["sha1"],
        serial,
        None,
    )
    der, next_update = sign_response(responder, request, state, now)
    return {"der": der, "produced_at": now, "next_update": next_update}


def presign(
    session: Session,
    ca: CertificateAuthority,
    authority: Authority,
    certificates: list[Certificate],
) -> int:
    """Sign and store the nonce-less SHA-1 answer of each certificate (one statement)."""
    if not certificates:
        return 0
    responder = Responder.of(ca, authority)
    now = clock.now()
    rows = [
        {
            "certificate_id": c.id,
            **presigned_answer(responder, int(c.serial, 16), CertificateState.of(c), now),
        }
        for c in certificates
    ]
    store_answers(session.connection(), rows)
    return len(rows)


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE of pre-signed answers, built once per dialect: rows go
    in as parameters, so SQLAlchemy compiles it once instead of per call."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(OcspResponse)
    return statement.on_conflict_do_update(
        index_elements=["certificate_id"],
        set_={
            "der": statement.excluded.der,
            "produced_at": statement.excluded.produced_at,
            "next_update": statement.excluded.next_update,
        },
    )


def store_answers(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or replace pre-signed answers (rows of ``ca_ocsp_response``)."""
    connection.execute(_upsert_statement(connection.dialect.name), rows)


class OcspResponder:
    """Answers OCSP requests for every authority; one per process, shared by its threads.

    Two memories, both dropped for an authority as soon as its revision moves: the answers to
    nonce-less requests (bytes, served until half their life is over), and the status of each
    certificate asked about (so a request with a nonce is signed at once, without the
    database). A serial never issued is remembered for a few seconds only: it may be issued.
    """

    def __init__(self, database: Database, ca: CertificateAuthority) -> None:
        self._database = database
        self._ca = ca
        self._lock = threading.Lock()
        self._responders: dict[uuid.UUID, Responder] = {}
        self._revisions: dict[uuid.UUID, int] = {}
        self._checked_at = float("-inf")
        # (authority id, hash name, serial) -> (DER, monotonic deadline)
        self._answers: dict[tuple[uuid.UUID, str, int], tuple[bytes, float]] = {}
        # (authority id, serial) -> (status, monotonic deadline)
        self._states: dict[tuple[uuid.UUID, int], tuple[CertificateState, float]] = {}
        # The same, keyed by the request's own bytes: a repeated request is not even parsed.
        self._by_request: dict[bytes, tuple[bytes, float, uuid.UUID]] = {}

    # -- the fast path (memory only) ------------------------------------------------------

    def cached(self, der: bytes) -> bytes | None:
        """The answer from memory (signed here if the request has a nonce), or None when the
        slow path must run (in a thread)."""
        now = time.monotonic()
        if now - self._checked_at > _RECHECK_SECONDS:
            return None
        seen = self._by_request.get(der)
        if seen is not None and seen[1] >= now:
            return seen[0]
        try:
            request = parse_request(der)
        except MalformedRequest:
            return MALFORMED
        responder = self._responder_for(request)
        if responder is None:
            return UNAUTHORIZED
        answer = self._from_memory(responder, request)
        hit = self._answers.get((responder.authority_id, request.hash_name, request.serial))
        if answer is not None and request.nonce is None and hit is not None:
            with self._lock:
                self._by_request[der] = (answer, hit[1], responder.authority_id)
        return answer

    def _from_memory(self, responder: Responder, request: ParsedRequest) -> bytes | None:
        now = time.monotonic()
        if request.nonce is None:
            hit = self._answers.get((responder.authority_id, request.hash_name, request.serial))
            return hit[0] if hit is not None and hit[1] >= now else None
        known = self._states.get((responder.authority_id, request.serial))
        if known is None or known[1] < now:
            return None
        return sign_response(responder, request, known[0], clock.now())[0]

    # -- the slow path --------------------------------------------------------------------

    def answer(self, der: bytes) -> bytes:
        try:
            request = parse_request(der)
        except MalformedRequest:
            return MALFORMED
        self._refresh_responders()
        responder = self._responder_for(request)
        if responder is None:
            return UNAUTHORIZED
        remembered = self._from_memory(responder, request)
        if remembered is not None:
            return remembered
        with self._database.read_session() as session:
            certificate = session.exec(
                select(Certificate).where(
                    Certificate.serial == format(request.serial, "x"),
                    Certificate.authority_id == responder.authority_id,
                )
            ).one_or_none()
            stored = None
            if certificate is not None and request.nonce is None and request.hash_name == "sha1":
                stored = session.get(OcspResponse, certificate.id)
        state = CertificateState.of(certificate)
        now = clock.now()
        if stored is not None and now - stored.produced_at < RESPONSE_REFRESH_AFTER:
            der_out, next_update = stored.der, stored.next_update
        else:
            der_out, next_update = sign_response(responder, request, state, now)
        self._remember(responder.authority_id, request, state, der_out, next_update)
        return der_out

    def _remember(
        self,
        authority_id: uuid.UUID,
        request: ParsedRequest,
        state: CertificateState,
        der: bytes,
        next_update: datetime,
    ) -> None:
        now = time.monotonic()
        unknown = state.status == "unknown"
        state_seconds = _UNKNOWN_MEMORY_SECONDS if unknown else _STATE_MEMORY_SECONDS
        # Serve an answer from memory until half its life is over (or briefly if unknown).
        answer_seconds = (next_update - clock.now()).total_seconds() / 2
        if unknown:
            answer_seconds = min(answer_seconds, _UNKNOWN_MEMORY_SECONDS)
        with self._lock:
            if max(len(self._answers), len(self._states), len(self._by_request)) >= _MEMORY_LIMIT:
                self._answers.clear()
                self._states.clear()
                self._by_request.clear()
            self._states[(authority_id, request.serial)] = (state, now + state_seconds)
            if request.nonce is None:
                key = (authority_id, request.hash_name, request.serial)
                self._answers[key] = (der, now + answer_seconds)

    def _responder_for(self, request: ParsedRequest) -> Responder | None:
        for responder in self._responders.values():
            if responder.matches(request):
                return responder
        return None

    def _refresh_responders(self) -> None:
        """Re-read the authorities' revisions (at most every second); reload what moved."""
        if time.monotonic() - self._checked_at <= _RECHECK_SECONDS:
            return
        with self._database.read_session() as session:
            revisions = dict(session.exec(select(Authority.id, Authority.revision)).all())
            changed = {i for i, rev in revisions.items() if self._revisions.get(i) != rev}
            reloaded = {}
            if changed:
                for authority in session.exec(select(Authority).where(Authority.id.in_(changed))):
                    if authority.ocsp_certificate is not None:
                        reloaded[authority.id] = Responder.of(self._ca, authority)
        with self._lock:
            if changed:
                self._answers = {k: v for k, v in self._answers.items() if k[0] not in changed}
                self._states = {k: v for k, v in self._states.items() if k[0] not in changed}
                self._by_request = {
                    k: v for k, v in self._by_request.items() if v[2] not in changed
                }
            kept = {
                i: r for i, r in self._responders.items() if i in revisions and i not in changed
            }
            self._responders = {**kept, **reloaded}
            self._revisions = revisions
            self._checked_at = time.monotonic()
