"""What every HTML form of onecard shares: cookies and CSRF tokens.

Cookies are ``HttpOnly; SameSite=Lax`` and ``Secure`` whenever the issuer is https (DESIGN.md
§5), each scoped to the path of the pages that read it. A form's CSRF token is an HMAC, under a
key derived for the purpose, of a secret the browser holds in a cookie (the sign-in pages' own
random cookie, or the pages' session cookie), so a page from another site can neither read nor
forge it; it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.responses import Response

from onecard.api.runtime import Runtime


def secure_cookies(runtime: Runtime) -> bool:
    return runtime.provider.issuer.startswith("https://")


def set_cookie(
    runtime: Runtime, response: Response, name: str, value: str, *, path: str, **extra: Any
) -> None:
    response.set_cookie(
        name,
        value,
        path=path,
        secure=secure_cookies(runtime),
        httponly=True,
        samesite="lax",
        **extra,
    )


def delete_cookie(runtime: Runtime, response: Response, name: str, *, path: str) -> None:
    response.delete_cookie(
        name, path=path, secure=secure_cookies(runtime), httponly=True, samesite="lax"
    )


def csrf_token(runtime: Runtime, binding: str) -> str:
    """The CSRF token of the forms shown to the browser holding the secret ``binding``."""
    key = runtime.sealer.derive_key("csrf")
    return hmac.new(key, binding.encode(), hashlib.sha256).hexdigest()


def csrf_ok(runtime: Runtime, binding: str | None, token: object) -> bool:
    """Whether ``token`` (a form's ``csrf_token``) belongs to the secret ``binding``."""
    if not binding or not isinstance(token, str):
        return False
    return same_text(csrf_token(runtime, binding), token)


def same_text(expected: str, given: str) -> bool:
    """Constant-time equality of two texts. On ``str``, ``hmac.compare_digest`` raises for
    non-ASCII input, which a forged form or query may well hold: compare UTF-8 bytes."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))
