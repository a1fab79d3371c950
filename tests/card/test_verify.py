"""The offline verifier: a code is accepted only when every check passes, and each refusal
names its reason; nothing but InvalidCard ever comes out, whatever the text."""

from __future__ import annotations

import secrets
import subprocess
import sys
from datetime import timedelta

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onecard.card.keys  # noqa: F401  (registers the card key uses with the keyring)
from onecard.card.base45 import b45decode, b45encode
from onecard.card.purpose import Purpose
from onecard.card.token import cose_kid, issue_token
from onecard.card.trustlist import TrustList, build_trust_list
from onecard.card.verify import (
    InvalidCard,
    InvalidCardReason,
    OfflineVerifier,
    SeenCodes,
    VerifiedCard,
)
from onecard.core.audit import Actor
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.keyring import Keyring
from tests.card.qr_support import (
    NOW,
    T0,
    card_signer,
    claims,
    cose_sign1,
    qr_text,
    stranger_signer,
    token,
    trust_list,
)

Reason = InvalidCardReason


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, at: float = T0) -> None:
        self.at = float(at)

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def gate(runtime):  # type: ignore[no-untyped-def]
    """``gate(inactive=(), leeway=5, at=T0) -> (verifier, clock)`` on the runtime's keys."""

    def make(
        *, inactive: tuple[bytes, ...] = (), leeway: float = 5, at: float = T0
    ) -> tuple[OfflineVerifier, Clock]:
        clock = Clock(at)
        verifier = OfflineVerifier(
            trust_list(runtime, inactive=inactive),
            leeway=timedelta(seconds=leeway),
            clock=clock,
        )
        return verifier, clock

    return make


def _refused(verifier: OfflineVerifier, text: str, purpose: Purpose = Purpose.TRANSIT) -> Reason:
    with pytest.raises(InvalidCard) as refused:
        verifier.verify(text, purpose=purpose)
    return refused.value.reason


def test_a_fresh_code_is_accepted(runtime, gate) -> None:
    verifier, _ = gate()
    reference = secrets.token_bytes(16)
    verified = verifier.verify(
        token(runtime, reference=reference, purpose=Purpose.SOCIAL_SECURITY),
        purpose=Purpose.SOCIAL_SECURITY,
    )
    assert isinstance(verified, VerifiedCard)
    assert verified.card_reference == reference
    assert verified.purpose is Purpose.SOCIAL_SECURITY
    assert (verified.issued_at, verified.expires_at) == (T0, T0 + 60)
    assert len(verified.cti) == 16
    assert verified.kid == card_signer(runtime).kid


# -- before decoding ------------------------------------------------------------------------


def test_oversize_text_is_refused_before_decoding(runtime, gate) -> None:
    verifier, _ = gate()
    assert _refused(verifier, "OC1:" + "0" * 1021) is Reason.OVERSIZE
    assert _refused(verifier, "x" * 5000) is Reason.OVERSIZE
    assert _refused(verifier, "OC1:" + "000" * 339) is Reason.MALFORMED  # 1,021: decoded


@pytest.mark.parametrize("text", ["", "OC1", "oc1:BB8", "OC2:BB8", "HC1:BB8", " OC1:BB8"])
def test_a_missing_prefix_is_bad_prefix(gate, text: str) -> None:
    assert _refused(gate()[0], text) is Reason.BAD_PREFIX


@pytest.mark.parametrize("body", ["bb8", "BB8A", "GGW", "BB8\n", "BB8€"])
def test_text_that_is_not_base45_is_bad_encoding(gate, body: str) -> None:
    assert _refused(gate()[0], "OC1:" + body) is Reason.BAD_ENCODING


def test_truncated_codes_are_refused(runtime, gate) -> None:
    verifier, _ = gate()
    text = token(runtime)
    # Base45 has no text of 3k+1 characters; cut to one, whatever the code's length.
    cut = next(d for d in (1, 2, 3) if (len(text) - len("OC1:") - d) % 3 == 1)
    assert _refused(verifier, text[:-cut]) is Reason.BAD_ENCODING
    assert _refused(verifier, text[:-3]) is Reason.MALFORMED  # a whole group less
    assert _refused(verifier, text[:-120]) is Reason.MALFORMED
    assert _refused(verifier, "OC1:") is Reason.MALFORMED


# -- structure ------------------------------------------------------------------------------


