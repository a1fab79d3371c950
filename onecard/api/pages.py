"""The HTML pages a citizen sees during sign-in, consent and logout: the Jinja2 environment,
locale negotiation, rendering, and the static files those pages link.

Templates live in ``onecard/api/templates/``; their wording lives in :mod:`onecard.api.i18n`.
The pages carry no script and no inline style, because the site's CSP allows scripts and
styles from ``'self'`` only (see :mod:`onecard.api.middleware`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from onecard.api.i18n import MESSAGES

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"

_ENTERPRISE_ROLES = ("legal_representative", "admin", "agent")
# Headers are attacker-controlled; parsing only the first few entries keeps a huge header from
# costing more than a glance.
_MAX_TAGS = 32
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _supported(tag: str) -> str | None:
    """The supported locale a BCP 47 tag asks for, or ``None``.

    Every Chinese tag maps to Simplified Chinese: it is the only Chinese catalog we have, and a
    reader of Traditional Chinese reads it far more easily than the English fallback.
    """
    if not _LANGUAGE_TAG.fullmatch(tag):
        return None
    primary = tag.replace("_", "-").split("-", 1)[0].lower()
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


def _from_ui_locales(ui_locales: str) -> str | None:
    for tag in ui_locales.split()[:_MAX_TAGS]:
        if locale := _supported(tag):
            return locale
    return None


def _from_accept_language(accept_language: str) -> str | None:
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(accept_language.split(",")[:_MAX_TAGS]):
        tag, *params = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q":
                continue
            if not _QVALUE.fullmatch(value.strip()):
                quality = 0.0  # a malformed weight is no preference at all
                break
            quality = float(value)
        locale = _supported(tag)
        if locale is not None and quality > 0:
            # Negative position: among equal weights, the earlier entry wins.
            ranked.append((quality, -position, locale))
    return max(ranked)[2] if ranked else None


def negotiate_locale(ui_locales: str | None, accept_language: str | None) -> str:
    """The locale to render a page in.

    ``ui_locales`` (OpenID Connect Core §3.1.2.1: space-separated BCP 47 tags, most preferred
    first) wins over the browser's ``Accept-Language`` (q-values honoured); when neither names a
    supported locale, :data:`DEFAULT_LOCALE`. Never raises, whatever the input.
    """
    if isinstance(ui_locales, str) and (locale := _from_ui_locales(ui_locales)):
        return locale
    if isinstance(accept_language, str) and (locale := _from_accept_language(accept_language)):
        return locale
    return DEFAULT_LOCALE


def translator(locale: str) -> Callable[..., str]:
    """``t(key, **kwargs)``: the message ``key`` in ``locale``, formatted with ``str.format``.

    A missing key raises ``KeyError`` rather than showing the key to a citizen; rendering every
    template in every locale in the tests is what keeps the catalogs complete. The result is a
    plain ``str``, so Jinja2 escapes it, and with it any client name passed as an argument.
    """
    if locale not in LOCALES:
        raise ValueError(f"unsupported locale {locale!r}; expected one of {LOCALES}")
    catalog = MESSAGES[locale]

    def t(key: str, /, **kwargs: object) -> str:
        return catalog[key].format(**kwargs)

    return t


def _throttled_message(t: Callable[..., str], retry_after: int | None) -> str:
    """The "too many attempts" sentence, in seconds or whole minutes, rounded up."""
    if retry_after is None:
        return t("error.throttled")
    if retry_after < 90:
        # Never fewer than two: "try again in 1 seconds" reads badly, and waiting a second
        # longer than needed costs nothing.
        return t("error.throttled_seconds", seconds=max(retry_after, 2))
    return t("error.throttled_minutes", minutes=math.ceil(retry_after / 60))


def _role_names(t: Callable[..., str], roles: list[str]) -> str:
    """An enterprise's roles for one citizen, as one phrase; roles other than the three every
    enterprise has (service-specific ones) are shown as the administrator named them."""
    names = (t(f"role.{role}") if role in _ENTERPRISE_ROLES else role for role in roles)
    # Joined here, not with Jinja's join, which would escape the names before t() escapes again.
    return t("common.list_separator").join(names)


@functools.cache
def _environment() -> Environment:
    # Built on first use, not at import: importing the API must not touch the file system.
    environment = Environment(
        loader=PackageLoader("onecard.api", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a router forgetting a context value fails loudly
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.globals["throttled_message"] = _throttled_message
    environment.globals["role_names"] = _role_names
    return environment


def render(
    template: str, *, locale: str, status_code: int = 200, **context: object
) -> HTMLResponse:
    """The page ``template`` rendered in ``locale`` with ``context``.

    The pages carry CSRF tokens and personal details, so no cache, shared or private, may keep
    them (``no-store``; ``Pragma`` for old HTTP/1.0 proxies).
    """
    if "t" in context:
        raise TypeError("'t' is reserved for the translator")
    html = (
        _environment().get_template(template).render(t=translator(locale), locale=locale, **context)
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "Content-Language": locale,
        },
    )


def mount_static(app: FastAPI) -> None:
    """Serves ``onecard/api/static`` at ``/static`` (the pages' stylesheet)."""
    directory = str(files("onecard.api") / "static")
    app.mount("/static", StaticFiles(directory=directory), name="static")
