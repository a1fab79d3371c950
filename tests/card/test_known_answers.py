"""Known answers for the card QR token format, read from ``tests/vectors/cose/`` (where each
came from: ``tests/vectors/README.md``). RFC 9285's Base45 examples both ways; RFC 8392's
example signed CWT against our Sig_structure and ES256 check; and one-card tokens signed by
python-cwt, each verified by the offline verifier at its recorded time. Nothing here
regenerates a vector: the committed files are the answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from onecard.card.base45 import (
    Base45ValueOutOfRange,
    InvalidBase45Character,
    InvalidBase45Length,
    b45decode,
    b45encode,
)
from onecard.card.purpose import Purpose
from onecard.card.token import CardClaims, parse_token, sig_structure
from onecard.card.trustlist import TRUST_LIST_TYP, TrustList
from onecard.card.verify import InvalidCard, InvalidCardReason, OfflineVerifier, der_signature
from onecard.core.jose import LocalSigner, b64url_decode, public_jwk, sign_compact, thumbprint
from tests.card.qr_support import qr_text

VECTORS = Path(__file__).parents[1] / "vectors" / "cose"


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


BASE45 = _load("base45.json")
RFC8392 = _load("rfc8392_a3.json")
TOKENS = _load("onecard_tokens.json")


# -- RFC 9285: Base45 -----------------------------------------------------------------------

_BASE45_REFUSALS = {
    "out_of_range": Base45ValueOutOfRange,
    "bad_length": InvalidBase45Length,
    "bad_character": InvalidBase45Character,
}


@pytest.mark.parametrize("vector", BASE45["encodings"], ids=lambda vector: repr(vector["text"]))
def test_base45_known_encodings_both_ways(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["bytes_hex"])
    assert b45encode(data) == vector["text"]
    assert b45decode(vector["text"]) == data


@pytest.mark.parametrize("vector", BASE45["refused"], ids=lambda vector: repr(vector["text"]))
def test_base45_texts_a_decoder_must_refuse(vector: dict[str, str]) -> None:
    with pytest.raises(_BASE45_REFUSALS[vector["error"]]):
        b45decode(vector["text"])


# -- RFC 8392 A.3: an example signed CWT, against our Sig_structure ------------------------

_ES256 = ec.ECDSA(hashes.SHA256())
_COSE_SIGN1_PARTS = ("protected", "unprotected", "payload", "signature")


def _rfc8392_parts() -> dict[str, Any]:
    message = cbor2.loads(bytes.fromhex(RFC8392["signed_cwt_hex"]))
    assert message.tag == 18
    return dict(zip(_COSE_SIGN1_PARTS, message.value, strict=True))


def _rfc8392_public_key() -> ec.EllipticCurvePublicKey:
    key = RFC8392["key"]
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(bytes.fromhex(key["x_hex"]), "big"),
        int.from_bytes(bytes.fromhex(key["y_hex"]), "big"),
        ec.SECP256R1(),
    ).public_key()


def _verify_es256(public_key: ec.EllipticCurvePublicKey, parts: dict[str, Any]) -> None:
    """The signature check of :meth:`OfflineVerifier.verify`: raw r || s (RFC 9053 §2.1) over
    our Sig_structure (RFC 9052 §4.4). It raises InvalidSignature when it fails."""
    signature = parts["signature"]
    der = der_signature(signature)  # what OfflineVerifier.verify hands to cryptography
    public_key.verify(der, sig_structure(parts["protected"], parts["payload"]), _ES256)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


def test_rfc8392_a2_3_key_is_one_p256_key_pair() -> None:
    key = RFC8392["key"]
    cose_key = cbor2.loads(bytes.fromhex(RFC8392["cose_key_hex"]))
    assert cose_key == {
        1: 2,  # kty: EC2
        2: key["kid"].encode(),
        3: -7,  # alg: ES256
        -1: 1,  # crv: P-256
        -2: bytes.fromhex(key["x_hex"]),
        -3: bytes.fromhex(key["y_hex"]),
        -4: bytes.fromhex(key["d_hex"]),
    }
    private = ec.derive_private_key(int.from_bytes(cose_key[-4], "big"), ec.SECP256R1())
    assert private.public_key() == _rfc8392_public_key()


def test_rfc8392_a3_example_is_the_published_cwt() -> None:
    parts = _rfc8392_parts()
    claims = RFC8392["claims"]
    assert parts["protected"] == bytes.fromhex(RFC8392["protected_hex"])
    assert parts["unprotected"] == {4: RFC8392["key"]["kid"].encode()}
    assert cbor2.loads(parts["payload"]) == {
        1: claims["iss"],
        2: claims["sub"],
        3: claims["aud"],
        4: claims["exp"],
        5: claims["nbf"],
        6: claims["iat"],
        7: bytes.fromhex(claims["cti_hex"]),
    }


def test_rfc8392_a3_signature_verifies_over_our_sig_structure() -> None:
    parts = _rfc8392_parts()
    signed = sig_structure(parts["protected"], parts["payload"])
    assert signed == cbor2.dumps(["Signature1", parts["protected"], b"", parts["payload"]])
    _verify_es256(_rfc8392_public_key(), parts)  # raises if the example does not verify


@pytest.mark.parametrize(
    "change",
    RFC8392["signed_byte_changes"],
    ids=lambda change: f"{change['part']}[{change['index']}]",
)
def test_rfc8392_a3_with_one_signed_byte_changed_is_refused(change: dict[str, Any]) -> None:
    parts = _rfc8392_parts()
    parts[change["part"]] = _flip(parts[change["part"]], change["index"])
    with pytest.raises(InvalidSignature):
        _verify_es256(_rfc8392_public_key(), parts)


@pytest.mark.parametrize(
    "change",
    RFC8392["unsigned_byte_changes"],
    ids=lambda change: f"{change['part']}[{change['index']}]",
)
def test_rfc8392_a3_unprotected_kid_is_outside_the_signature(change: dict[str, Any]) -> None:
    assert change["part"] == "unprotected_kid"
    parts = _rfc8392_parts()
    kid = parts["unprotected"][4]
    parts["unprotected"] = {4: _flip(kid, change["index"])}
    assert parts["unprotected"][4] != kid
    _verify_es256(_rfc8392_public_key(), parts)  # still verifies: nothing signed changed


def test_rfc8392_a3_is_refused_by_our_parser_for_its_unprotected_kid() -> None:
    """DESIGN §6 wants the kid protected; the RFC example keeps it unprotected (and carries no
    onecard claims), so onecard refuses it as a card code before any key is looked up."""
    with pytest.raises(InvalidCard) as refused:
        parse_token(qr_text(bytes.fromhex(RFC8392["signed_cwt_hex"])))
    assert refused.value.reason is InvalidCardReason.MALFORMED


# -- onecard tokens signed by python-cwt ------------------------------------------------------


@pytest.fixture(scope="module")
def test_key_trust_list() -> TrustList:
    """A trust list naming the vectors' issuer and holding only the recorded test key, loaded
    the way a terminal loads one. Its own signing key is made here: the list's signature is
    not what these vectors test."""
    test_key = TOKENS["test_key"]
    card_jwk = {name: test_key[name] for name in ("kty", "crv", "x", "y", "kid", "alg")}
    list_key = ec.generate_private_key(ec.SECP256R1())
    list_jwk = public_jwk(list_key) | {"alg": "ES256", "use": "sig"}
    list_jwk["kid"] = thumbprint(list_jwk)
    issued_at = min(vector["verify_at"] for vector in TOKENS["vectors"])
    payload = {
        "iss": TOKENS["issuer"],
        "iat": issued_at,
        "next_update": issued_at + 3600,
        "keys": [card_jwk],
        "inactive": [],
    }
    jws = sign_compact(LocalSigner(list_jwk["kid"], "ES256", list_key), payload, typ=TRUST_LIST_TYP)
    now = datetime.fromtimestamp(issued_at, UTC)
    return TrustList.from_jws(jws, {"keys": [list_jwk]}, now=now)


def test_the_recorded_test_key_is_one_key_pair() -> None:
    test_key = TOKENS["test_key"]
    private = ec.derive_private_key(
        int.from_bytes(b64url_decode(test_key["d"]), "big"), ec.SECP256R1()
    )
    assert public_jwk(private) == {name: test_key[name] for name in ("kty", "crv", "x", "y")}
    assert test_key["kid"] == thumbprint(test_key)


def _verifier_at(trust_list: TrustList, seconds: int) -> OfflineVerifier:
    """A fresh verifier (no codes seen yet) whose clock stands at ``seconds``."""
    return OfflineVerifier(
        trust_list,
        leeway=timedelta(seconds=TOKENS["leeway_seconds"]),
        clock=lambda: float(seconds),
    )


@pytest.mark.parametrize("vector", TOKENS["vectors"], ids=lambda vector: vector["name"])
def test_onecard_token_vector(test_key_trust_list: TrustList, vector: dict[str, Any]) -> None:
    verifier = _verifier_at(test_key_trust_list, vector["verify_at"])
    purpose = Purpose(vector["purpose"])
    if vector["expected"] == "valid":
        verified = verifier.verify(vector["token"], purpose=purpose)
        claims = vector["claims"]
        assert verified.claims == CardClaims(
            issuer=claims["iss"],
            card_reference=bytes.fromhex(claims["card_reference"]),
            purpose=Purpose(claims["purpose"]),
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            cti=bytes.fromhex(claims["cti"]),
        )
        assert verified.kid == TOKENS["test_key"]["kid"]
        return
    outcome, _, reason = vector["expected"].partition(":")
    assert outcome == "invalid", f"unknown expected outcome {vector['expected']!r}"
    with pytest.raises(InvalidCard) as refused:
        verifier.verify(vector["token"], purpose=purpose)
    assert refused.value.reason is InvalidCardReason(reason)


# -- the files themselves ------------------------------------------------------------------


def test_every_vector_file_holds_what_its_readme_promises() -> None:
    """Guards the parametrized tests below: an emptied or trimmed file would make them pass
    by running nothing (pytest skips an empty parameter set)."""
    texts = {vector["text"] for vector in BASE45["encodings"]}
    assert {"BB8", "%69 VD92EX0", "UJCLQE7W581", "QED8WEX0", "FGW"} <= texts
    assert "GGW" in {vector["text"] for vector in BASE45["refused"]}
    assert {error["error"] for error in BASE45["refused"]} == set(_BASE45_REFUSALS)
    assert {change["part"] for change in RFC8392["signed_byte_changes"]} == {
        "protected",
        "payload",
        "signature",
    }
    names = [vector["name"] for vector in TOKENS["vectors"]]
    assert len(names) == len(set(names))
    assert {vector["expected"] for vector in TOKENS["vectors"]} == {
        "valid",
        "invalid:bad_signature",
        "invalid:unknown_kid",
        "invalid:expired",
        "invalid:not_yet_valid",
        "invalid:wrong_purpose",
        "invalid:wrong_issuer",
        "invalid:malformed",
        "invalid:bad_encoding",
    }
