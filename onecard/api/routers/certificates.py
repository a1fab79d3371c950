"""Certificates through the API: citizens for themselves, enterprises through their legal
representative, CA officers for anyone eligible; look-up, download, search and revocation;
the DNS allow-list for service TLS certificates (administrators)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from collections.abc import Callable
from typing import Annotated, Literal

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session

from onecard.api import idempotency
from onecard.api.deps import (
    Admin,
    BearerToken,
    CurrentPrincipal,
    Principal,
    RuntimeDep,
    person_principal,
    require_staff,
)
from onecard.api.runtime import Runtime
from onecard.api.schemas import (
    CertificateOut,
    CertificateRequest,
    DnsAllowanceIn,
    DnsAllowanceOut,
    GeneratedKeyRequest,
    OfficerCertificateRequest,
    PageOut,
    RevocationRequest,
)
from onecard.ca import dns, issuance, revocation, store
from onecard.ca.actions import CaAction
from onecard.ca.csr import CheckedCsr, CsrRejected, check_csr
from onecard.ca.models import Authority, Certificate
from onecard.ca.profiles import get_profile
from onecard.core.audit import EventSpec, record_many
from onecard.core.errors import Forbidden, InvalidInput
from onecard.core.pagination import DEFAULT_LIMIT, Page, check_limit
from onecard.identity import enterprises
from onecard.identity.models import StaffRoleName

router = APIRouter(tags=["certificates"])
CaOfficer = Annotated[Principal, Depends(require_staff(StaffRoleName.CA_OFFICER))]
CertificateReader = Annotated[
    Principal, Depends(require_staff(StaffRoleName.CA_OFFICER, StaffRoleName.AUDITOR))
]
_READERS = frozenset({StaffRoleName.CA_OFFICER, StaffRoleName.AUDITOR})
Limit = Annotated[int, Query(ge=1, le=200)]
SubjectOf = Callable[[Session], issuance.Subject]
# Who asks and for whom, decided in the read session that checks the request.
Applicant = Callable[[Session], tuple[Principal, issuance.Subject]]


def _csr(text: str) -> CheckedCsr:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return check_csr(text.encode())
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CsrRejected(
            "the request is neither PEM nor base64 DER", code="csr_malformed"
        ) from None
    return check_csr(der)


def _is_staff(principal: Principal, roles: frozenset[StaffRoleName]) -> bool:
    return bool(principal.roles & roles) and principal.level >= 2 and "staff" in principal.scopes


def _out(session: Session, certificate: Certificate) -> CertificateOut:
    return CertificateOut.of(certificate, session.get_one(Authority, certificate.authority_id).name)


def _page(session: Session, page: Page[Certificate]) -> PageOut[CertificateOut]:
    return PageOut(items=[_out(session, c) for c in page.items], next_cursor=page.next_cursor)


def _issue(
    runtime: Runtime,
    request: Request,
    key: str | None,
    body: CertificateRequest | OfficerCertificateRequest,
    *,
    applicant: Applicant,
) -> Response:
    """Check and sign in a read session (on SQLite, outside the write lock), then record in
    a short write transaction, shared with concurrent issuances unless an Idempotency-Key asks
    for its answer to be kept (a retry replays it)."""
    profile = get_profile(body.profile)
    with runtime.database.read_session() as session:
        principal, subject = applicant(session)
        csr = _csr(body.csr)
        signed = issuance.prepare(session, runtime.ca, profile=profile, subject=subject, csr=csr)

    if key is None:  # the usual request: its write is shared with concurrent issuances
        certificate = runtime.issuance.submit((signed, principal.actor))
        out = CertificateOut.of(certificate, signed.authority_name)
        return JSONResponse(out.model_dump(mode="json"), status_code=201)

    def create() -> CertificateOut:
        certificate = issuance.record_signed(session, signed, actor=principal.actor)
        return CertificateOut.of(certificate, signed.authority_name)

    with runtime.database.session() as session:
        return idempotency.run(
            session, request, caller=principal.actor.label, key=key, body=body, create=create
        )


def _at_sign_in_level(subject: issuance.Subject, principal: Principal) -> issuance.Subject:
    # What stands behind a self-service request is this sign-in, not only the record.
    return dataclasses.replace(subject, level=min(subject.level, principal.level))


# -- citizens -----------------------------------------------------------------------------


@router.post(
    "/v1/me/certificates",
    status_code=201,
    response_model=CertificateOut,
    summary="Request a certificate for yourself from a CSR (citizen-auth, citizen-sign)",
)
def request_own(
    body: CertificateRequest,
    request: Request,
    token: BearerToken,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    # The caller is resolved in the session that checks the request (not by CurrentPrincipal):
    # the busiest issuance path saves a session and a thread hop.
    def applicant(session: Session) -> tuple[Principal, issuance.Subject]:
        principal = person_principal(session, runtime, token)
        subject = issuance.person_subject(session, principal.require_person())
        return principal, _at_sign_in_level(subject, principal)

    return _issue(runtime, request, idempotency_key, body, applicant=applicant)


@router.post(
    "/v1/me/certificates/pkcs12",
    status_code=201,
    summary="Have a key made for you: returned once as PKCS#12 under your passphrase",
    responses={201: {"content": {"application/x-pkcs12": {}}}},
)
def request_own_with_key(
    body: GeneratedKeyRequest, principal: CurrentPrincipal, runtime: RuntimeDep
) -> Response:
    person_id = principal.require_person()
    profile = get_profile(body.profile)
    key, csr = issuance.generated_key_request()
    with runtime.database.read_session() as session:
        subject = _at_sign_in_level(issuance.person_subject(session, person_id), principal)
        signed = issuance.prepare(session, runtime.ca, profile=profile, subject=subject, csr=csr)
        bundle = issuance.pkcs12_bundle(runtime.ca, session, signed, key, body.passphrase)
    with runtime.database.session() as session:
        certificate = issuance.record_signed(session, signed, actor=principal.actor)
    return Response(
        bundle,
        status_code=201,
        media_type="application/x-pkcs12",
        headers={
            "Content-Disposition": f'attachment; filename="{certificate.serial}.p12"',
            "Location": f"/v1/certificates/{certificate.serial}",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/v1/me/certificates", response_model=PageOut[CertificateOut], summary="Your certificates"
)
def list_own(
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[CertificateOut]:
    person_id = principal.require_person()
    check_limit(limit)
    with runtime.database.session() as session:
        page = store.certificates_of(session, person_id=person_id, limit=limit, cursor=cursor)
        return _page(session, page)


# -- enterprises --------------------------------------------------------------------------


def _require_representative(
    session: Session, enterprise_id: uuid.UUID, principal: Principal
) -> None:
    enterprise = enterprises.get_enterprise(session, enterprise_id)
    if enterprise.legal_representative_id != principal.person_id:
        raise Forbidden(
            "only the enterprise's legal representative may do this",
            code="not_legal_representative",
        )


@router.post(
    "/v1/enterprises/{enterprise_id}/certificates",
    status_code=201,
    response_model=CertificateOut,
    summary="Request an enterprise-sign certificate (the legal representative)",
)
def request_for_enterprise(
    enterprise_id: uuid.UUID,
    body: CertificateRequest,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    def applicant(session: Session) -> tuple[Principal, issuance.Subject]:
        _require_representative(session, enterprise_id, principal)
        found = issuance.enterprise_subject(session, enterprise_id)
        return principal, _at_sign_in_level(found, principal)

    return _issue(runtime, request, idempotency_key, body, applicant=applicant)


@router.get(
    "/v1/enterprises/{enterprise_id}/certificates",
    response_model=PageOut[CertificateOut],
    summary="An enterprise's certificates (its legal representative, CA officers, auditors)",
)
def list_for_enterprise(
    enterprise_id: uuid.UUID,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[CertificateOut]:
    check_limit(limit)
    with runtime.database.session() as session:
        if not _is_staff(principal, _READERS):
            _require_representative(session, enterprise_id, principal)
        page = store.certificates_of(
            session, enterprise_id=enterprise_id, limit=limit, cursor=cursor
        )
        return _page(session, page)


# -- CA officers --------------------------------------------------------------------------


def _officer_subject(body: OfficerCertificateRequest, runtime: Runtime) -> SubjectOf:
    named = [body.person_id is not None, body.enterprise_id is not None, bool(body.dns_names)]
    if sum(named) != 1:
        raise InvalidInput(
            "name exactly one of person_id, enterprise_id or dns_names", code="subject_ambiguous"
        )

    def subject(session: Session) -> issuance.Subject:
        if body.person_id is not None:
            return issuance.person_subject(session, body.person_id)
        if body.enterprise_id is not None:
            return issuance.enterprise_subject(session, body.enterprise_id)
        return issuance.service_subject(session, runtime.ca.organization, body.dns_names or [])

    return subject


@router.post(
    "/v1/certificates",
    status_code=201,
    response_model=CertificateOut,
    summary="Issue a certificate for an eligible subject (CA officer)",
)
def officer_issue(
    body: OfficerCertificateRequest,
    request: Request,
    principal: CaOfficer,
    runtime: RuntimeDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    subject = _officer_subject(body, runtime)
    return _issue(
        runtime, request, idempotency_key, body, applicant=lambda s: (principal, subject(s))
    )


@router.get(
    "/v1/certificates",
    response_model=PageOut[CertificateOut],
    summary="Search certificates by subject (CA officers, auditors)",
)
def search(
    principal: CertificateReader,
    runtime: RuntimeDep,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> PageOut[CertificateOut]:
    check_limit(limit)
    with runtime.database.session() as session:
        page = store.search(session, subject, limit=limit, cursor=cursor)
        _audit_staff_view(session, principal, page.items)
        return _page(session, page)


def _audit_staff_view(session: Session, principal: Principal, items: list[Certificate]) -> None:
    """Staff seeing a person's certificate is a data access the person can later see."""
    record_many(
        session,
        [
            EventSpec(
                CaAction.CERTIFICATE_VIEW,
                principal.actor,
                ("ca_certificate", c.serial),
                c.person_id,
                {},
            )
            for c in items
            if c.person_id is not None and c.person_id != principal.person_id
        ],
    )


