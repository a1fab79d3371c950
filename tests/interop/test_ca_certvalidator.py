"""Path validation with revocation checking by pyhanko-certvalidator, trusting only our root.

Against a running onecard (uvicorn on 127.0.0.1, ``public_url`` equal to its real address, so
the CRL distribution points and the AIA OCSP URLs in the certificates reach it):

- with the CRLs the server publishes (fetched over HTTP) handed to the validator, fetching off,
  ``revocation_mode="require"`` (revocation data required for every certificate of the path,
  the issuing authority's included): a good leaf of every profile validates for its key usage
  and extended key usage; a revoked leaf is refused with ``RevokedError``;
- with OCSP answers fetched by us from the responder (POST) handed to the validator, plus the
  root's CRL for the issuing authority: the same;
- with fetching on and no revocation data given, the validator fetching everything itself:
  in ``require`` mode; with OCSP required for the leaf (the validator's own requests, with
  nonce, to the URL in the leaf's AIA, answered by the delegated responder whose certificate
  it checks, id-pkix-ocsp-nocheck included); and with CRLs required for the whole path (from
  the distribution points in the leaf and in the issuing authority's certificate). In each
  case the good leaf validates and the revoked leaf is refused. Given only the leaf and the
  root, the validator also finds the issuing authority's certificate at the AIA caIssuers URL.

pyhanko-certvalidator has no TLS host-name check; the service-tls leaf is validated for
serverAuth and its DNS name is checked against what asn1crypto reads from the certificate.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import InsufficientRevinfoError, RevokedError
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from tests.interop.ca_server import (
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
    "service-tls": "P-256",
}
DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"
# (key usage, extended key usage) each profile's leaf is validated for.
USAGE = {
    "citizen-auth": ({"digital_signature"}, {"client_auth"}),
    "citizen-sign": ({"non_repudiation"}, {DOCUMENT_SIGNING}),
    "enterprise-sign": ({"non_repudiation"}, {DOCUMENT_SIGNING}),
    "service-tls": ({"digital_signature"}, {"server_auth"}),
}
OCSP_FOR_LEAVES = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
        # The issuing authorities carry a CRL distribution point, no OCSP URL.
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
    )
)
CRLS_ONLY = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
    )
)


@dataclass(frozen=True)
class Setup:
    ca: CaServer
    root: asn1_x509.Certificate
    issuing: dict[str, asn1_x509.Certificate]
    good: dict[str, Issued]
    revoked: dict[str, Issued]

    def crls(self, *authorities: str) -> list[bytes]:
        """The CRLs as the server publishes them now (DER over HTTP)."""
        return [self.ca.crl_der(name) for name in authorities]


@pytest.fixture(scope="module")
def hierarchy(
    database_factory: DatabaseFactory, master_key: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    with running_ca_server(
        database_factory, master_key, tmp_path_factory, "ca-certvalidator"
    ) as ca:
        good = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        revoked = {p: ca.issue(p, KEY_OF_PROFILE[p]) for p in PROFILES}
        ca.revoke(*revoked.values())
        yield Setup(
            ca,
            asn1_x509.Certificate.load(ca.authority_der("root")),
            {name: asn1_x509.Certificate.load(ca.authority_der(name)) for name in ISSUING},
            good,
            revoked,
        )


@dataclass
class Used:
    """What revocation data the validation context held when it finished (given or fetched)."""

    crls: int = 0
    ocsps: int = 0


def _validate(
    hierarchy: Setup,
    issued: Issued,
    used: Used | None = None,
    *,
    intermediates: bool = True,
    **context: object,
) -> ValidationPath:
    """Validate ``issued`` for its profile's usages; raises what the validator raises.
    Without ``intermediates`` the validator must fetch the issuing authority's certificate
    from the leaf's AIA caIssuers URL."""

    async def run() -> ValidationPath:
        vc = ValidationContext(trust_roots=[hierarchy.root], **context)  # type: ignore[arg-type]
        async with aclosing(vc):
            validator = CertificateValidator(
                asn1_x509.Certificate.load(issued.der),
                intermediate_certs=[hierarchy.issuing[issued.authority]] if intermediates else [],
                validation_context=vc,
            )
            key_usage, extended = USAGE[issued.profile]
            try:
                return await validator.async_validate_usage(key_usage, extended)
            finally:
                if used is not None:
                    used.crls, used.ocsps = len(vc.crls), len(vc.ocsps)

    return asyncio.run(run())


def _check_path(hierarchy: Setup, path: ValidationPath, issued: Issued) -> None:
    certificates = [c.dump() for c in path.iter_certs(include_root=True)]
    expected = [hierarchy.root, hierarchy.issuing[issued.authority]]
    assert certificates == [c.dump() for c in expected] + [issued.der]
    if issued.profile == "service-tls":
        assert issued.dns_names[0] in path.leaf.valid_domains


