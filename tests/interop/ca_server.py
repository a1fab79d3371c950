"""Shared helpers for the CA interop tests: a real onecard server with a fresh CA hierarchy.

:func:`running_ca_server` starts uvicorn on 127.0.0.1 on a free port, with its own migrated
database (from ``database_factory``) and ``public_url`` equal to the address it really serves,
so the CRL, AIA and OCSP URLs written into every certificate reach it. It creates the hierarchy
with :func:`onecard.ca.hierarchy.ensure_hierarchy` (root, citizen-1, enterprise-1, service-1 and
their delegated OCSP responders). :class:`CaServer` then issues certificates through the same
functions the API uses, revokes them, runs the job loop, fetches what the server publishes over
HTTP, and writes files for the external tools into a per-module temporary directory.
:func:`running_ocsp_responder` runs the dedicated OCSP responder (``onecard ocsp-responder``)
beside it, in a thread.

Nothing here judges the CA's outputs: the tools in the test modules do.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlmodel import select

from onecard.api import ocsp_server, server
from onecard.api.runtime import Runtime
from onecard.ca import dns, issuance, revocation
from onecard.ca.csr import check_csr
from onecard.ca.hierarchy import ensure_hierarchy
from onecard.ca.models import Authority, Certificate
from onecard.ca.ocsp import OcspResponder
from onecard.ca.profiles import get_profile
from onecard.core.audit import Actor
from onecard.core.jobs import JobContext, run_due
from onecard.identity.enterprises import NewEnterprise, register_enterprise
from onecard.identity.models import AssuranceLevel
from tests.factories import credit_code, person
from tests.interop.live_server import live_onecard

if TYPE_CHECKING:
    from tests.conftest import DatabaseFactory

PROFILES = ("citizen-auth", "citizen-sign", "enterprise-sign", "service-tls")
AUTHORITIES = ("root", "citizen-1", "enterprise-1", "service-1")
ISSUING = ("citizen-1", "enterprise-1", "service-1")
AUTHORITY_OF_PROFILE = {
    "citizen-auth": "citizen-1",
    "citizen-sign": "citizen-1",
    "enterprise-sign": "enterprise-1",
    "service-tls": "service-1",
}
DNS_DOMAIN = "gov.example"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key(kind: str) -> PrivateKey:
    """``P-256``, ``P-384`` or ``RSA-2048``."""
    if kind == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "RSA-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


def csr_pem(key: PrivateKey, dns_names: tuple[str, ...] = ()) -> bytes:
    """A PKCS#10 request made with ``cryptography`` (the subject in it is ignored by the CA)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored by the CA")])
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def openssl(
    *args: str | Path, check: bool = False, data: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``openssl`` (from PATH); returns the CompletedProcess with text output."""
    completed = subprocess.run(
        ["openssl", *map(str, args)],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    result = subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Issued:
    """A certificate the CA issued in a test, with its key and where it came from."""

    profile: str
    authority: str
    id: uuid.UUID
    der: bytes
    key: PrivateKey | None
    dns_names: tuple[str, ...] = ()

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def pem(self) -> bytes:
        return pem(self.der)


@dataclass
class CaServer:
    """A running onecard with its CA hierarchy; files go under ``workdir``."""

    base: str
    runtime: Runtime
    workdir: Path

    # -- HTTP -----------------------------------------------------------------------------

    def get(self, path: str, **params: str) -> requests.Response:
        response = requests.get(self.base + path, params=params, timeout=10)
        response.raise_for_status()
        return response

    def authority_der(self, name: str) -> bytes:
        return self.get(f"/ca/{name}.crt").content

    def authority_pem(self, name: str) -> bytes:
        return self.get(f"/ca/{name}.crt", format="pem").content

    def crl_der(self, name: str) -> bytes:
        return self.get(f"/ca/{name}.crl").content

    def crl_pem(self, name: str) -> bytes:
        return self.get(f"/ca/{name}.crl", format="pem").content

    def ocsp_post(self, request_der: bytes) -> requests.Response:
        return requests.post(
            self.base + "/ocsp",
            data=request_der,
            headers={"Content-Type": "application/ocsp-request"},
            timeout=10,
        )

    # -- database ----------------------------------------------------------------------------

    def responder_der(self, authority: str) -> bytes:
        """The delegated OCSP responder certificate of an issuing authority."""
        with self.runtime.database.session() as session:
            row = session.exec(select(Authority).where(Authority.name == authority)).one()
            assert row.ocsp_certificate is not None
            return row.ocsp_certificate

    # -- files -------------------------------------------------------------------------------

    def write(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.write_bytes(data)
        return path

    def authority_file(self, name: str) -> Path:
        path = self.workdir / f"{name}.pem"
        if not path.exists():
            path.write_bytes(self.authority_pem(name))
        return path

    def crl_file(self, name: str) -> Path:
        """The authority's CRL as it is served now (PEM), rewritten on every call."""
        return self.write(f"{name}.crl.pem", self.crl_pem(name))

    # -- issuance and revocation ---------------------------------------------------------

    def issue(
        self,
        profile: str,
        key_kind: str = "P-256",
        *,
        csr: bytes | None = None,
        dns_names: tuple[str, ...] | None = None,
    ) -> Issued:
        """Issue a certificate of ``profile`` to a fresh subject, from a fresh key of
        ``key_kind`` (or from ``csr``, whose key the caller holds)."""
        key = None if csr is not None else new_key(key_kind)
        if profile == "service-tls" and dns_names is None:
            dns_names = (f"svc-{secrets.token_hex(4)}.{DNS_DOMAIN}",)
        names = dns_names or ()
        request = csr if csr is not None else csr_pem(key, names)  # type: ignore[arg-type]
        runtime = self.runtime
        actor = Actor.system()
        with runtime.database.session() as session:
            if profile in ("citizen-auth", "citizen-sign"):
                member = person(session, runtime.sealer, level=AssuranceLevel.SUBSTANTIAL)
                subject = issuance.person_subject(session, member.id)
            elif profile == "enterprise-sign":
                representative = person(session, runtime.sealer, level=AssuranceLevel.SUBSTANTIAL)
                enterprise = register_enterprise(
                    session,
                    NewEnterprise("示例科技有限公司", credit_code(), representative.id),
                    actor=actor,
                )
                session.flush()
                subject = issuance.enterprise_subject(session, enterprise.id)
            elif profile == "service-tls":
                subject = issuance.service_subject(session, runtime.ca.organization, list(names))
            else:
                raise ValueError(profile)
            record = issuance.issue(
                session,
                runtime.ca,
                profile=get_profile(profile),
                subject=subject,
                csr=check_csr(request),
                actor=actor,
            )
            issued = Issued(
                profile, AUTHORITY_OF_PROFILE[profile], record.id, record.der, key, names
            )
        return issued

    def revoke(
        self,
        *issued: Issued,
        reason: revocation.RevocationReason = revocation.RevocationReason.KEY_COMPROMISE,
    ) -> None:
        """Revoke, run the job loop (new CRLs, new OCSP answers) and wait until the OCSP
        responder has re-read the authorities (it re-checks their revisions once a second)."""
        for one in issued:
            with self.runtime.database.session() as session:
                record = session.get_one(Certificate, one.id)
                revocation.revoke(session, record, reason, actor=Actor.system())
        self.run_jobs()
        time.sleep(1.2)

    def run_jobs(self) -> None:
        context = JobContext.from_runtime(self.runtime)
        for _ in range(10):
            if run_due(context).total == 0:
                return
        raise AssertionError("the job loop did not settle")


@contextlib.contextmanager
def running_ca_server(
    database_factory: DatabaseFactory,
    master_key: bytes,
    tmp_path_factory: pytest.TempPathFactory,
    name: str = "ca",
) -> Iterator[CaServer]:
    """A uvicorn server on 127.0.0.1 with its own database and a fresh CA hierarchy."""

    def prepare(runtime: Runtime) -> None:
        with runtime.database.session() as session:
            ensure_hierarchy(session, runtime.ca, Actor.system())
            dns.allow(session, f"*.{DNS_DOMAIN}", actor=Actor.system())

    with live_onecard(database_factory, master_key, tmp_path_factory, name, prepare) as live:
        yield CaServer(live.base, live.runtime, live.workdir)


@dataclass(frozen=True)
class OcspResponderThread:
    """The dedicated OCSP responder running in a thread of the test process."""

    base: str
    responder: OcspResponder  # its own, as a process of its own would have
    errors: list[dict]  # what its event loop reported: exceptions nothing else handled


@contextlib.contextmanager
def running_ocsp_responder(runtime: Runtime) -> Iterator[OcspResponderThread]:
    """:func:`onecard.api.ocsp_server.serve` on uvloop, on a free 127.0.0.1 port, answering
    from the runtime's database; stopped (and its in-flight answers drained) at the end."""
    sock = server.bind("127.0.0.1", 0)
    running = OcspResponderThread(
        f"http://127.0.0.1:{sock.getsockname()[1]}",
        OcspResponder(runtime.database, runtime.ca),
        [],
    )
    loop = uvloop.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: running.errors.append(context))
    stop = asyncio.Event()
    serving = ocsp_server.serve(sock, running.responder, threads=4, stop=stop)
    thread = threading.Thread(target=loop.run_until_complete, args=(serving,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not _healthy(running.base):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OCSP responder did not start")
            time.sleep(0.02)
        yield running
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
        sock.close()


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
