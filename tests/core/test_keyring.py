"""The keyring: RFC 7638 kids, sealed private keys, rotation that never breaks a token in
flight, and removal after the retirement period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlmodel import select

from onecard.core.audit import Actor
from onecard.core.clock import FrozenClock, use_clock
from onecard.core.jose import sign_compact, thumbprint
from onecard.core.keyring import KEY_USES, PUBLISHED_PURPOSES, Keyring, KeyState, SigningKey
from onecard.core.sealing import Sealer

# RFC 7638 §3.1: the example RSA key and its published thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_thumbprint_matches_rfc7638_example() -> None:
    assert thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture
def keyring_db(fresh_db, sealer: Sealer):
    database = fresh_db()
    keyring = Keyring(sealer, retirement=timedelta(hours=1))
    with database.session() as session:
        keyring.ensure_keys(session, Actor.system())
    return database, keyring


def _verify(token: str, jwks: dict) -> dict:
    keyset = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keyset.keys if k.key_id == kid)
    return jwt.decode(token, key=key, algorithms=["RS256", "ES256"], audience="portal")


def _token(session, keyring: Keyring, alg: str, now: datetime) -> str:
    signer = keyring.signer(session, "token", alg)
    claims = {
        "sub": "x",
        "aud": "portal",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=30)).timestamp()),
    }
    return sign_compact(signer, claims, typ="JWT")


def test_ensure_keys_is_idempotent_and_kid_is_the_thumbprint(keyring_db) -> None:
    database, keyring = keyring_db
    with database.session() as session:
        assert keyring.ensure_keys(session, Actor.system()) == []
        keys = keyring.list_keys(session)
    # Other packages register their key uses when imported (onecard.card.keys): which ones
    # are there depends on what the run has loaded, so the expectation reads the registry.
    assert {("token", "RS256"), ("token", "ES256"), ("audit", "ES256")} <= KEY_USES
    assert {(k.purpose, k.alg, k.state) for k in keys} == {
        (p, a, s) for p, a in KEY_USES for s in ("active", "next")
    }
    for key in keys:
        assert key.kid == thumbprint(key.public_jwk)


def test_private_keys_are_sealed_at_rest(keyring_db, sealer: Sealer) -> None:
    database, keyring = keyring_db
    with database.session() as session:
        key = session.exec(select(SigningKey).where(SigningKey.alg == "ES256")).first()
        signer = keyring.signer(session, key.purpose, "ES256")
    der = sealer.open(key.private_key, table="signing_key", column="private_key", row_id=key.kid)
    private = serialization.load_der_private_key(der, password=None)
    assert der not in key.private_key
    assert (
        private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        == der
    )
    assert repr(signer) == f"LocalSigner(kid={key.kid!r}, alg='ES256')"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_rotation_keeps_tokens_signed_by_the_old_key_verifiable_until_removal(
    keyring_db, alg: str
) -> None:
    database, keyring = keyring_db
    clock = FrozenClock(datetime.now(UTC))  # pyjwt checks exp against the real time
    with use_clock(clock):
        with database.session() as session:
            old_kid = keyring.signer(session, "token", alg).kid
            old_token = _token(session, keyring, alg, clock.now())
            next_kid = next(
                k.kid
                for k in keyring.list_keys(session)
                if k.alg == alg and k.purpose == "token" and k.state == KeyState.NEXT
            )
        with database.session() as session:
            keyring.rotate(session, Actor.cli("ops"), "token")
        with database.session() as session:
            keyring._active.clear()  # another worker's cache would expire within 5 s
            new_signer = keyring.signer(session, "token", alg)
            new_token = _token(session, keyring, alg, clock.now())
            jwks = keyring.jwks(session)
        # The pre-published "next" key is the one that became active.
        assert new_signer.kid == next_kid != old_kid
        assert _verify(old_token, jwks)["sub"] == "x"
        assert _verify(new_token, jwks)["sub"] == "x"

        clock.advance(timedelta(minutes=59))
        with database.session() as session:
            assert keyring.prune(session, Actor.system()) == []
        clock.advance(timedelta(minutes=2))
        with database.session() as session:
            removed = keyring.prune(session, Actor.system())
            jwks = keyring.jwks(session)
            assert old_kid in {c.kid for c in removed}
            row = session.exec(select(SigningKey).where(SigningKey.kid == old_kid)).one()
            assert row.private_key is None
            assert row.state == KeyState.REMOVED
            # The public half is kept for old audit checkpoints.
            assert keyring.public_jwk(session, old_kid)["kid"] == old_kid
        assert old_kid not in {k["kid"] for k in jwks["keys"]}
        with pytest.raises(StopIteration):
            _verify(old_token, jwks)


def test_jwks_publishes_only_public_members(keyring_db) -> None:
    database, keyring = keyring_db
    with database.session() as session:
        jwks = keyring.jwks(session)
    published = [(p, a) for p, a in KEY_USES if p in PUBLISHED_PURPOSES]
    assert ("token", "RS256") in published
    assert ("audit", "ES256") not in published
    assert len(jwks["keys"]) == 2 * len(published)  # active and next of each
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()
        assert key["use"] == "sig"
