"""Regenerates ``onecard_tokens.json``: one-card QR tokens made by python-cwt, not by onecard.

Run from the repository root, only when the vectors are meant to change::

    .venv/bin/python tests/vectors/cose/generate.py

The tests never run this: they read the committed file. ECDSA signatures are randomized, so
every run writes different token texts; the committed file is the known answer.

Independence: nothing here imports onecard. python-cwt (``cwt.COSE``) builds and signs each
COSE_Sign1 message (RFC 9052 §4.2, §4.4); the claims map is CBOR from cbor2 (python-cwt's own
CBOR library); the Base45 text (RFC 9285) and the RFC 7638 thumbprint are written out below in
a few lines, checked against the RFC's examples before anything is written. The layout follows
DESIGN.md §6 as ``onecard/card/token.py`` documents it: tag 18, protected ``{1: -7, 4: kid}``
with the first 8 bytes of the key's thumbprint as kid, claims 1, 4, 6, 7, -70001 and -70002.
The expected outcome of every vector is stated here from that description, never by asking
onecard.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSE, COSEKey, VerifyError

OUTPUT = Path(__file__).with_name("onecard_tokens.json")

# TEST KEY. Generated once for these vectors with cryptography's ec.generate_private_key and
# published here on purpose: it signs nothing but test vectors and must never be trusted.
TEST_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "dF8nxrWkARn0kRF6GOUs8ETXkR-bRzE-q0b-3QDCYFo",
    "y": "ViojiwQwDM4XBRGSn_LbAEMzwo-IAlcwATMzZy4_Pg4",
    "d": "08z2i-OHtcX6K8RswH87VMYyrXPZUo2HmBw2UuleXXs",
}
ISSUER = "https://onecard.example"
LEEWAY = 5  # seconds; onecard's MAX_LEEWAY, the offline verifier's default
ISSUED_AT = 1_900_000_000  # 2030-03-17T17:46:40Z
EXPIRES_AT = ISSUED_AT + 60
CTI = bytes.fromhex("5c0a3e91d2b74f6081a9c3e5f7012b4d")
CARD_REFERENCE = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
PURPOSE = "transit"

BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
PREFIX = "OC1:"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b45encode(data: bytes) -> str:
    """RFC 9285 §4: each two bytes n = a*256 + b as c + 45*d + 2025*e -> "cde"; a last
    single byte as c + 45*d -> "cd"."""
    out = []
    for start in range(0, len(data) - 1, 2):
        n = data[start] * 256 + data[start + 1]
        out += [BASE45_ALPHABET[n % 45], BASE45_ALPHABET[n // 45 % 45], BASE45_ALPHABET[n // 2025]]
    if len(data) % 2:
        out += [BASE45_ALPHABET[data[-1] % 45], BASE45_ALPHABET[data[-1] // 45]]
    return "".join(out)


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def claims(changes: dict[int, Any] | None = None) -> dict[int, Any]:
    """The claims map in the order RFC 8949 §4.2.1 (deterministic encoding) sorts it, with
    ``changes`` by claim label."""
    base = {
        1: ISSUER,
        4: EXPIRES_AT,
        6: ISSUED_AT,
        7: CTI,
        -70001: CARD_REFERENCE,
        -70002: PURPOSE,
    }
    return base | (changes or {})


def sign(payload: dict[int, Any], private_jwk: dict[str, str]) -> bytes:
    """A tagged COSE_Sign1 over ``payload``, signed by python-cwt, kid in the protected header."""
    key = COSEKey.from_jwk(private_jwk | {"alg": "ES256"})
    kid = b64url_decode(rfc7638_thumbprint(private_jwk))[:8]
    return COSE.new().encode_and_sign(
        cbor2.dumps(payload), key, protected={1: -7, 4: kid}, unprotected={}
    )


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


def with_parts(message: bytes, **parts: bytes) -> bytes:
    """``message`` re-encoded with some of its parts (protected, payload, signature) replaced."""
    protected, unprotected, payload, signature = cbor2.loads(message).value
    current = {"protected": protected, "payload": payload, "signature": signature}
    current |= parts
    return cbor2.dumps(
        cbor2.CBORTag(
            18, [current["protected"], unprotected, current["payload"], current["signature"]]
        )
    )


def qr(message: bytes) -> str:
    return PREFIX + b45encode(message)


def expected_claims(payload: dict[int, Any]) -> dict[str, Any]:
    return {
        "iss": payload[1],
        "iat": payload[6],
        "exp": payload[4],
        "cti": payload[7].hex(),
        "card_reference": payload[-70001].hex(),
        "purpose": payload[-70002],
    }


def vector(
    name: str,
    description: str,
    token: str,
    expected: str,
    *,
    verify_at: int = ISSUED_AT + 30,
    purpose: str = PURPOSE,
    payload: dict[int, Any] | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "description": description,
        "token": token,
        "verify_at": verify_at,
        "purpose": purpose,
        "expected": expected,
    }
    if expected == "valid":
        entry["claims"] = expected_claims(payload or claims())
    return entry


def check_base45() -> None:
    examples = {
        b"AB": "BB8",
        b"Hello!!": "%69 VD92EX0",
        b"base-45": "UJCLQE7W581",
        b"ietf!": "QED8WEX0",
    }
    for data, text in examples.items():
        assert b45encode(data) == text, (data, text)


def check_with_python_cwt(entries: list[dict[str, Any]]) -> None:
    """Every token that decodes signs correctly under the test key, except those meant not to."""
    key = COSEKey.new(  # RFC 9053 §7.1.1: EC2, P-256, ES256, with the tokens' 8-byte kid
        {
            1: 2,
            2: b64url_decode(rfc7638_thumbprint(TEST_KEY))[:8],
            3: -7,
            -1: 1,
            -2: b64url_decode(TEST_KEY["x"]),
            -3: b64url_decode(TEST_KEY["y"]),
        }
    )
    for entry in entries:
        if entry["expected"] in {
            "invalid:bad_encoding",
            "invalid:malformed",
            "invalid:unknown_kid",
        }:
            continue
        raw = base45_decode_for_check(entry["token"].removeprefix(PREFIX))
        message = cbor2.loads(raw)
        if message.tag == 61:  # RFC 8392 §6: the optional CWT tag
            message = message.value
        cose = cbor2.dumps(message)
        if entry["expected"] == "invalid:bad_signature":
            try:
                COSE.new().decode(cose, key)
            except VerifyError:
                continue
            raise AssertionError(f"{entry['name']}: python-cwt accepted the signature")
        COSE.new().decode(cose, key)


def base45_decode_for_check(text: str) -> bytes:
    values = [BASE45_ALPHABET.index(char) for char in text]
    out = bytearray()
    for start in range(0, len(values), 3):
        group = values[start : start + 3]
        number = sum(value * 45**power for power, value in enumerate(group))
        out += number.to_bytes(len(group) - 1, "big")
    return bytes(out)


def build() -> dict[str, Any]:
    check_base45()
    as_issued = sign(claims(), TEST_KEY)
    token = qr(as_issued)
    reordered = dict(reversed(list(claims().items())))
    stranger = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    stranger_jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(stranger.public_numbers.x.to_bytes(32, "big")),
        "y": b64url(stranger.public_numbers.y.to_bytes(32, "big")),
        "d": b64url(stranger.private_value.to_bytes(32, "big")),
    }
    _, _, payload, signature = cbor2.loads(as_issued).value
    cti_at = payload.index(CTI)
    cut = len(token) - 1  # the longest proper prefix whose Base45 part has 3k+1 characters
    while (cut - len(PREFIX)) % 3 != 1:
        cut -= 1
    entries = [
        vector(
            "valid",
            "laid out as onecard issues: claims in deterministic order",
            token,
            "valid",
        ),
        vector(
            "valid_claims_in_another_order",
            "the same claims, map entries in reverse order (a CBOR map's order carries no meaning)",
            qr(sign(reordered, TEST_KEY)),
            "valid",
            payload=reordered,
        ),
        vector(
            "valid_inside_cwt_tag",
            "the COSE_Sign1 wrapped in the optional CWT tag 61 (RFC 8392 §6)",
            PREFIX + b45encode(cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(as_issued)))),
            "valid",
        ),
        vector(
            "valid_at_last_second",
            f"verified at exp + {LEEWAY} s leeway - 1 s",
            token,
            "valid",
            verify_at=EXPIRES_AT + LEEWAY - 1,
        ),
        vector(
            "valid_at_earliest_second",
            f"verified at iat - {LEEWAY} s leeway",
            token,
            "valid",
            verify_at=ISSUED_AT - LEEWAY,
        ),
        vector(
            "expired",
            f"verified at exp + {LEEWAY} s leeway",
            token,
            "invalid:expired",
            verify_at=EXPIRES_AT + LEEWAY,
        ),
        vector(
            "not_yet_valid",
            f"verified at iat - {LEEWAY} s leeway - 1 s",
            token,
            "invalid:not_yet_valid",
            verify_at=ISSUED_AT - LEEWAY - 1,
        ),
        vector(
            "wrong_purpose",
            "a transit code shown at a bank counter",
            token,
            "invalid:wrong_purpose",
            purpose="bank",
        ),
        vector(
            "wrong_issuer",
            "correctly signed by the listed key, but iss names another service",
            qr(sign(claims({1: "https://elsewhere.example"}), TEST_KEY)),
            "invalid:wrong_issuer",
        ),
        vector(
            "tampered_payload",
            "the valid token with one bit of the cti's first byte flipped after signing",
            qr(with_parts(as_issued, payload=flip(payload, cti_at))),
            "invalid:bad_signature",
        ),
        vector(
            "tampered_signature",
            "the valid token with one bit of the signature's last byte flipped",
            qr(with_parts(as_issued, signature=flip(signature, len(signature) - 1))),
            "invalid:bad_signature",
        ),
        vector(
            "unknown_kid",
            "signed by a throwaway key (not recorded) that the trust list does not hold",
            qr(sign(claims(), stranger_jwk)),
            "invalid:unknown_kid",
        ),
        vector(
            "truncated_by_one_group",
            "the valid token without its last three Base45 characters (two bytes)",
            token[:-3],
            "invalid:malformed",
        ),
        vector(
            "truncated_to_3k_plus_1",
            "the valid token cut to 3k+1 Base45 characters, a length no encoding has",
            token[:cut],
            "invalid:bad_encoding",
        ),
    ]
    check_with_python_cwt(entries)
    return {
        "description": (
            "One-card QR tokens (OC1: + Base45 of a COSE_Sign1 CWT, ES256) signed by python-cwt "
            "with the test key below; see tests/vectors/README.md. Verify each at verify_at "
            "(seconds since the epoch) for purpose, with a trust list holding only the test "
            "key's public JWK and naming issuer."
        ),
        "generator": (
            f"tests/vectors/cose/generate.py with cwt {version('cwt')}, cbor2 {version('cbor2')}"
        ),
        "test_key_warning": "TEST KEY, published on purpose: never trust it for anything real",
        "test_key": TEST_KEY | {"kid": rfc7638_thumbprint(TEST_KEY), "alg": "ES256"},
        "issuer": ISSUER,
        "leeway_seconds": LEEWAY,
        "vectors": entries,
    }


def main() -> None:
    OUTPUT.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