def _readable(session: Session, principal: Principal, serial: str) -> Certificate:
    certificate = store.get_by_serial(session, serial)
    if principal.person_id is not None and certificate.person_id == principal.person_id:
        return certificate
    if certificate.enterprise_id is not None and principal.person_id is not None:
        enterprise = enterprises.get_enterprise(session, certificate.enterprise_id)
        if enterprise.legal_representative_id == principal.person_id:
            return certificate
    if _is_staff(principal, _READERS):
        _audit_staff_view(session, principal, [certificate])
        return certificate
    raise Forbidden("this certificate is not yours", code="certificate_not_yours")


@router.get("/v1/certificates/{serial}", response_model=CertificateOut, summary="One certificate")
def get_one(serial: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> CertificateOut:
    with runtime.database.session() as session:
        return _out(session, _readable(session, principal, serial))


@router.get(
    "/v1/certificates/{serial}/download",
    summary="Download a certificate: PEM, DER, or the chain (leaf, issuing CA, root) in PEM",
    responses={
        200: {
            "content": {
                "application/x-pem-file": {},
                "application/pkix-cert": {},
                "application/pem-certificate-chain": {},
            }
        }
    },
)
def download(
    serial: str,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    format_: Annotated[Literal["pem", "der", "chain"], Query(alias="format")] = "pem",
) -> Response:
    with runtime.database.session() as session:
        certificate = _readable(session, principal, serial)
        chain = store.chain(session, runtime.ca, certificate)
    name = f'attachment; filename="{certificate.serial}'
    if format_ == "der":
        return Response(
            certificate.der,
            media_type="application/pkix-cert",
            headers={"Content-Disposition": f'{name}.cer"'},
        )
    if format_ == "chain":
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        return Response(
            pem,
            media_type="application/pem-certificate-chain",
            headers={"Content-Disposition": f'{name}-chain.pem"'},
        )
    return Response(
        chain[0].public_bytes(serialization.Encoding.PEM),
        media_type="application/x-pem-file",
        headers={"Content-Disposition": f'{name}.pem"'},
    )


@router.post(
    "/v1/certificates/{serial}/revoke",
    response_model=CertificateOut,
    summary="Revoke a certificate (its subject, or a CA officer with more reasons)",
)
def revoke(
    serial: str, body: RevocationRequest, principal: CurrentPrincipal, runtime: RuntimeDep
) -> CertificateOut:
    with runtime.database.session() as session:
        officer = _is_staff(principal, frozenset({StaffRoleName.CA_OFFICER}))
        if officer:
            certificate = store.get_by_serial(session, serial)
        else:
            certificate = _readable(session, principal, serial)
            if certificate.subject_kind == "service":
                raise Forbidden(
                    "only CA officers revoke service certificates", code="role_required"
                )
        reason = revocation.parse_reason(body.reason, by_staff=officer)
        revoked = revocation.revoke(session, certificate, reason, actor=principal.actor)
        return _out(session, revoked)


# -- the DNS allow-list -------------------------------------------------------------------


@router.get(
    "/v1/admin/ca/dns-allowances",
    response_model=list[DnsAllowanceOut],
    summary="DNS names allowed in service TLS certificates (administrators)",
)
def list_allowances(principal: Admin, runtime: RuntimeDep) -> list[DnsAllowanceOut]:
    with runtime.database.session() as session:
        return [DnsAllowanceOut.of(a) for a in dns.list_allowances(session)]


@router.post(
    "/v1/admin/ca/dns-allowances",
    status_code=201,
    response_model=DnsAllowanceOut,
    summary="Allow a DNS name (or *.domain) in service TLS certificates",
)
def add_allowance(body: DnsAllowanceIn, principal: Admin, runtime: RuntimeDep) -> DnsAllowanceOut:
    with runtime.database.session() as session:
        return DnsAllowanceOut.of(dns.allow(session, body.pattern, actor=principal.actor))


@router.delete(
    "/v1/admin/ca/dns-allowances/{allowance_id}",
    status_code=204,
    summary="Withdraw a DNS allowance (certificates already issued are not affected)",
)
def remove_allowance(allowance_id: uuid.UUID, principal: Admin, runtime: RuntimeDep) -> Response:
    with runtime.database.session() as session:
        dns.remove(session, allowance_id, actor=principal.actor)
    return Response(status_code=204)
