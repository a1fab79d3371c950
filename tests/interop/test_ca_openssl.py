"""The CA's certificates, CRLs and OCSP answers as the ``openssl`` command line sees them.

Everything is fetched from a running onecard (uvicorn on 127.0.0.1, its ``public_url`` equal to
its real address) and judged by OpenSSL alone:

- ``openssl verify -x509_strict`` builds and checks the chain root → issuing authority → leaf
  for a certificate of every profile (keys P-256, P-384, RSA-2048, and a request made by
  ``openssl req``), with the purpose and host name where the profile has one; the issuing
  authorities and the delegated OCSP responders verify too.
- ``-crl_check`` and ``-crl_check_all`` with the CRLs the server publishes (the root's too):
  after a revocation the revoked certificate of each profile is refused with "certificate
  revoked" and the good one still verifies; ``-crl_download`` fetches the CRLs itself from the
  distribution point URLs in the certificates.
- ``openssl crl`` checks each CRL's signature, lists the revoked serials with their reason, and
  the CRL number grows.
- ``openssl ocsp -url`` against the live responder (POST) for good, revoked and never-issued
  serials, with and without a nonce, with SHA-1 and SHA-256 CertIDs: the response signature
  and the delegated responder are verified up to the root (``-CAfile``), the nonce is checked,
  the times are sane, and a revoked answer carries its time and reason. GET requests
  (RFC 6960 appendix A) are built by ``openssl ocsp -reqout`` and their answers checked by
  ``openssl ocsp -respin``. Malformed and foreign-issuer requests get the RFC 6960 errors.
- The same ``openssl ocsp -url`` checks against the dedicated OCSP responder
  (``onecard ocsp-responder``, :mod:`onecard.api.ocsp_server`) on the same database.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import requests

from onecard.ca.revocation import RevocationReason
from tests.interop.ca_server import (
    AUTHORITIES,
    AUTHORITY_OF_PROFILE,
    DNS_DOMAIN,
    ISSUING,
    PROFILES,
    CaServer,
    Issued,
    openssl,
    running_ca_server,
    running_ocsp_responder,
)

if TYPE_CHECKING:
    from tests.conftest import DatabaseFactory

# The key each profile's certificate is made with: every allowed kind appears somewhere.
KEY_OF_PROFILE = {
    "citizen-auth": "P-256",
    "citizen-sign": "P-384",
    "enterprise-sign": "RSA-2048",
    "service-tls": "RSA-2048",
}
# openssl verify -purpose for the profiles that have one; signing profiles use the default.
PURPOSE = {"citizen-auth": "sslclient", "service-tls": "sslserver"}
# Who answers OCSP: the application (`onecard serve`) or the dedicated responder.
RESPONDERS = ("app", "dedicated")


@dataclass(frozen=True)
class Pki:
    """What the module's tests share: the server, and per profile a good and a revoked
    certificate (files written under the server's work directory)."""

    ca: CaServer
    responder: str  # the dedicated OCSP responder's base URL
    good: dict[str, Issued]
    revoked: dict[str, Issued]
    openssl_made: Issued  # service-tls from an `openssl req` request (P-256 key made by openssl)
    crl_numbers_before: dict[str, int]

    def file(self, issued: Issued) -> Path:
        return self.ca.write(f"{issued.id}.pem", issued.pem)

    def authority(self, name: str) -> Path:
        return self.ca.authority_file(name)


def _crl_number(ca: CaServer, authority: str) -> int:
    result = openssl("crl", "-in", ca.crl_file(authority), "-noout", "-crlnumber", check=True)
    match = re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", result.stdout)
    assert match, result.stdout
    return int(match.group(1), 16)


def _openssl_request(ca: CaServer, host: str) -> bytes:
    """A P-256 key and PKCS#10 request made by OpenSSL, with a SAN for ``host``."""
    key = ca.workdir / "openssl-made.key"
    csr = ca.workdir / "openssl-made.csr"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, check=True)
    openssl(
        "req", "-new", "-key", key, "-subj", "/CN=ignored", "-addext",
        f"subjectAltName=DNS:{host}", "-sha256", "-out", csr, check=True,
    )  # fmt: skip
    return csr.read_bytes()


