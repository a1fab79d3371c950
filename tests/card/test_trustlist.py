"""The trust list: a JWS terminals cache, signed with the keyring's trust-list key (published
in the JWKS), listing the card keys and the inactive cards; refused when tampered with,
mistyped, signed by an unknown key or long stale."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import jwt
import pytest
from sqlmodel import select

import onecard.card.keys  # noqa: F401  (registers the card key uses with the keyring)
from onecard.card.token import cose_kid
from onecard.card.trustlist import (
    TRUST_LIST_TYP,
    InvalidTrustList,
    TrustList,
    TrustListProblem,
    build_trust_list,
    card_reference_text,
    trust_list_etag,
)
from onecard.core.audit import Actor
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jose import b64url, b64url_decode, sign_compact
from onecard.core.keyring import Keyring, KeyState, SigningKey
from tests.card.qr_support import NOW, T0, stranger_signer


def _build(runtime, **kwargs) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    with runtime.database.session() as session:
        jws = build_trust_list(
            session,
            runtime.keyring,
            issuer=kwargs.pop("issuer", runtime.settings.issuer),
            inactive=kwargs.pop("inactive", ()),
            now=kwargs.pop("now", NOW),
            **kwargs,
        )
        return jws, runtime.keyring.jwks(session)


def _card_keys(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = session.exec(select(SigningKey).where(SigningKey.purpose == "card"))
    return {row.kid: row.state for row in rows}


def _payload(jws: str) -> dict:
    return json.loads(b64url_decode(jws.split(".")[1]))


def test_trust_list_lists_published_card_keys_and_inactive_cards(runtime) -> None:
    lost, suspended = secrets.token_bytes(16), secrets.token_bytes(16)
    jws, jwks = _build(runtime, inactive=[lost, suspended, lost])
    header = jwt.get_unverified_header(jws)
    with runtime.database.session() as session:
        signer = runtime.keyring.signer(session, "trust_list", "ES256")
        card_keys = _card_keys(session)
    assert header == {"alg": "ES256", "kid": signer.kid, "typ": "onecard-trust-list+jwt"}

    payload = _payload(jws)
    assert payload["iss"] == runtime.settings.issuer
    assert payload["iat"] == T0
    assert payload["next_update"] == T0 + 3600
    assert payload["inactive"] == sorted([b64url(lost), b64url(suspended)])
    assert {key["kid"] for key in payload["keys"]} == {
        kid for kid, state in card_keys.items() if state in ("next", "active", "retired")
    }
    for key in payload["keys"]:
        assert key["alg"] == "ES256"
        assert key["use"] == "sig"
        assert key["kty"] == "EC"
        assert not {"d"} & key.keys()

    trust_list = TrustList.from_jws(jws, jwks, now=NOW)
    assert trust_list.issuer == runtime.settings.issuer
    assert trust_list.issued_at == NOW
    assert trust_list.next_update == NOW + timedelta(hours=1)
    assert trust_list.inactive == {lost, suspended}
    assert {key.kid for key in trust_list.keys.values()} == {k["kid"] for k in payload["keys"]}
    for kid, key in trust_list.keys.items():
        assert kid == cose_kid(key.kid)
    assert trust_list.jws == jws


def test_jwks_publishes_the_trust_list_key_but_not_the_card_keys(runtime, client) -> None:
    published = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
    with runtime.database.session() as session:
        trust_list_kid = runtime.keyring.signer(session, "trust_list", "ES256").kid
        card_kids = set(_card_keys(session))
    assert trust_list_kid in published
    assert not card_kids & published


def test_the_keyring_verifies_its_tokens_with_token_keys_only(runtime) -> None:
    """ID and access tokens are checked against ``token`` keys: a trust-list key, although
    published in the same JWKS, never verifies one."""
    keyring = Keyring(runtime.sealer, retirement=timedelta(hours=1))
    with runtime.database.session() as session:
        trust_list_kid = runtime.keyring.signer(session, "trust_list", "ES256").kid
        token_kid = runtime.keyring.signer(session, "token", "ES256").kid
        assert keyring.verification_key(session, trust_list_kid) is None
        assert keyring.verification_key(session, token_kid) is not None


@pytest.mark.parametrize("lifetime", [timedelta(0), timedelta(seconds=-1), timedelta(hours=25)])
def test_lifetime_is_at_most_24_hours(runtime, lifetime: timedelta) -> None:
    with pytest.raises(ValueError, match="24 hours"):
        _build(runtime, lifetime=lifetime)


def test_lifetime_sets_next_update(runtime) -> None:
    jws, jwks = _build(runtime, lifetime=timedelta(hours=24))
    assert TrustList.from_jws(jws, jwks, now=NOW).next_update == NOW + timedelta(hours=24)


def test_inactive_references_must_be_16_bytes(runtime) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        _build(runtime, inactive=[b"short"])
    with pytest.raises(ValueError, match="16 bytes"):
        card_reference_text("0123456789abcdef")  # type: ignore[arg-type]


def test_a_list_stays_usable_for_24_hours_past_its_next_update(runtime) -> None:
    jws, jwks = _build(runtime)
    due = NOW + timedelta(hours=1)
    assert TrustList.from_jws(jws, jwks, now=due + timedelta(hours=24)).jws == jws
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(jws, jwks, now=due + timedelta(hours=24, seconds=1))
    assert refused.value.reason is TrustListProblem.STALE


def test_tampered_payload_has_a_bad_signature(runtime) -> None:
    jws, jwks = _build(runtime, inactive=[secrets.token_bytes(16)])
    header, _, signature = jws.split(".")
    forged = _payload(jws) | {"inactive": []}
    tampered = f"{header}.{b64url(json.dumps(forged).encode())}.{signature}"
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(tampered, jwks, now=NOW)
    assert refused.value.reason is TrustListProblem.BAD_SIGNATURE


def test_a_key_missing_from_the_jwks_is_an_unknown_kid(runtime) -> None:
    jws, jwks = _build(runtime)
    kid = jwt.get_unverified_header(jws)["kid"]
    others = {"keys": [key for key in jwks["keys"] if key["kid"] != kid]}
    for key_set in (others, {"keys": []}, {}):
        with pytest.raises(InvalidTrustList) as refused:
            TrustList.from_jws(jws, key_set, now=NOW)
        assert refused.value.reason is TrustListProblem.UNKNOWN_KID


def test_another_type_is_refused(runtime) -> None:
    with runtime.database.session() as session:
        signer = runtime.keyring.signer(session, "trust_list", "ES256")
        jwks = runtime.keyring.jwks(session)
    payload = _payload(_build(runtime)[0])
    for typ in ("JWT", "at+jwt", None):
        jws = sign_compact(signer, payload, typ=typ)
        with pytest.raises(InvalidTrustList) as refused:
            TrustList.from_jws(jws, jwks, now=NOW)
        assert refused.value.reason is TrustListProblem.WRONG_TYPE


def test_signed_by_a_stranger_it_is_refused(runtime) -> None:
    stranger = stranger_signer()
    payload = _payload(_build(runtime)[0])
    jws = sign_compact(stranger, payload, typ=TRUST_LIST_TYP)
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(jws, _build(runtime)[1], now=NOW)
    assert refused.value.reason is TrustListProblem.UNKNOWN_KID


@pytest.mark.parametrize(
    "change",
    [
        {"iss": ""},
        {"iat": "now"},
        {"next_update": T0},
        {"next_update": T0 + 24 * 3600 + 1},
        {"keys": {}},
        {"inactive": ["not base64url!"]},
        {"inactive": [b64url(bytes(15))]},
        {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "x", "alg": "RS256"}]},
    ],
    ids=repr,
)
def test_a_signed_but_malformed_payload_is_refused(runtime, change: dict) -> None:
    with runtime.database.session() as session:
        signer = runtime.keyring.signer(session, "trust_list", "ES256")
        jwks = runtime.keyring.jwks(session)
    payload = _payload(_build(runtime)[0]) | change
    jws = sign_compact(signer, payload, typ=TRUST_LIST_TYP)
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(jws, jwks, now=NOW)
    assert refused.value.reason is TrustListProblem.MALFORMED


def test_a_card_key_whose_kid_is_not_its_thumbprint_is_refused(runtime) -> None:
    with runtime.database.session() as session:
        signer = runtime.keyring.signer(session, "trust_list", "ES256")
        jwks = runtime.keyring.jwks(session)
    payload = _payload(_build(runtime)[0])
    key = payload["keys"][0] | {"kid": stranger_signer().kid}
    jws = sign_compact(signer, payload | {"keys": [key]}, typ=TRUST_LIST_TYP)
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(jws, jwks, now=NOW)
    assert refused.value.reason is TrustListProblem.MALFORMED


@pytest.mark.parametrize("text", ["", "a.b.c", "not a jws", "e30", "e30.e30"])
def test_garbage_is_malformed(runtime, text: str) -> None:
    with pytest.raises(InvalidTrustList) as refused:
        TrustList.from_jws(text, _build(runtime)[1], now=NOW)
    assert refused.value.reason is TrustListProblem.MALFORMED


def test_etag_is_strong_and_follows_the_bytes(runtime) -> None:
    first, jwks = _build(runtime)
    second, _ = _build(runtime, inactive=[secrets.token_bytes(16)])
    etag = trust_list_etag(first)
    assert etag.startswith('"')  # not W/"…": a strong ETag
    assert etag.endswith('"')
    assert etag == trust_list_etag(first)
    assert etag != trust_list_etag(second)
    assert TrustList.from_jws(first, jwks, now=NOW).etag == etag


def test_rotation_lists_next_active_and_retired_card_keys_until_removal(fresh_db, sealer) -> None:
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(hours=1))
    clock = FrozenClock(NOW)

    def listed() -> tuple[set[str], dict[str, str]]:
        with database.session() as session:
            jws = build_trust_list(
                session, keyring, issuer="https://onecard.example", inactive=(), now=clock.now()
            )
            jwks = keyring.jwks(session)
            states = _card_keys(session)
        trust_list = TrustList.from_jws(jws, jwks, now=clock.now())
        return {key.kid for key in trust_list.keys.values()}, states

    with use_clock(clock):
        with database.session() as session:
            keyring.ensure_keys(session, Actor.system())
        kids, states = listed()
        assert kids == set(states)
        assert sorted(states.values()) == [KeyState.ACTIVE, KeyState.NEXT]

        with database.session() as session:
            keyring.rotate(session, Actor.cli("ops"), "card")
        kids, states = listed()
        retired = {kid for kid, state in states.items() if state == KeyState.RETIRED}
        assert len(retired) == 1
        assert kids == set(states)  # next, active and retired

        clock.advance(timedelta(hours=1, seconds=1))
        with database.session() as session:
            keyring.prune(session, Actor.system())
        kids, states = listed()
        assert states[next(iter(retired))] == KeyState.REMOVED
        assert not retired & kids
        assert len(kids) == 2