def test_malformed_cose_messages_are_refused(runtime, gate) -> None:
    verifier, _ = gate()
    signer = card_signer(runtime)
    kid = cose_kid(signer.kid)
    payload = cbor2.dumps(claims(runtime.settings.issuer))
    cases = {
        "untagged": cose_sign1(signer, payload, tag=None),
        "another tag": cose_sign1(signer, payload, tag=17),
        "ES384": cose_sign1(signer, payload, protected={1: -35, 4: kid}),
        "alg as text": cose_sign1(signer, payload, protected={1: "ES256", 4: kid}),
        "no alg": cose_sign1(signer, payload, protected={4: kid}),
        "kid only unprotected": cose_sign1(
            signer, payload, protected={1: -7}, unprotected={4: kid}
        ),
        "long kid": cose_sign1(signer, payload, protected={1: -7, 4: kid + b"\0"}),
        "crit": cose_sign1(signer, payload, protected={1: -7, 4: kid, 2: [99]}),
        "short signature": cose_sign1(signer, payload, signature=bytes(63)),
        "trailing byte": cose_sign1(signer, payload) + b"\0",
        "three parts": cbor2.dumps(cbor2.CBORTag(18, [b"", {}, payload])),
        "not an array": cbor2.dumps(cbor2.CBORTag(18, {})),
        "protected not a map": cbor2.dumps(
            cbor2.CBORTag(18, [cbor2.dumps([1]), {}, payload, bytes(64)])
        ),
        "unprotected not a map": cbor2.dumps(
            cbor2.CBORTag(18, [cbor2.dumps({1: -7, 4: kid}), [], payload, bytes(64)])
        ),
        "not CBOR": b"\xff\xff",
    }
    for name, message in cases.items():
        assert _refused(verifier, qr_text(message)) is Reason.MALFORMED, name


@pytest.mark.parametrize(
    "changes",
    [{4: T0 + 61}, {6: None}, {-70002: "parking"}, {-70001: b"3201**********123X"}],
    ids=repr,
)
def test_signed_but_malformed_claims_are_refused(runtime, gate, changes: dict) -> None:
    signer = card_signer(runtime)
    text = qr_text(cose_sign1(signer, cbor2.dumps(claims(runtime.settings.issuer, changes))))
    assert _refused(gate()[0], text) is Reason.MALFORMED


# -- keys and signature ---------------------------------------------------------------------


def test_a_key_the_trust_list_does_not_name_is_an_unknown_kid(runtime, gate) -> None:
    assert _refused(gate()[0], token(runtime, signer=stranger_signer())) is Reason.UNKNOWN_KID


def test_a_tampered_payload_has_a_bad_signature(runtime, gate) -> None:
    verifier, _ = gate()
    message = cbor2.loads(b45decode(token(runtime, purpose=Purpose.BANK)[4:]))
    protected, unprotected, payload, signature = message.value
    forged = cbor2.loads(payload) | {-70002: "transit", -70001: secrets.token_bytes(16)}
    tampered = cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(forged), signature])
    assert _refused(verifier, qr_text(cbor2.dumps(tampered))) is Reason.BAD_SIGNATURE


def test_a_tampered_signature_is_a_bad_signature(runtime, gate) -> None:
    verifier, _ = gate()
    message = cbor2.loads(b45decode(token(runtime)[4:]))
    for position in (0, 31, 32, 63):
        parts = list(message.value)
        signature = bytearray(parts[3])
        signature[position] ^= 0x01
        parts[3] = bytes(signature)
        text = qr_text(cbor2.dumps(cbor2.CBORTag(18, parts)))
        assert _refused(verifier, text) is Reason.BAD_SIGNATURE
    for signature in (bytes(64), b"\xff" * 64):
        parts = [*message.value[:3], signature]
        assert _refused(verifier, qr_text(cbor2.dumps(cbor2.CBORTag(18, parts)))) is (
            Reason.BAD_SIGNATURE
        )


def test_a_token_from_another_issuer_is_refused(runtime, gate) -> None:
    text = token(runtime, issuer="https://elsewhere.example")
    assert _refused(gate()[0], text) is Reason.WRONG_ISSUER


