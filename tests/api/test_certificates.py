"""The certificate API: who may request, look up, download and revoke which certificates, the
public CA endpoints, and clear 4xx answers for bad requests with nothing issued."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp

from onecard.core.audit import Actor
from onecard.identity.enterprises import NewEnterprise, register_enterprise
from tests import factories
from tests.ca import csr_factory
from tests.ca.conftest import counts


def _pem() -> str:
    return csr_factory.csr().decode()


def test_a_citizen_gets_a_certificate_for_themselves(client, citizen) -> None:
    person, headers, _ = citizen()
    response = client.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": _pem()}, headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person_id"] == str(person.id)
    assert body["status"] == "valid"
    assert body["authority"] == "citizen-1"
    listed = client.get("/v1/me/certificates", headers=headers).json()["items"]
    assert [c["serial"] for c in listed] == [body["serial"]]
    pem = client.get(body["links"]["pem"], headers=headers)
    assert pem.headers["content-type"] == "application/x-pem-file"
    leaf = x509.load_pem_x509_certificate(pem.content)
    assert format(leaf.serial_number, "x") == body["serial"]
    der = client.get(body["links"]["der"], headers=headers)
    assert x509.load_der_x509_certificate(der.content) == leaf
    chain = client.get(body["links"]["chain"], headers=headers).content
    assert len(x509.load_pem_x509_certificates(chain)) == 3


def test_a_level_1_sign_in_cannot_get_a_signing_certificate(client, citizen, runtime) -> None:
    _, headers, _ = citizen(level=1)
    before = counts(runtime.database)
    response = client.post(
        "/v1/me/certificates", json={"profile": "citizen-sign", "csr": _pem()}, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "assurance_level_too_low"
    assert counts(runtime.database) == before


@pytest.mark.parametrize(
    ("csr", "status", "code"),
    [
        ("garbage", 422, "csr_malformed"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----",
            422,
            "csr_malformed",
        ),
        (csr_factory.csr(csr_factory.private_key("RSA-1024")).decode(), 422, "csr_weak_key"),
        (csr_factory.csr(csr_factory.private_key("Ed25519")).decode(), 422, "csr_key_not_allowed"),
        (
            base64.b64encode(csr_factory.with_swapped_key(csr_factory.csr())).decode(),
            422,
            "csr_bad_signature",
        ),
        (
            csr_factory.csr(extensions=[x509.BasicConstraints(ca=True, path_length=None)]).decode(),
            422,
            "csr_asks_ca",
        ),
        (csr_factory.csr(dns_names=["www.bank.example"]).decode(), 422, "csr_names_not_allowed"),
    ],
    ids=["garbage", "truncated", "weak", "ed25519", "wrong-signature", "ca", "names"],
)
def test_bad_requests_get_a_reason_and_nothing_is_issued(
    client, citizen, runtime, csr: str, status: int, code: str
) -> None:
    _, headers, _ = citizen()
    before = counts(runtime.database)
    response = client.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": csr}, headers=headers
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert counts(runtime.database) == before


def test_unknown_profiles_and_fields_are_refused(client, citizen) -> None:
    _, headers, _ = citizen()
    for body in (
        {"profile": "ca", "csr": _pem()},
        {"profile": "citizen-auth", "csr": _pem(), "subject": "CN=Evil"},
        {"profile": "citizen-auth"},
    ):
        response = client.post("/v1/me/certificates", json=body, headers=headers)
        assert response.status_code == 422


def test_a_generated_key_comes_back_once_in_pkcs12(client, citizen) -> None:
    _, headers, _ = citizen()
    response = client.post(
        "/v1/me/certificates/pkcs12",
        json={"profile": "citizen-auth", "passphrase": "twelve chars ok"},
        headers=headers,
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/x-pkcs12"
    assert response.headers["cache-control"] == "no-store"
    bundle = pkcs12.load_pkcs12(response.content, b"twelve chars ok")
    assert bundle.key is not None
    assert bundle.cert is not None
    short = client.post(
        "/v1/me/certificates/pkcs12",
        json={"profile": "citizen-auth", "passphrase": "short"},
        headers=headers,
    )
    assert short.status_code == 422


def test_enterprises_request_through_their_legal_representative_only(
    client, citizen, runtime
) -> None:
    representative, rep_headers, _ = citizen(level=2)
    _, other_headers, _ = citizen(level=2)
    with runtime.database.session() as session:
        enterprise = register_enterprise(
            session,
            NewEnterprise("测试有限公司", factories.credit_code(), representative.id),
            actor=Actor.system(),
        )
    url = f"/v1/enterprises/{enterprise.id}/certificates"
    body = {"profile": "enterprise-sign", "csr": _pem()}
    refused = client.post(url, json=body, headers=other_headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_legal_representative"
    issued = client.post(url, json=body, headers=rep_headers)
    assert issued.status_code == 201, issued.text
    assert issued.json()["enterprise_id"] == str(enterprise.id)
    assert (
        client.get(url, headers=rep_headers).json()["items"][0]["serial"] == issued.json()["serial"]
    )
    assert client.get(url, headers=other_headers).status_code == 403


def test_ca_officers_issue_for_anyone_eligible_and_search(client, staff, citizen) -> None:
    _, officer = staff("ca_officer")
    person, person_headers, _ = citizen()
    response = client.post(
        "/v1/certificates",
        json={"profile": "citizen-auth", "csr": _pem(), "person_id": str(person.id)},
        headers=officer,
    )
    assert response.status_code == 201, response.text
    serial = response.json()["serial"]
    found = client.get("/v1/certificates", params={"subject": str(person.id)}, headers=officer)
    assert [c["serial"] for c in found.json()["items"]] == [serial]
    # The citizen sees the officer's view of their certificate in their audit trail.
    assert client.get(f"/v1/certificates/{serial}", headers=person_headers).status_code == 200
    ambiguous = client.post(
        "/v1/certificates",
        json={"profile": "citizen-auth", "csr": _pem()},
        headers=officer,
    )
    assert ambiguous.status_code == 422
    assert ambiguous.json()["code"] == "subject_ambiguous"


def test_other_citizens_cannot_see_or_revoke_a_certificate(client, citizen) -> None:
    _, owner, _ = citizen()
    _, stranger, _ = citizen()
    serial = client.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": _pem()}, headers=owner
    ).json()["serial"]
    assert client.get(f"/v1/certificates/{serial}", headers=stranger).status_code == 403
    revoke = client.post(
        f"/v1/certificates/{serial}/revoke", json={"reason": "keyCompromise"}, headers=stranger
    )
    assert revoke.status_code == 403
    assert client.get("/v1/certificates", headers=stranger).status_code == 403


def test_revocation_reasons_depend_on_who_revokes(client, citizen, staff) -> None:
    _, owner, _ = citizen()
    _, officer = staff("ca_officer")

    def new_serial() -> str:
        return client.post(
            "/v1/me/certificates", json={"profile": "citizen-auth", "csr": _pem()}, headers=owner
        ).json()["serial"]

    serial = new_serial()
    staff_only = client.post(
        f"/v1/certificates/{serial}/revoke", json={"reason": "privilegeWithdrawn"}, headers=owner
    )
    assert staff_only.status_code == 403
    hold = client.post(
        f"/v1/certificates/{serial}/revoke", json={"reason": "certificateHold"}, headers=owner
    )
    assert hold.status_code == 422
    assert hold.json()["code"] == "revocation_reason_invalid"
    done = client.post(
        f"/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=owner
    )
    assert done.status_code == 200
    assert done.json()["revocation_reason"] == "superseded"
    again = client.post(f"/v1/certificates/{serial}/revoke", json={}, headers=owner)
    assert again.status_code == 409
    by_officer = client.post(
        f"/v1/certificates/{new_serial()}/revoke",
        json={"reason": "privilegeWithdrawn"},
        headers=officer,
    )
    assert by_officer.status_code == 200


def test_serials_are_accepted_as_openssl_prints_them(client, citizen) -> None:
    _, owner, _ = citizen()
    serial = client.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": _pem()}, headers=owner
    ).json()["serial"]
    padded = "0" * (len(serial) % 2) + serial
    colons = ":".join(padded[i : i + 2] for i in range(0, len(padded), 2)).upper()
    assert client.get(f"/v1/certificates/{colons}", headers=owner).json()["serial"] == serial
    assert client.get("/v1/certificates/xyz", headers=owner).status_code == 422


def test_the_dns_allow_list_is_kept_by_administrators(client, staff) -> None:
    _, admin = staff("admin")
    _, officer = staff("ca_officer")
    created = client.post(
        "/v1/admin/ca/dns-allowances", json={"pattern": "*.api-test.example"}, headers=admin
    )
    assert created.status_code == 201
    assert (
        client.post(
            "/v1/admin/ca/dns-allowances", json={"pattern": "*.x.example"}, headers=officer
        ).status_code
        == 403
    )
    duplicate = client.post(
        "/v1/admin/ca/dns-allowances", json={"pattern": "*.API-test.example"}, headers=admin
    )
    assert duplicate.status_code == 409
    issued = client.post(
        "/v1/certificates",
        json={"profile": "service-tls", "csr": _pem(), "dns_names": ["www.api-test.example"]},
        headers=officer,
    )
    assert issued.status_code == 201, issued.text
    assert issued.json()["dns_names"] == ["www.api-test.example"]
    allowance = created.json()["id"]
    assert (
        client.delete(f"/v1/admin/ca/dns-allowances/{allowance}", headers=admin).status_code == 204
    )
    refused = client.post(
        "/v1/certificates",
        json={"profile": "service-tls", "csr": _pem(), "dns_names": ["www.api-test.example"]},
        headers=officer,
    )
    assert refused.status_code == 403


# -- the public endpoints -----------------------------------------------------------------


def test_ca_certificates_and_crls_are_published_in_der_and_pem(client) -> None:
    authorities = client.get("/ca/authorities").json()
    assert {a["name"] for a in authorities} >= {"root", "citizen-1", "enterprise-1", "service-1"}
    root = x509.load_der_x509_certificate(client.get("/ca/root.crt").content)
    issuing = client.get("/ca/citizen-1.crt")
    assert issuing.headers["content-type"] == "application/pkix-cert"
    x509.load_der_x509_certificate(issuing.content).verify_directly_issued_by(root)
    pem = client.get("/ca/citizen-1.crt", params={"format": "pem"})
    assert pem.content.startswith(b"-----BEGIN CERTIFICATE-----")
    crl = client.get("/ca/citizen-1.crl")
    assert crl.headers["content-type"] == "application/pkix-crl"
    x509.load_der_x509_crl(crl.content)
    crl_pem = client.get("/ca/citizen-1.crl", headers={"Accept": "application/x-pem-file"})
    assert crl_pem.content.startswith(b"-----BEGIN X509 CRL-----")
    assert client.get("/ca/nobody.crl").status_code == 404


def _ocsp_request(client, owner) -> bytes:  # type: ignore[no-untyped-def]
    body = client.post(
        "/v1/me/certificates", json={"profile": "citizen-auth", "csr": _pem()}, headers=owner
    ).json()
    chain = x509.load_pem_x509_certificates(
        client.get(body["links"]["chain"], headers=owner).content
    )
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(chain[0], chain[1], hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


def test_ocsp_over_post_and_get(client, citizen) -> None:
    _, owner, _ = citizen()
    request = _ocsp_request(client, owner)
    for _ in range(2):  # cold (thread pool), then warm (the fast lane)
        post = client.post(
            "/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}
        )
        assert post.status_code == 200
        assert post.headers["content-type"] == "application/ocsp-response"
        answer = ocsp.load_der_ocsp_response(post.content)
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
        encoded = quote(base64.b64encode(request).decode(), safe="")
        get = client.get(f"/ocsp/{encoded}")
        assert get.status_code == 200
        assert ocsp.load_der_ocsp_response(get.content).certificate_status is (
            ocsp.OCSPCertStatus.GOOD
        )


@pytest.mark.parametrize(
    ("method", "path", "content", "content_type"),
    [
        ("POST", "/ocsp", b"garbage", "application/ocsp-request"),
        ("POST", "/ocsp", b"", "application/ocsp-request"),
        ("POST", "/ocsp", b"\x30\x00", "text/plain"),
        ("POST", "/ocsp", b"\x30" * 20_000, "application/ocsp-request"),
        ("GET", "/ocsp/not-base64!!", None, None),
        ("GET", "/ocsp/AAAA", None, None),
    ],
)
def test_malformed_ocsp_requests_get_malformed_request(
    client, method: str, path: str, content: bytes | None, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == 400
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
