"""Client key sets registered by URI (``jwks_uri``) for ``private_key_jwt``, fetched and cached.

The fetch has a short timeout and a size limit, runs outside any database transaction, and
its result is cached for a few minutes; an unknown ``kid`` triggers at most one refetch a
minute, so a client rotating its keys is picked up without letting callers hammer its server.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

_TTL = 300.0
_REFETCH_AFTER = 60.0
_MAX_BYTES = 64 * 1024


class JwksUnavailable(Exception):
    pass


class RemoteJwks:
    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, uri: str, *, want_kid: str | None = None) -> dict[str, Any]:
        with self._lock:
            entry = self._cache.get(uri)
        age = time.monotonic() - entry[0] if entry else None
        known = entry and (
            want_kid is None or any(k.get("kid") == want_kid for k in entry[1].get("keys", []))
        )
        if entry and age is not None and age < _TTL and (known or age < _REFETCH_AFTER):
            return entry[1]
        jwks = self._fetch(uri)
        with self._lock:
            self._cache[uri] = (time.monotonic(), jwks)
        return jwks

    def _fetch(self, uri: str) -> dict[str, Any]:
        request = urllib.request.Request(uri, headers={"Accept": "application/json"})  # noqa: S310 (https/localhost checked at registration)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body = response.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise JwksUnavailable(f"the client's JWKS could not be fetched: {exc}") from None
        if len(body) > _MAX_BYTES:
            raise JwksUnavailable("the client's JWKS is too large")
        try:
            jwks = json.loads(body)
        except ValueError:
            raise JwksUnavailable("the client's JWKS is not JSON") from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise JwksUnavailable("the client's JWKS is not a JWK Set")
        return jwks
