"""Card QR tokens against an implementation we did not write: python-cwt (COSE, RFC 9052, and
CWT, RFC 8392). Our tokens verify there with the key as the trust list publishes it, and a
token python-cwt signs with our card key passes our offline verifier."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime

import cbor2
import cwt
import pytest
from cryptography.hazmat.primitives import serialization
from cwt import COSE, COSEKey
from sqlmodel import select

from onecard.card.base45 import b45decode, b45encode
from onecard.card.purpose import Purpose
from onecard.card.token import issue_token
from onecard.card.verify import InvalidCard, InvalidCardReason, OfflineVerifier
from onecard.core.keyring import SigningKey
from tests.card.qr_support import card_signer, trust_list


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now_trust_list(runtime):  # type: ignore[no-untyped-def]
    return trust_list(runtime, now=datetime.now(UTC))


def _cose_public_key(jwk: dict) -> COSEKey:
    """The trust list's JWK as a COSE_Key (RFC 9052 §7; EC2 parameters, RFC 9053 §7.1.1),
    with the short kid our tokens carry: the thumbprint's first 8 bytes."""
    return COSEKey.new(
        {
            1: 2,  # kty: EC2
            2: _b64(jwk["kid"])[:8],
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: _b64(jwk["x"]),
            -3: _b64(jwk["y"]),
        }
    )


def _cose_private_key(runtime, kid: str) -> COSEKey:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        row = session.exec(select(SigningKey).where(SigningKey.kid == kid)).one()
    der = runtime.sealer.open(
        row.private_key, table="signing_key", column="private_key", row_id=kid
    )
    pem = serialization.load_der_private_key(der, password=None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return COSEKey.from_pem(pem, alg="ES256", kid=_b64(kid)[:8])


def test_python_cwt_verifies_our_token_with_the_trust_list_key(runtime) -> None:
    trust = _now_trust_list(runtime)
    signer = card_signer(runtime)
    (jwk,) = [key.jwk for key in trust.keys.values() if key.kid == signer.kid]
    reference = secrets.token_bytes(16)
    text = issue_token(
        signer,
        issuer=trust.issuer,
        card_reference=reference,
        purpose=Purpose.BANK,
        now=datetime.now(UTC),
    )

    claims = cwt.decode(b45decode(text.removeprefix("OC1:")), _cose_public_key(dict(jwk)))

    assert claims[1] == trust.issuer
    assert claims[4] - claims[6] == 60
    assert abs(claims[6] - time.time()) < 5
    assert len(claims[7]) == 16
    assert claims[-70001] == reference
    assert claims[-70002] == "bank"


def test_python_cwt_refuses_our_token_under_another_key(runtime) -> None:
    trust = _now_trust_list(runtime)
    signer = card_signer(runtime)
    (jwk,) = [key.jwk for key in trust.keys.values() if key.kid == signer.kid]
    other = next(key.jwk for key in trust.keys.values() if key.kid != signer.kid)
    text = issue_token(
        signer,
        issuer=trust.issuer,
        card_reference=secrets.token_bytes(16),
        purpose=Purpose.BANK,
        now=datetime.now(UTC),
    )
    impostor = _cose_public_key(dict(other) | {"kid": jwk["kid"]})  # right kid, wrong key
    with pytest.raises(cwt.VerifyError):
        cwt.decode(b45decode(text.removeprefix("OC1:")), impostor)


def test_a_token_signed_by_python_cwt_with_our_key_passes_our_verifier(runtime) -> None:
    trust = _now_trust_list(runtime)
    signer = card_signer(runtime)
    key = _cose_private_key(runtime, signer.kid)
    now = int(time.time())
    reference = secrets.token_bytes(16)
    claims = {
        1: trust.issuer,
        4: now + 60,
        6: now,
        7: secrets.token_bytes(16),
        -70001: reference,
        -70002: "social_security",
    }
    message = COSE.new().encode_and_sign(
        cbor2.dumps(claims), key, protected={1: -7, 4: _b64(signer.kid)[:8]}, unprotected={}
    )

    verified = OfflineVerifier(trust).verify(
        "OC1:" + b45encode(message), purpose=Purpose.SOCIAL_SECURITY
    )

    assert verified.card_reference == reference
    assert verified.kid == signer.kid
    assert verified.cti == claims[7]


def test_a_kid_outside_the_protected_header_is_refused(runtime) -> None:
    """python-cwt's own CWT encoder puts the kid in the unprotected header; DESIGN §6 wants
    it protected (covered by the signature), so such a token is malformed here."""
    trust = _now_trust_list(runtime)
    key = _cose_private_key(runtime, card_signer(runtime).kid)
    now = int(time.time())
    claims = {
        1: trust.issuer,
        4: now + 60,
        6: now,
        7: secrets.token_bytes(16),
        -70001: secrets.token_bytes(16),
        -70002: "transit",
    }
    message = cwt.encode(claims, key)
    assert cbor2.loads(message).value[1] == {4: _b64(card_signer(runtime).kid)[:8]}
    with pytest.raises(InvalidCard) as refused:
        OfflineVerifier(trust).verify("OC1:" + b45encode(message), purpose=Purpose.TRANSIT)
    assert refused.value.reason is InvalidCardReason.MALFORMED
