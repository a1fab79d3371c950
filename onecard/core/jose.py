"""Minimal JWS (RFC 7515) compact signing over a :class:`Signer`, and RFC 7638 thumbprints.

Signing goes through the :class:`Signer` protocol (``sign(bytes) -> bytes`` in JOSE form)
rather than handing a private key object to a library, so a PKCS#11/HSM signer can replace the
keyring's in-process keys later. Verification is pyjwt's, against published JWKs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_EC_CURVES = {"ES256": (ec.SECP256R1(), "P-256", 32), "ES384": (ec.SECP384R1(), "P-384", 48)}


class Signer(Protocol):
    """Something that signs with a private key it may not reveal (keyring now, HSM later)."""

    kid: str
    alg: str

    def sign(self, message: bytes) -> bytes:
        """The signature in JOSE form (PKCS#1 v1.5 for RS*, raw r||s for ES*)."""
        ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int, length: int | None = None) -> str:
    size = length or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


def public_jwk(private_key: PrivateKey) -> dict[str, str]:
    """The public JWK (RFC 7517) of ``private_key``, without ``kid``/``alg``/``use``."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        numbers = private_key.public_key().public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    curve_name = {"secp256r1": "P-256", "secp384r1": "P-384"}[private_key.curve.name]
    size = (private_key.curve.key_size + 7) // 8
    point = private_key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": curve_name,
        "x": _int_b64(point.x, size),
        "y": _int_b64(point.y, size),
    }


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the required members, sorted, compact."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[alg][0])
    raise ValueError(f"unsupported signing algorithm {alg}")


class LocalSigner:
    """A :class:`Signer` holding the private key in process memory."""

    def __init__(self, kid: str, alg: str, private_key: PrivateKey) -> None:
        self.kid, self.alg, self._key = kid, alg, private_key
        if alg in _EC_CURVES:
            digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
            self._ecdsa = ec.ECDSA(digest)
            self._size = _EC_CURVES[alg][2]

    def __repr__(self) -> str:
        return f"LocalSigner(kid={self.kid!r}, alg={self.alg!r})"

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self._key.sign(message, self._ecdsa))
        return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")


@lru_cache(maxsize=256)
def _encoded_header(alg: str, kid: str, typ: str | None) -> str:
    header: dict[str, str] = {"alg": alg, "kid": kid}
    if typ:
        header["typ"] = typ
    return b64url(json.dumps(header, separators=(",", ":")).encode())


def sign_compact(signer: Signer, payload: dict[str, Any], *, typ: str | None = None) -> str:
    """A JWS compact serialisation of the JSON ``payload`` with ``alg`` and ``kid`` set."""
    encoded_payload = b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{_encoded_header(signer.alg, signer.kid, typ)}.{encoded_payload}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"