def _ocsp_answer(hierarchy: Setup, issued: Issued) -> bytes:
    issuer = x509.load_der_x509_certificate(hierarchy.issuing[issued.authority].dump())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(issued.certificate, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
        .build()
    )
    response = hierarchy.ca.ocsp_post(request.public_bytes(serialization.Encoding.DER))
    assert response.status_code == 200
    return response.content


# -- revocation data handed to the validator -----------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_published_crls_in_require_mode(hierarchy: Setup, profile: str) -> None:
    crls = hierarchy.crls("root", AUTHORITY_OF_PROFILE[profile])
    options = {"crls": crls, "revocation_mode": "require", "allow_fetching": False}
    path = _validate(hierarchy, hierarchy.good[profile], **options)
    _check_path(hierarchy, path, hierarchy.good[profile])
    with pytest.raises(RevokedError, match="revoked"):
        _validate(hierarchy, hierarchy.revoked[profile], **options)


@pytest.mark.parametrize("profile", ["citizen-auth", "service-tls"])
def test_missing_crl_of_the_issuing_authority_is_refused_in_require_mode(
    hierarchy: Setup, profile: str
) -> None:
    """The control for the test above: without the leaf's CRL, ``require`` does refuse."""
    options = {
        "crls": hierarchy.crls("root"),
        "revocation_mode": "require",
        "allow_fetching": False,
    }
    with pytest.raises(InsufficientRevinfoError):
        _validate(hierarchy, hierarchy.good[profile], **options)


@pytest.mark.parametrize("profile", PROFILES)
def test_fetched_ocsp_answers_in_require_mode(hierarchy: Setup, profile: str) -> None:
    for issued, revoked in ((hierarchy.good[profile], False), (hierarchy.revoked[profile], True)):
        options = {
            "ocsps": [_ocsp_answer(hierarchy, issued)],
            "crls": hierarchy.crls("root"),  # for the issuing authority, which has no OCSP URL
            "revinfo_policy": OCSP_FOR_LEAVES,
            "allow_fetching": False,
        }
        if revoked:
            with pytest.raises(RevokedError, match="revoked"):
                _validate(hierarchy, issued, **options)
        else:
            _check_path(hierarchy, _validate(hierarchy, issued, **options), issued)


# -- the validator fetching for itself -----------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_fetching_in_require_mode(hierarchy: Setup, profile: str) -> None:
    options = {"revocation_mode": "require", "allow_fetching": True}
    used = Used()
    path = _validate(hierarchy, hierarchy.good[profile], used, **options)
    _check_path(hierarchy, path, hierarchy.good[profile])
    assert used.crls + used.ocsps >= 2  # something for the leaf and for its authority
    with pytest.raises(RevokedError, match="revoked"):
        _validate(hierarchy, hierarchy.revoked[profile], **options)


@pytest.mark.parametrize("profile", ["citizen-auth", "enterprise-sign", "service-tls"])
def test_fetching_ocsp_for_the_leaf(hierarchy: Setup, profile: str) -> None:
    options = {"revinfo_policy": OCSP_FOR_LEAVES, "allow_fetching": True}
    used = Used()
    path = _validate(hierarchy, hierarchy.good[profile], used, **options)
    _check_path(hierarchy, path, hierarchy.good[profile])
    assert used.ocsps == 1, used  # the leaf's answer
    assert used.crls == 1, used  # the root's CRL, for the issuing authority
    used = Used()
    with pytest.raises(RevokedError, match="revoked"):
        _validate(hierarchy, hierarchy.revoked[profile], used, **options)
    assert used.ocsps == 1, used


@pytest.mark.parametrize("profile", ["citizen-sign", "enterprise-sign", "service-tls"])
def test_fetching_crls_for_the_whole_path(hierarchy: Setup, profile: str) -> None:
    options = {"revinfo_policy": CRLS_ONLY, "allow_fetching": True}
    used = Used()
    path = _validate(hierarchy, hierarchy.good[profile], used, **options)
    _check_path(hierarchy, path, hierarchy.good[profile])
    assert used.crls == 2, used  # the issuing authority's and the root's
    assert used.ocsps == 0, used
    used = Used()
    with pytest.raises(RevokedError, match="revoked"):
        _validate(hierarchy, hierarchy.revoked[profile], used, **options)
    assert used.crls >= 1, used
    assert used.ocsps == 0, used


@pytest.mark.parametrize("profile", ["citizen-auth", "service-tls"])
def test_fetching_the_issuing_authority_from_the_aia_url(hierarchy: Setup, profile: str) -> None:
    """Given only the leaf and the root, the validator finds the issuing authority's
    certificate at the leaf's AIA caIssuers URL (``GET /ca/{name}.crt``, DER)."""
    options = {"revocation_mode": "require", "allow_fetching": True, "intermediates": False}
    path = _validate(hierarchy, hierarchy.good[profile], **options)
    _check_path(hierarchy, path, hierarchy.good[profile])
    with pytest.raises(RevokedError, match="revoked"):
        _validate(hierarchy, hierarchy.revoked[profile], **options)
