"""The QR token format (DESIGN.md §6): a COSE_Sign1 CWT with ES256 and a short kid, Base45
behind ``OC1:``; what issuing refuses, and what parsing calls malformed."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

import cbor2
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from onecard.card import token as token_module
from onecard.card.base45 import b45decode
from onecard.card.purpose import Purpose
from onecard.card.token import (
    MAX_TOKEN_LENGTH,
    CardClaims,
    InvalidCard,
    InvalidCardReason,
    cose_kid,
    issue_token,
    parse_claims,
    parse_token,
    sig_structure,
)
from onecard.core.jose import LocalSigner
from tests.card import qr_support
from tests.card.qr_support import NOW, T0, card_signer, claims, token


def _message(text: str) -> cbor2.CBORTag:
    assert text.startswith("OC1:")
    return cbor2.loads(b45decode(text[4:]))


def test_token_is_a_tagged_cose_sign1_cwt_with_es256_and_a_short_kid(runtime) -> None:
    signer = card_signer(runtime)
    reference = secrets.token_bytes(16)
    text = token(runtime, reference=reference, purpose=Purpose.BANK, lifetime=timedelta(seconds=30))

    message = _message(text)
    assert message.tag == 18
    protected, unprotected, payload, signature = message.value
    kid = base64.urlsafe_b64decode(signer.kid + "=")[:8]
    assert cbor2.loads(protected) == {1: -7, 4: kid}
    assert unprotected == {}
    decoded = cbor2.loads(payload)
    assert decoded[1] == runtime.settings.issuer
    assert decoded[6] == T0
    assert decoded[4] == T0 + 30
    assert len(decoded[7]) == 16
    assert decoded[-70001] == reference
    assert decoded[-70002] == "bank"
    assert set(decoded) == {1, 4, 6, 7, -70001, -70002}
    assert len(signature) == 64


def test_signature_covers_the_sig_structure(runtime) -> None:
    text = token(runtime)
    protected, _, payload, signature = _message(text).value
    with runtime.database.session() as session:
        jwk = runtime.keyring.public_jwk(session, card_signer(runtime).kid)
    public_key = jwt.PyJWK(jwk).key
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public_key.verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))


def test_a_token_is_small_and_alphanumeric(runtime) -> None:
    text = token(runtime)
    assert len(text) < MAX_TOKEN_LENGTH // 3
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def test_every_token_has_its_own_cti(runtime) -> None:
    ctis = {cbor2.loads(_message(token(runtime)).value[2])[7] for _ in range(20)}
    assert len(ctis) == 20


@pytest.mark.parametrize("seconds", [0, -1, 61, 0.5, 60.5, 3600])
def test_lifetime_must_be_1_to_60_seconds(runtime, seconds: float) -> None:
    with pytest.raises(ValueError, match="1 to 60"):
        token(runtime, lifetime=timedelta(seconds=seconds))


def test_issuing_refuses_bad_arguments(runtime) -> None:
    signer = card_signer(runtime)
    good = {
        "issuer": "https://onecard.example",
        "card_reference": secrets.token_bytes(16),
        "purpose": Purpose.TRANSIT,
        "now": NOW,
    }
    assert issue_token(signer, **good).startswith("OC1:")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 bytes"):
        issue_token(signer, **{**good, "card_reference": b"short"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        issue_token(signer, **{**good, "card_reference": "0" * 16})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parking"):
        issue_token(signer, **{**good, "purpose": "parking"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="issuer"):
        issue_token(signer, **{**good, "issuer": ""})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        issue_token(signer, **{**good, "now": datetime(2030, 1, 1)})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        issue_token(signer, **good, lifetime=60)  # type: ignore[arg-type]
    rsa = LocalSigner(signer.kid, "RS256", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ES256"):
        issue_token(rsa, **good)  # type: ignore[arg-type]


def test_purpose_given_as_its_text_is_accepted(runtime) -> None:
    text = token(runtime, purpose="social_security")  # type: ignore[arg-type]
    assert cbor2.loads(_message(text).value[2])[-70002] == "social_security"


def test_cose_kid_is_the_first_8_bytes_of_the_thumbprint() -> None:
    kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # RFC 7638 §3.1
    assert cose_kid(kid) == base64.urlsafe_b64decode(kid + "=")[:8]
    with pytest.raises(ValueError, match="thumbprint"):
        cose_kid("c2hvcnQ")


@given(st.binary(max_size=300), st.binary(max_size=70_000))
def test_sig_structure_is_the_cbor_of_the_rfc_9052_array(protected: bytes, payload: bytes) -> None:
    assert sig_structure(protected, payload) == cbor2.dumps(["Signature1", protected, b"", payload])


def test_parse_token_returns_the_signed_parts(runtime) -> None:
    signer = card_signer(runtime)
    parsed = parse_token(token(runtime))
    assert parsed.kid == cose_kid(signer.kid)
    assert parsed.signed_bytes() == sig_structure(parsed.protected, parsed.payload)
    assert parse_claims(parsed.payload).purpose is Purpose.TRANSIT


def test_a_cwt_tag_around_the_cose_message_is_accepted(runtime) -> None:
    signer = card_signer(runtime)
    inner = cbor2.loads(qr_support.cose_sign1(signer, cbor2.dumps(claims("x"))))
    text = qr_support.qr_text(cbor2.dumps(cbor2.CBORTag(61, inner)))
    assert parse_token(text).kid == cose_kid(signer.kid)


@pytest.mark.parametrize(
    "changes",
    [
        {1: None},
        {1: ""},
        {1: b"https://bytes"},
        {6: None},
        {6: True},
        {6: float(T0)},
        {6: -1},
        {4: None},
        {4: T0 + 61},
        {4: T0},
        {4: T0 - 1},
        {7: None},
        {7: b"short"},
        {7: "0123456789abcdef"},
        {-70001: None},
        {-70001: bytes(17)},
        {-70002: None},
        {-70002: "parking"},
        {-70002: ["transit"]},
    ],
    ids=repr,
)
def test_missing_or_mistyped_claims_are_malformed(changes: dict) -> None:
    with pytest.raises(InvalidCard) as refused:
        parse_claims(cbor2.dumps(claims("https://onecard.example", changes)))
    assert refused.value.reason is InvalidCardReason.MALFORMED


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xa0", cbor2.dumps([1, 2]), cbor2.dumps(claims("i")) + b"\x00", b"\xff"],
    ids=["empty", "empty map", "array", "trailing byte", "break"],
)
def test_claims_that_are_not_one_cbor_map_are_malformed(payload: bytes) -> None:
    with pytest.raises(InvalidCard) as refused:
        parse_claims(payload)
    assert refused.value.reason is InvalidCardReason.MALFORMED


def test_claims_value_checks_its_fields() -> None:
    good = {
        "issuer": "i",
        "card_reference": bytes(16),
        "purpose": Purpose.BANK,
        "issued_at": T0,
        "expires_at": T0 + 60,
        "cti": bytes(16),
    }
    assert CardClaims(**good).purpose is Purpose.BANK  # type: ignore[arg-type]
    for change, error in [
        ({"purpose": "bank"}, TypeError),
        ({"expires_at": T0 + 61}, ValueError),
        ({"issued_at": T0 + 0.5}, TypeError),
        ({"cti": bytes(15)}, ValueError),
    ]:
        with pytest.raises(error):
            CardClaims(**{**good, **change})  # type: ignore[arg-type]


# -- the fast paths for codes laid out as issued --------------------------------------------

claims_values = st.builds(
    lambda issuer, reference, purpose, iat, lifetime, cti: CardClaims(
        issuer, reference, purpose, iat, iat + lifetime, cti
    ),
    st.text(min_size=1, max_size=300),
    st.binary(min_size=16, max_size=16),
    st.sampled_from(Purpose),
    st.integers(min_value=0, max_value=2**40),  # past 2106: exp and iat need 8 bytes
    st.integers(min_value=1, max_value=60),
    st.binary(min_size=16, max_size=16),
)


def _claims_by_cbor2(payload: bytes) -> CardClaims:
    decoded = cbor2.loads(payload)
    return CardClaims(
        decoded[1], decoded[-70001], Purpose(decoded[-70002]), decoded[6], decoded[4], decoded[7]
    )


@given(claims_values)
def test_claims_round_trip_and_the_fast_path_agrees_with_cbor2(claims_value: CardClaims) -> None:
    payload = claims_value.to_cbor()
    assert cbor2.dumps(cbor2.loads(payload), canonical=True) == payload
    assert parse_claims(payload) == claims_value == _claims_by_cbor2(payload)
    as_issued = token_module._claims_as_issued(payload)
    assert as_issued in (None, claims_value)
    four_byte_times = claims_value.issued_at >= 2**16 and claims_value.expires_at < 2**32
    if len(claims_value.issuer.encode()) < 256 and four_byte_times:
        # The layout of every real code: times from 1970-01-01T18:12Z to 2106.
        assert as_issued == claims_value


@given(claims_values, st.data())
def test_the_claims_fast_path_never_disagrees_with_cbor2_on_changed_bytes(
    claims_value: CardClaims, data: st.DataObject
) -> None:
    payload = bytearray(claims_value.to_cbor())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        position = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        payload[position] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        as_issued = token_module._claims_as_issued(bytes(payload))
    except (TypeError, ValueError):
        as_issued = None  # CardClaims refused what was extracted: parse_claims says malformed
    if as_issued is not None:
        assert as_issued == _claims_by_cbor2(bytes(payload))


@given(st.binary(min_size=13, max_size=13), st.binary(max_size=300), st.data())
def test_the_cose_fast_path_never_disagrees_with_cbor2(
    protected: bytes, payload: bytes, data: st.DataObject
) -> None:
    raw = bytearray(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, bytes(range(64))])))
    if data.draw(st.booleans()):
        position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[position] = data.draw(st.integers(min_value=0, max_value=255))
    parts = token_module._split_as_issued(bytes(raw))
    if 24 <= len(payload) < 256 and parts is None:
        assert bytes(raw) != cbor2.dumps(
            cbor2.CBORTag(18, [protected, {}, payload, bytes(range(64))])
        )
    if parts is not None:
        message = token_module._loads_exactly(bytes(raw))  # one data item, nothing after it
        assert message.tag == 18
        assert message.value == [parts[0], {}, parts[1], parts[2]]


def test_codes_outside_the_fast_paths_still_parse(runtime) -> None:
    long_issuer = "https://onecard.example/" + "x" * 300  # payload over 255 bytes
    text = token(runtime, issuer=long_issuer)
    parsed = parse_token(text)
    assert parse_claims(parsed.payload).issuer == long_issuer
