"""The CA's public endpoints: CA certificates, CRLs and the OCSP responder (no authentication).

- ``GET /ca/authorities``: the hierarchy, with the URLs below.
- ``GET /ca/{name}.crt`` and ``GET /ca/{name}.crl``: DER (``application/pkix-cert``,
  ``application/pkix-crl``), or PEM with ``?format=pem`` or ``Accept: application/x-pem-file``.
- ``POST /ocsp`` (``application/ocsp-request``) and ``GET /ocsp/{base64 request}`` (RFC 6960
  appendix A). Answers the workers hold in memory are served by :mod:`onecard.api.ocsp_lane`
  before routing; these routes answer the rest, in the thread pool.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from onecard.api.deps import RuntimeDep
from onecard.api.schemas import AuthorityOut
from onecard.ca import crl as crls
from onecard.ca.ocsp import MALFORMED, MAX_REQUEST_BYTES
from onecard.ca.service import get_authority, list_authorities
from onecard.core.errors import NotFound

router = APIRouter(tags=["certificate authority"])
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PEM = "application/x-pem-file"
Format = Annotated[Literal["der", "pem"] | None, Query(alias="format")]


@router.get("/ca/authorities", response_model=list[AuthorityOut], summary="The CA hierarchy")
def authorities(runtime: RuntimeDep) -> list[AuthorityOut]:
    with runtime.database.read_session() as session:
        return [
            AuthorityOut.of(a, runtime.ca.certificate(a), runtime.ca.urls)
            for a in list_authorities(session)
        ]


def _document(
    der: bytes,
    pem: Callable[[], bytes],
    media_type: str,
    *,
    format_: str | None,
    accept: str | None,
    headers: dict[str, str],
) -> Response:
    """DER under its PKIX media type, or PEM when asked for (``?format=pem`` or Accept)."""
    wants_pem = format_ == "pem" if format_ is not None else PEM in (accept or "")
    if wants_pem:
        return Response(pem(), media_type=PEM, headers=headers)
    return Response(der, media_type=media_type, headers=headers)


@router.get(
    "/ca/{name}.crt",
    summary="A CA certificate (DER, or PEM on request)",
    responses={200: {"content": {"application/pkix-cert": {}, PEM: {}}}},
)
def ca_certificate(
    name: str,
    runtime: RuntimeDep,
    format_: Format = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    with runtime.database.read_session() as session:
        certificate = runtime.ca.certificate(get_authority(session, name))
    return _document(
        certificate.public_bytes(serialization.Encoding.DER),
        lambda: certificate.public_bytes(serialization.Encoding.PEM),
        "application/pkix-cert",
        format_=format_,
        accept=accept,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get(
    "/ca/{name}.crl",
    summary="An authority's current CRL (DER, or PEM on request)",
    responses={200: {"content": {"application/pkix-crl": {}, PEM: {}}}},
)
def ca_crl(
    name: str,
    runtime: RuntimeDep,
    format_: Format = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    with runtime.database.read_session() as session:
        current = crls.current_crl(session, get_authority(session, name))
    if current is None:
        raise NotFound("this authority has not published a CRL yet", code="crl_not_found")
    der = current.der
    return _document(
        der,
        lambda: x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM),
        "application/pkix-crl",
        format_=format_,
        accept=accept,
        # Caches may keep it briefly: a revocation rebuilds it within seconds.
        headers={
            "Cache-Control": "public, max-age=60",
            "Last-Modified": current.this_update.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "ETag": f'"{current.number}"',
        },
    )


def ocsp_response(der: bytes) -> Response:
    status = 400 if der == MALFORMED else 200
    return Response(der, status_code=status, media_type=OCSP_RESPONSE)


def decode_get_request(encoded: str) -> bytes:
    """The DER of an RFC 6960 appendix A.1 GET: base64 of the request, URL-encoded."""
    text = unquote(encoded)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


_OCSP_DOC = {
    200: {"content": {OCSP_RESPONSE: {}}, "description": "An OCSP response (RFC 6960)"},
    400: {"content": {OCSP_RESPONSE: {}}, "description": "malformedRequest"},
}


@router.post("/ocsp", summary="OCSP responder (POST)", responses=_OCSP_DOC)
async def ocsp_post(request: Request, runtime: RuntimeDep) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = b""
    if content_type == OCSP_REQUEST:
        body = await _limited_body(request)
    if not body:
        return ocsp_response(MALFORMED)
    return ocsp_response(await run_in_threadpool(runtime.ocsp.answer, body))


@router.get("/ocsp/{encoded:path}", summary="OCSP responder (GET)", responses=_OCSP_DOC)
async def ocsp_get(encoded: str, runtime: RuntimeDep) -> Response:
    der = decode_get_request(encoded)
    if not der:
        return ocsp_response(MALFORMED)
    return ocsp_response(await run_in_threadpool(runtime.ocsp.answer, der))


async def _limited_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)
