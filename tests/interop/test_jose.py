"""Our JWS signatures and published JWKS, checked by implementations we did not write: pyjwt
(key set from the HTTP endpoint) and the openssl command line (signature over the raw signing
input, with the public key converted from the JWK by pyjwt)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from onecard.core.jose import sign_compact


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def signed(runtime):
    def sign(alg: str) -> str:
        now = int(time.time())
        with runtime.database.session() as session:
            signer = runtime.keyring.signer(session, "token", alg)
        claims = {
            "iss": "http://testserver",
            "sub": "s",
            "aud": "portal",
            "iat": now,
            "exp": now + 60,
        }
        return sign_compact(signer, claims, typ="JWT")

    return sign


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_pyjwt_verifies_tokens_against_the_published_jwks(client, signed, alg: str) -> None:
    token = signed(alg)
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = jwt.PyJWKSet.from_dict(response.json())
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in keys.keys if k.key_id == kid]
    claims = jwt.decode(token, key=key, algorithms=[alg], audience="portal")
    assert claims["sub"] == "s"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_openssl_verifies_the_signature(client, signed, alg: str, tmp_path: Path) -> None:
    token = signed(alg)
    header_b64, payload_b64, signature_b64 = token.split(".")
    jwk = next(
        k
        for k in client.get("/.well-known/jwks.json").json()["keys"]
        if k["kid"] == jwt.get_unverified_header(token)["kid"]
    )
    public_key = jwt.PyJWK(jwk).key
    (tmp_path / "key.pem").write_bytes(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "input").write_bytes(f"{header_b64}.{payload_b64}".encode())
    signature = _b64decode(signature_b64)
    if alg == "ES256":  # JOSE carries raw r||s; openssl wants DER
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        signature = encode_dss_signature(r, s)
    (tmp_path / "sig").write_bytes(signature)
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", "key.pem", "-signature", "sig", "input"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Verified OK" in result.stdout