def test_a_code_signed_by_a_retired_key_verifies_until_the_key_is_removed(fresh_db, sealer) -> None:
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(hours=1))
    issuer = "https://onecard.example"
    frozen = FrozenClock(NOW)

    def verifier() -> OfflineVerifier:
        """A gate with a fresh trust list, judging codes as of their issue (T0)."""
        with database.session() as session:
            jws = build_trust_list(session, keyring, issuer=issuer, inactive=(), now=frozen.now())
            jwks = keyring.jwks(session)
        trust = TrustList.from_jws(jws, jwks, now=frozen.now())
        return OfflineVerifier(trust, clock=Clock(T0))

    def code() -> str:
        with database.session() as session:
            signer = keyring.signer(session, "card", "ES256")
        return issue_token(
            signer,
            issuer=issuer,
            card_reference=secrets.token_bytes(16),
            purpose=Purpose.TRANSIT,
            now=NOW,
        )

    with use_clock(frozen):
        with database.session() as session:
            keyring.ensure_keys(session, Actor.system())
        old_code = code()
        with database.session() as session:
            keyring.rotate(session, Actor.cli("ops"), "card")
        keyring._active.clear()  # another worker's cache would expire within 5 s
        new_code = code()
        assert verifier().verify(old_code, purpose=Purpose.TRANSIT).kid != (
            verifier().verify(new_code, purpose=Purpose.TRANSIT).kid
        )

        frozen.advance(timedelta(hours=1, seconds=1))
        with database.session() as session:
            keyring.prune(session, Actor.system())
        late = verifier()
        assert _refused(late, old_code) is Reason.UNKNOWN_KID
        assert late.verify(new_code, purpose=Purpose.TRANSIT)


# -- time -----------------------------------------------------------------------------------


def test_expiry_with_leeway(runtime, gate) -> None:
    verifier, clock = gate(leeway=5)
    exp = T0 + 60
    clock.at = exp + 5 - 0.001
    assert verifier.verify(token(runtime), purpose=Purpose.TRANSIT)
    clock.at = exp + 5
    assert _refused(verifier, token(runtime)) is Reason.EXPIRED
    clock.at = exp + 3600
    assert _refused(verifier, token(runtime)) is Reason.EXPIRED


def test_issued_in_the_future_with_leeway(runtime, gate) -> None:
    verifier, clock = gate(leeway=5)
    clock.at = T0 - 5
    assert verifier.verify(token(runtime), purpose=Purpose.TRANSIT)
    clock.at = T0 - 5.001
    assert _refused(verifier, token(runtime)) is Reason.NOT_YET_VALID


def test_without_leeway_the_edges_are_exact(runtime, gate) -> None:
    verifier, clock = gate(leeway=0)
    clock.at = T0 + 59.999
    assert verifier.verify(token(runtime), purpose=Purpose.TRANSIT)
    clock.at = T0 + 60
    assert _refused(verifier, token(runtime)) is Reason.EXPIRED
    clock.at = T0 - 0.001
    assert _refused(verifier, token(runtime)) is Reason.NOT_YET_VALID


@pytest.mark.parametrize("seconds", [5.001, 6, 60, -1])
def test_leeway_is_0_to_5_seconds(runtime, seconds: float) -> None:
    with pytest.raises(ValueError, match="0 to 5"):
        OfflineVerifier(trust_list(runtime), leeway=timedelta(seconds=seconds))


# -- card, purpose, replay ------------------------------------------------------------------


def test_a_code_of_an_inactive_card_is_refused(runtime, gate) -> None:
    lost = secrets.token_bytes(16)
    verifier, _ = gate(inactive=(lost,))
    assert _refused(verifier, token(runtime, reference=lost)) is Reason.CARD_INACTIVE
    assert verifier.verify(token(runtime), purpose=Purpose.TRANSIT)


@pytest.mark.parametrize(
    ("made_for", "shown_at"),
    [
        (Purpose.BANK, Purpose.TRANSIT),
        (Purpose.TRANSIT, Purpose.SOCIAL_SECURITY),
        (Purpose.SOCIAL_SECURITY, Purpose.BANK),
    ],
)
def test_a_code_for_another_purpose_is_refused(
    runtime, gate, made_for: Purpose, shown_at: Purpose
) -> None:
    text = token(runtime, purpose=made_for)
    assert _refused(gate()[0], text, purpose=shown_at) is Reason.WRONG_PURPOSE


def test_a_gate_refuses_the_same_code_twice_and_another_gate_does_not(runtime, gate) -> None:
    first, _ = gate()
    second, _ = gate()
    text = token(runtime)
    assert first.verify(text, purpose=Purpose.TRANSIT)
    assert _refused(first, text) is Reason.REPLAYED
    assert second.verify(text, purpose=Purpose.TRANSIT)


