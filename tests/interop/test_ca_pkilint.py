"""The CA's outputs linted by pkilint (DigiCert's RFC 5280 / RFC 6960 / CA/B Forum linter).

Each document is fetched from a running onecard (the CA and CRL endpoints over HTTP, OCSP
answers from the live responder; the delegated responder certificates from the database,
since no endpoint serves them alone) and fed to pkilint's own command-line entry points
(``pkilint.bin.*.main``), run in-process with JSON output so that every finding is seen with
its severity. Nothing at WARNING or above may be reported by:

- ``lint_pkix_cert``: a certificate of every profile (citizen-auth, citizen-sign,
  enterprise-sign, service-tls; P-256, P-384 and RSA-2048 keys), every CA certificate (root,
  citizen-1, enterprise-1, service-1) and every delegated OCSP responder certificate;
- ``lint_pkix_signer_signee_cert_chain``: root → each issuing authority, each issuing authority
  → its leaves and → its OCSP responder (names, key identifiers, signatures);
- ``lint_crl``: each issuing authority's CRL, holding revoked entries, as ``-t CRL`` with
  ``-p PKIX`` and ``-p BR``; the root's CRL as ``-t ARL`` with both profiles;
- ``lint_ocsp_response``: good, revoked and unknown answers, with and without a nonce.

``lint_cabf_serverauth_cert`` is also run on the service-tls certificate and its authority;
onecard is not a publicly-trusted web PKI, so its findings are reported (``pytest -rP``), not
asserted, except that the linter must be able to decode the certificates (no FATAL).
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pkilint.bin import (
    lint_cabf_serverauth_cert,
    lint_crl,
    lint_ocsp_response,
    lint_pkix_cert,
    lint_pkix_signer_signee_cert_chain,
)

from tests.interop.ca_server import (
    AUTHORITIES,
    AUTHORITY_OF_PROFILE,
    ISSUING,
    PROFILES,
    CaServer,
    Issued,
    running_ca_server,
)

if TYPE_CHECKING:
    from tests.conftest import DatabaseFactory

KEY_OF_PROFILE = {
    "citizen-auth": "P-256",
    "citizen-sign": "P-384",
    "enterprise-sign": "RSA-2048",
    "service-tls": "RSA-2048",
}
BLOCKING = {"FATAL", "ERROR", "WARNING"}


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    validator: str
    path: str
    message: str | None

    def __str__(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} ({self.validator} @ {self.path}){message}"


def lint(linter: ModuleType, *args: str | Path) -> list[Finding]:
    """Run a pkilint command (``lint -f JSON -s ALL …``) in-process; every finding."""
    output = io.StringIO()
    # The entry points open their input files with argparse.FileType and never close them;
    # CPython closes them when main() returns. Their ResourceWarnings are pkilint's, not ours.
    with contextlib.redirect_stdout(output), warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        linter.main(["lint", "-f", "JSON", "-s", "ALL", *map(str, args)])
    text = output.getvalue()
    try:
        results = json.loads(text)["results"]
    except (ValueError, KeyError):
        raise AssertionError(f"{linter.__name__} did not produce a report: {text}") from None
    return [
        Finding(d["severity"], d["code"], r["validator"], r["node_path"], d["message"])
        for r in results
        for d in r["finding_descriptions"]
    ]


def assert_clean(findings: list[Finding], what: str) -> None:
    """Nothing at WARNING or above; lesser findings are printed (``pytest -rP`` shows them)."""
    blocking = [f for f in findings if f.severity in BLOCKING]
    for finding in findings:
        if finding.severity not in BLOCKING:
            print(f"{what}: {finding}")
    assert not blocking, f"{what}:\n" + "\n".join(map(str, blocking))


@dataclass(frozen=True)
class Documents:
    ca: CaServer
    good: dict[str, Issued]
    revoked: dict[str, Issued]

    def leaf(self, issued: Issued) -> Path:
        return self.ca.write(f"{issued.id}.pem", issued.pem)

    def authority(self, name: str) -> Path:
        return self.ca.authority_file(name)

    def responder(self, name: str) -> Path:
        return self.ca.write(f"{name}-ocsp.der", self.ca.responder_der(name))


@pytest.fixture(scope="module")
def docs(
    database_factory: DatabaseFactory, master_key: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Documents]:
    with running_ca_server(database_factory, master_key, tmp_path_factory, "ca-pkilint") as ca:
        good = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        # One revoked certificate per profile: every issuing authority's CRL has entries.
        revoked = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        ca.revoke(*revoked.values())
        yield Documents(ca, good, revoked)


def _ocsp_response(docs: Documents, issued: Issued | None, *, nonce: bool, name: str) -> Path:
    """An answer from the live responder, asked with a request built by ``cryptography``."""
    issuer = x509.load_pem_x509_certificate(docs.authority("citizen-1").read_bytes())
    builder = ocsp.OCSPRequestBuilder()
    if issued is not None:
        issuer = x509.load_pem_x509_certificate(docs.authority(issued.authority).read_bytes())
        builder = builder.add_certificate(issued.certificate, issuer, hashes.SHA1())
    else:
        name_hash = hashes.Hash(hashes.SHA1())
        name_hash.update(issuer.subject.public_bytes())
        key_hash = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
        builder = builder.add_certificate_by_hash(
            name_hash.finalize(), key_hash, secrets.randbits(159) | 1 << 158, hashes.SHA1()
        )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(32)), critical=False)
    request = builder.build().public_bytes(serialization.Encoding.DER)
    response = docs.ca.ocsp_post(request)
    assert response.status_code == 200
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return docs.ca.write(name, response.content)


# -- certificates --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_leaf_certificates(docs: Documents, profile: str) -> None:
    path = docs.leaf(docs.good[profile])
    assert_clean(lint(lint_pkix_cert, path), profile)


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_ca_certificates(docs: Documents, authority: str) -> None:
    assert_clean(lint(lint_pkix_cert, docs.authority(authority)), authority)


@pytest.mark.parametrize("authority", ISSUING)
def test_ocsp_responder_certificates(docs: Documents, authority: str) -> None:
    assert_clean(lint(lint_pkix_cert, docs.responder(authority)), f"{authority} OCSP responder")


def _chain_pairs() -> list[tuple[str, str]]:
    pairs = [("root", authority) for authority in ISSUING]
    pairs += [(AUTHORITY_OF_PROFILE[p], p) for p in PROFILES]
    pairs += [(authority, f"{authority} OCSP") for authority in ISSUING]
    return pairs


@pytest.mark.parametrize(("issuer", "subject"), _chain_pairs())
def test_signer_signee_pairs(docs: Documents, issuer: str, subject: str) -> None:
    if subject in PROFILES:
        subject_path = docs.leaf(docs.good[subject])
    elif subject.endswith(" OCSP"):
        subject_path = docs.responder(subject.removesuffix(" OCSP"))
    else:
        subject_path = docs.authority(subject)
    findings = lint(lint_pkix_signer_signee_cert_chain, docs.authority(issuer), subject_path)
    assert_clean(findings, f"{issuer} -> {subject}")


# -- CRLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["PKIX", "BR"])
@pytest.mark.parametrize("authority", AUTHORITIES)
def test_crls(docs: Documents, authority: str, profile: str) -> None:
    path = docs.ca.write(f"{authority}.crl.der", docs.ca.crl_der(authority))
    crl = x509.load_der_x509_crl(path.read_bytes())
    kind = "ARL" if authority == "root" else "CRL"
    if kind == "CRL":
        assert len(crl) >= 1  # the revocations made in the fixture are listed
    assert_clean(lint(lint_crl, "-t", kind, "-p", profile, path), f"{authority} {kind}")


# -- OCSP responses ------------------------------------------------------------------------


@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("state", ["good", "revoked", "unknown"])
def test_ocsp_responses(docs: Documents, state: str, nonce: bool) -> None:
    issued = None if state == "unknown" else (docs.good, docs.revoked)[state == "revoked"]
    target = None if issued is None else issued["citizen-sign"]
    path = _ocsp_response(docs, target, nonce=nonce, name=f"{state}-{nonce}.ocsp.der")
    parsed = ocsp.load_der_ocsp_response(path.read_bytes())
    assert parsed.certificate_status.name.lower() == state
    assert_clean(lint(lint_ocsp_response, path), f"OCSP {state}")


# -- CA/Browser Forum TLS profile: reported, not asserted ---------------------------------


@pytest.mark.parametrize("subject", ["service-tls", "service-1"])
def test_cabf_serverauth_report(docs: Documents, subject: str) -> None:
    path = docs.leaf(docs.good[subject]) if subject in PROFILES else docs.authority(subject)
    findings = lint(lint_cabf_serverauth_cert, "-d", path)
    for finding in findings:
        print(f"lint_cabf_serverauth_cert {subject}: {finding}")
    assert not [f for f in findings if f.severity == "FATAL"]