@pytest.fixture(scope="module")
def pki(
    database_factory: DatabaseFactory, master_key: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pki]:
    with (
        running_ca_server(database_factory, master_key, tmp_path_factory, "ca-openssl") as ca,
        running_ocsp_responder(ca.runtime) as responder,
    ):
        good = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        revoked = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        host = f"openssl-made.{DNS_DOMAIN}"
        made = ca.issue("service-tls", csr=_openssl_request(ca, host), dns_names=(host,))
        numbers = {name: _crl_number(ca, name) for name in ISSUING}
        pki = Pki(ca, responder.base, good, revoked, made, numbers)
        # Ask both responders about every certificate first, so that their memory holds the
        # "good" answers a revocation must replace.
        for issued in [*good.values(), *revoked.values()]:
            for server in RESPONDERS:
                _ocsp(pki, issued, nonce=False, server=server)
        ca.revoke(*revoked.values(), reason=RevocationReason.KEY_COMPROMISE)
        yield pki


# -- helpers -------------------------------------------------------------------------------


def _verify(pki: Pki, leaf: Path, authority: str, *extra: str | Path) -> tuple[bool, str]:
    result = openssl(
        "verify", "-x509_strict", "-CAfile", pki.authority("root"),
        "-untrusted", pki.authority(authority), *extra, leaf,
    )  # fmt: skip
    output = result.stdout + result.stderr
    return result.returncode == 0 and f"{leaf}: OK" in output, output


def _crl_args(pki: Pki, authority: str, *, all_levels: bool) -> list[str | Path]:
    args: list[str | Path] = ["-crl_check_all" if all_levels else "-crl_check"]
    args += ["-CRLfile", pki.ca.crl_file(authority)]
    if all_levels:
        args += ["-CRLfile", pki.ca.crl_file("root")]
    return args