def test_a_refused_code_is_not_remembered(runtime, gate) -> None:
    verifier, _ = gate()
    text = token(runtime, purpose=Purpose.BANK)
    assert _refused(verifier, text) is Reason.WRONG_PURPOSE
    assert verifier.verify(text, purpose=Purpose.BANK)


def test_a_replayed_code_is_refused_as_expired_once_forgotten(runtime, gate) -> None:
    verifier, clock = gate()
    text = token(runtime)
    assert verifier.verify(text, purpose=Purpose.TRANSIT)
    clock.at = T0 + 65
    assert _refused(verifier, text) is Reason.EXPIRED
    assert verifier.verify(token(runtime, now=NOW + timedelta(seconds=65)), purpose=Purpose.TRANSIT)
    assert len(verifier._seen) == 1  # the first code was forgotten to make room


def test_the_memory_of_seen_codes_is_bounded(runtime) -> None:
    clock = Clock()
    verifier = OfflineVerifier(trust_list(runtime), clock=clock, seen_memory=3)
    for _ in range(10):
        assert verifier.verify(token(runtime), purpose=Purpose.TRANSIT)
    assert len(verifier._seen) == 3


def test_seen_codes_forget_expired_ones_first_then_the_closest_to_expiry() -> None:
    seen = SeenCodes(2)
    assert seen.add(b"a", forget_at=10, now=0)
    assert seen.add(b"b", forget_at=20, now=0)
    assert not seen.add(b"a", forget_at=10, now=5)
    assert seen.add(b"c", forget_at=30, now=15)  # a expired: room without evicting b
    assert not seen.add(b"b", forget_at=20, now=15)
    assert seen.add(b"d", forget_at=25, now=16)  # full: b goes, the closest to expiry
    assert not seen.add(b"c", forget_at=30, now=16)
    assert seen.add(b"b", forget_at=20, now=16)
    with pytest.raises(ValueError, match="at least one"):
        SeenCodes(0)


# -- anything at all ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def any_gate(runtime):  # type: ignore[no-untyped-def]
    return OfflineVerifier(trust_list(runtime), clock=Clock())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.text(max_size=1100) | st.text(max_size=50).map(lambda text: "OC1:" + text))
def test_any_text_is_refused_with_invalid_card(any_gate, text: str) -> None:
    with pytest.raises(InvalidCard):
        any_gate.verify(text, purpose=Purpose.TRANSIT)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.binary(max_size=700))
def test_any_bytes_behind_the_prefix_are_refused_with_invalid_card(any_gate, data: bytes) -> None:
    with pytest.raises(InvalidCard):
        any_gate.verify("OC1:" + b45encode(data), purpose=Purpose.TRANSIT)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(st.data())
def test_any_change_to_one_character_is_refused(runtime, any_gate, data: st.DataObject) -> None:
    text = token(runtime)
    position = data.draw(st.integers(min_value=4, max_value=len(text) - 1))
    char = data.draw(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"))
    changed = text[:position] + char + text[position + 1 :]
    if changed != text:
        with pytest.raises(InvalidCard):
            any_gate.verify(changed, purpose=Purpose.TRANSIT)


def test_any_cbor_claims_signed_by_the_card_key_are_refused_or_accepted_cleanly(
    runtime, any_gate
) -> None:
    signer = card_signer(runtime)
    for payload in (cbor2.dumps(None), cbor2.dumps({1: {1: 1}}), cbor2.dumps(claims("x"))[:-1]):
        with pytest.raises(InvalidCard):
            any_gate.verify(qr_text(cose_sign1(signer, payload)), purpose=Purpose.TRANSIT)


def test_the_verifier_needs_neither_server_nor_database() -> None:
    code = (
        "import sys, onecard.card.verify\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'sqlmodel', 'fastapi', 'starlette', 'psycopg')"
        " or m.startswith(('onecard.api', 'onecard.core.db', 'onecard.core.keyring'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@given(
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.sampled_from([b"\0" * 32, b"\0" * 31 + b"\1", b"\x80" + b"\0" * 31, b"\xff" * 32]),
    ),
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.sampled_from([b"\0" * 32, b"\0" * 16 + b"\x80" + b"\0" * 15, b"\x7f" + b"\xff" * 31]),
    ),
)
def test_the_der_signature_is_what_cryptography_encodes(r: bytes, s: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from onecard.card.verify import der_signature

    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert der_signature(r + s) == expected
