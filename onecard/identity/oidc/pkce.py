"""Proof Key for Code Exchange (RFC 7636), S256 only (RFC 9700 §2.1.1: never ``plain``)."""

from __future__ import annotations

import hashlib
import hmac
import re

from onecard.core.jose import b64url
from onecard.identity.oidc.errors import InvalidGrant, InvalidRequest

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256, no padding
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


def check_challenge(challenge: str | None, method: str | None, *, required: bool) -> str | None:
    """The validated challenge from an authorization request (None if absent and optional)."""
    if not challenge:
        if method:
            raise InvalidRequest("code_challenge_method without code_challenge")
        if required:
            raise InvalidRequest("PKCE is required: send code_challenge with method S256")
        return None
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be the base64url SHA-256 of a verifier")
    return challenge


def check_verifier(challenge: str | None, verifier: str | None) -> None:
    """The token request's verifier must match the code's challenge, and exist only with one.

    A verifier sent for a code issued without a challenge is refused: accepting it would let
    an attacker who strips the challenge from the front channel downgrade the flow.
    """
    if challenge is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent but the code was issued without PKCE")
        return
    if verifier is None:
        raise InvalidGrant("code_verifier is required")
    if not _VERIFIER.match(verifier):
        raise InvalidGrant("code_verifier is malformed")
    computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    if not hmac.compare_digest(computed, challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