def _ocsp(
    pki: Pki,
    issued: Issued | None,
    *,
    nonce: bool,
    authority: str | None = None,
    serial: int | None = None,
    digest: str = "-sha1",
    server: str = "app",
) -> str:
    """``openssl ocsp`` against a live responder (``server``: the application, or the
    dedicated one); returns stdout and stderr together, and fails unless openssl verified
    the response."""
    authority = authority or (issued.authority if issued else "citizen-1")
    target: list[str | Path] = (
        ["-cert", pki.file(issued)] if issued is not None else ["-serial", hex(serial or 0)]
    )
    result = openssl(
        "ocsp", digest, "-issuer", pki.authority(authority), *target,
        "-url", f"{pki.ca.base if server == 'app' else pki.responder}/ocsp",
        "-CAfile", pki.authority("root"),
        "-resp_text", *([] if nonce else ["-no_nonce"]),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Response verify OK" in output, output
    assert "WARNING" not in output, output  # e.g. "no nonce in response", "Status times invalid"
    return output


def _status(output: str, what: str) -> str:
    match = re.search(rf"^{re.escape(what)}: (good|revoked|unknown)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def _assert_nonce(output: str, *, expected: bool) -> None:
    response = output.split("OCSP Response Data:", 1)[1]
    assert ("OCSP Nonce" in response) is expected, output


# -- openssl verify ------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_chain_verifies_for_every_profile(pki: Pki, profile: str) -> None:
    leaf = pki.file(pki.good[profile])
    extra: list[str] = []
    if profile in PURPOSE:
        extra += ["-purpose", PURPOSE[profile]]
    if profile == "service-tls":
        extra += ["-verify_hostname", pki.good[profile].dns_names[0]]
    ok, output = _verify(pki, leaf, AUTHORITY_OF_PROFILE[profile], *extra)
    assert ok, output


def test_certificate_from_an_openssl_request_verifies_for_its_host(pki: Pki) -> None:
    issued = pki.openssl_made
    ok, output = _verify(
        pki, pki.file(issued), "service-1", "-purpose", "sslserver",
        "-verify_hostname", issued.dns_names[0],
    )  # fmt: skip
    assert ok, output
    ok, output = _verify(
        pki, pki.file(issued), "service-1", "-verify_hostname", f"other.{DNS_DOMAIN}"
    )
    assert not ok, output
    assert "hostname mismatch" in output, output


@pytest.mark.parametrize("authority", ISSUING)
def test_issuing_authorities_and_their_ocsp_responders_verify(pki: Pki, authority: str) -> None:
    result = openssl(
        "verify", "-x509_strict", "-crl_check", "-CAfile", pki.authority("root"),
        "-CRLfile", pki.ca.crl_file("root"), pki.authority(authority),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    responder = pki.ca.write(f"{authority}-ocsp.der", pki.ca.responder_der(authority))
    responder_pem = pki.ca.write(
        f"{authority}-ocsp.pem",
        openssl("x509", "-inform", "DER", "-in", responder, check=True).stdout.encode(),
    )
    ok, output = _verify(pki, responder_pem, authority, "-purpose", "ocsphelper")
    assert ok, output


@pytest.mark.parametrize("all_levels", [False, True], ids=["crl_check", "crl_check_all"])
@pytest.mark.parametrize("profile", PROFILES)
def test_crl_check_refuses_the_revoked_and_accepts_the_good(
    pki: Pki, profile: str, all_levels: bool
) -> None:
    authority = AUTHORITY_OF_PROFILE[profile]
    crls = _crl_args(pki, authority, all_levels=all_levels)
    ok, output = _verify(pki, pki.file(pki.good[profile]), authority, *crls)
    assert ok, output
    ok, output = _verify(pki, pki.file(pki.revoked[profile]), authority, *crls)
    assert not ok, output
    assert "certificate revoked" in output, output


@pytest.mark.parametrize("profile", ["citizen-auth", "service-tls"])
def test_crl_download_follows_the_distribution_points(pki: Pki, profile: str) -> None:
    """OpenSSL fetches the CRLs itself, from the distribution point URLs in the certificates
    (the server's own address): the leaf's from its issuing authority, and the root's from
    the issuing authority's certificate. (The root has no distribution point, so
    ``-crl_check_all`` cannot download the whole chain's CRLs.)"""
    authority = AUTHORITY_OF_PROFILE[profile]
    download = ("-crl_check", "-crl_download")
    ok, output = _verify(pki, pki.file(pki.good[profile]), authority, *download)
    assert ok, output
    ok, output = _verify(pki, pki.file(pki.revoked[profile]), authority, *download)
    assert not ok, output
    assert "certificate revoked" in output, output
    result = openssl(
        "verify", "-x509_strict", *download, "-CAfile", pki.authority("root"),
        pki.authority(authority),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- openssl crl ---------------------------------------------------------------------------


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_crls_are_signed_by_their_authority_and_served_alike_in_der_and_pem(
    pki: Pki, authority: str
) -> None:
    crl = pki.ca.crl_file(authority)
    result = openssl("crl", "-in", crl, "-CAfile", pki.authority(authority), "-noout")
    assert result.returncode == 0, result
    assert "verify OK" in result.stderr + result.stdout, result
    der = pki.ca.write(f"{authority}.crl.der", pki.ca.crl_der(authority))
    from_der = openssl("crl", "-inform", "DER", "-in", der, check=True).stdout
    assert from_der.encode() == crl.read_bytes()


@pytest.mark.parametrize("authority", ISSUING)
def test_crls_list_the_revoked_with_reason_and_number_grows(pki: Pki, authority: str) -> None:
    text = openssl("crl", "-in", pki.ca.crl_file(authority), "-noout", "-text", check=True).stdout
    listed = {int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-F]+)", text)}
    expected = {
        issued.serial
        for profile, issued in pki.revoked.items()
        if AUTHORITY_OF_PROFILE[profile] == authority
    }
    assert listed == expected, text
    assert text.count("Key Compromise") == len(expected), text
    assert _crl_number(pki.ca, authority) > pki.crl_numbers_before[authority]


# -- openssl ocsp (POST to the live responder) ---------------------------------------------


@pytest.mark.parametrize("server", RESPONDERS)
@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("profile", PROFILES)
def test_ocsp_good(pki: Pki, profile: str, nonce: bool, server: str) -> None:
    issued = pki.good[profile]
    output = _ocsp(pki, issued, nonce=nonce, server=server)
    assert _status(output, str(pki.file(issued))) == "good"
    assert "Next Update:" in output
    _assert_nonce(output, expected=nonce)


@pytest.mark.parametrize("server", RESPONDERS)
@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("profile", PROFILES)
def test_ocsp_revoked(pki: Pki, profile: str, nonce: bool, server: str) -> None:
    issued = pki.revoked[profile]
    output = _ocsp(pki, issued, nonce=nonce, server=server)
    assert _status(output, str(pki.file(issued))) == "revoked"
    assert re.search(r"Revocation Time: \w{3} +\d+ [\d:]+ \d{4} GMT", output), output
    assert "Reason: keyCompromise" in output, output
    _assert_nonce(output, expected=nonce)


@pytest.mark.parametrize("server", RESPONDERS)
@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("authority", ISSUING)
def test_ocsp_unknown_serial(pki: Pki, authority: str, nonce: bool, server: str) -> None:
    serial = secrets.randbits(159) | 1 << 158  # issued by nobody
    output = _ocsp(pki, None, nonce=nonce, authority=authority, serial=serial, server=server)
    assert _status(output, hex(serial)) == "unknown"
    _assert_nonce(output, expected=nonce)


@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("state", ["good", "revoked"])
def test_ocsp_sha256_certid(pki: Pki, state: str, nonce: bool) -> None:
    issued = (pki.good if state == "good" else pki.revoked)["enterprise-sign"]
    output = _ocsp(pki, issued, nonce=nonce, digest="-sha256")
    assert _status(output, str(pki.file(issued))) == state
    assert "Hash Algorithm: sha256" in output, output


# -- GET (RFC 6960 appendix A.1), requests built by openssl ---------------------------------


def _get(pki: Pki, request: Path, *, url_encoded: bool = True) -> requests.Response:
    """GET /ocsp/{base64}: URL-encoded as RFC 6960 asks, or raw ('/' and '+' as they are,
    as many clients send it)."""
    encoded = base64.b64encode(request.read_bytes()).decode()
    if url_encoded:
        encoded = quote(encoded, safe="")
    response = requests.get(f"{pki.ca.base}/ocsp/{encoded}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return response


@pytest.mark.parametrize("url_encoded", [True, False], ids=["url_encoded", "raw"])
@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
@pytest.mark.parametrize("state", ["good", "revoked", "unknown"])
def test_ocsp_get(pki: Pki, state: str, nonce: bool, url_encoded: bool) -> None:
    tag = f"get-{state}-{nonce}-{url_encoded}"
    issuer = pki.authority("citizen-1")
    if state == "unknown":
        serial = secrets.randbits(159) | 1 << 158
        target: list[str | Path] = ["-serial", hex(serial)]
        name = hex(serial)
    else:
        issued = (pki.good if state == "good" else pki.revoked)["citizen-auth"]
        target = ["-cert", pki.file(issued)]
        name = str(pki.file(issued))
    request = pki.ca.workdir / f"{tag}.req.der"
    openssl(
        "ocsp", "-issuer", issuer, *target, "-reqout", request,
        *([] if nonce else ["-no_nonce"]), check=True,
    )  # fmt: skip
    response = pki.ca.write(f"{tag}.resp.der", _get(pki, request, url_encoded=url_encoded).content)
    # With -reqin openssl checks that the response echoes the request's nonce, if it has
    # one (-no_nonce only stops openssl from adding a second nonce to the loaded request).
    result = openssl(
        "ocsp", "-reqin", request, "-respin", response, "-resp_text", "-no_nonce",
        "-CAfile", pki.authority("root"), "-issuer", issuer, *target,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Response verify OK" in output, output
    assert "WARNING" not in output, output
    assert _status(output, name) == state
    _assert_nonce(output, expected=nonce)
    if state == "revoked":
        assert "Reason: keyCompromise" in output


def test_ocsp_malformed_and_unauthorized(pki: Pki) -> None:
    garbage = pki.ca.ocsp_post(b"\x30\x03\x02\x01\x01")
    assert garbage.status_code == 400
    bad = pki.ca.write("malformed.resp.der", garbage.content)
    result = openssl("ocsp", "-respin", bad, "-resp_text", "-noverify")
    assert "Responder Error: malformedrequest (1)" in result.stdout + result.stderr, result

    # A CA we do not operate: openssl makes it, and asks about one of its serials.
    key, cert = pki.ca.workdir / "stranger.key", pki.ca.workdir / "stranger.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-subj", "/CN=Stranger CA", "-days", "1", check=True,
    )  # fmt: skip
    result = openssl(
        "ocsp", "-issuer", cert, "-serial", "0x1234", "-url", f"{pki.ca.base}/ocsp",
        "-no_nonce", "-resp_text", "-noverify",
    )  # fmt: skip
    assert "Responder Error: unauthorized (6)" in result.stdout + result.stderr, result
