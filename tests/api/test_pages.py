"""The HTML pages: catalogs, rendering in both locales, escaping, locale negotiation, and the
CSP-driven rule that no template carries inline script or style."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import UndefinedError

from onecard.api import pages
from onecard.api.i18n import MESSAGES
from onecard.api.pages import DEFAULT_LOCALE, LOCALES, negotiate_locale, render, translator
from tests.api.page_contexts import card_page_context, counter_page_context

TEMPLATES = Path(pages.__file__).parent / "templates"
ACTION = "/oauth2/authorize/continue"
CSRF = "csrf-token-value"
TXN = "txn-value"
ATTRIBUTES = [
    "sub",
    "sub_public",
    "name",
    "phone",
    "email",
    "identity_number_masked",
    "identity_number",
    "assurance_level",
    "card_status",
    "card_kinds",
    "enterprise",
    "enterprise_roles",
]


@dataclass(frozen=True)
class Enterprise:
    id: str
    name: str
    roles: list[str] = field(default_factory=list)


class Page(HTMLParser):
    """The parts of a rendered page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html_lang: str | None = None
        self.metas: list[dict[str, str | None]] = []
        self.stylesheets: list[str | None] = []
        self.forms: list[dict[str, Any]] = []
        self.links: list[str | None] = []
        self.labels_for: set[str] = set()
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "meta":
            self.metas.append(a)
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheets.append(a.get("href"))
        elif tag == "a":
            self.links.append(a.get("href"))
        elif tag == "label":
            self.labels_for.add(a.get("for") or "")
        elif tag == "form":
            self.forms.append({"attrs": a, "inputs": [], "buttons": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(a)
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def inputs(self, name: str) -> list[dict[str, str | None]]:
        return [i for form in self.forms for i in form["inputs"] if i.get("name") == name]

    def button_values(self) -> set[str | None]:
        return {b.get("value") for form in self.forms for b in form["buttons"]}


def _contexts() -> dict[str, dict[str, Any]]:
    """A sample context for every template, as the routers will pass it."""
    return {
        "login.html": {
            "action": ACTION,
            "csrf_token": CSRF,
            "txn": TXN,
            "client_name": "市政务服务网",
            "login_hint": "13800138000",
            "error": None,
            "retry_after": None,
            "reauth": False,
        },
        "totp.html": {
            "action": ACTION,
            "csrf_token": CSRF,
            "txn": TXN,
            "client_name": "市政务服务网",
            "error": None,
            "retry_after": None,
            "step_up": False,
            "totp_enrolled": True,
        },
        "enterprise.html": {
            "action": ACTION,
            "csrf_token": CSRF,
            "txn": TXN,
            "client_name": "市政务服务网",
            "enterprises": [
                Enterprise("ent-1", "示例科技有限公司", ["legal_representative", "admin"]),
                Enterprise("ent-2", "示例贸易有限公司", ["agent", "tax_filing"]),
            ],
        },
        "consent.html": {
            "action": ACTION,
            "csrf_token": CSRF,
            "txn": TXN,
            "client_name": "市政务服务网",
            "attributes": ATTRIBUTES,
        },
        "error.html": {
            "error": "invalid_request",
            "description": "The redirect URI is not registered.",
        },
        "logout_confirm.html": {
            "action": "/oauth2/logout",
            "csrf_token": CSRF,
            "client_name": "市政务服务网",
            "hidden": {"state": "s1", "post_logout_redirect_uri": "https://portal.example/bye"},
        },
        "logged_out.html": {
            "client_name": "市政务服务网",
            "return_url": "https://portal.example/bye",
        },
        # onecard's own pages; every state of each is rendered in tests/api/test_card_pages.py.
        "card.html": card_page_context(),
        "counter.html": counter_page_context(),
    }


PAGES = sorted(_contexts())
# The sign-in flow's forms (one action, a sealed txn); the pages' own forms are tested beside
# them in tests/api/test_card_pages.py.
FORM_PAGES = [
    p for p in PAGES if p not in ("error.html", "logged_out.html", "card.html", "counter.html")
]
TXN_PAGES = [p for p in FORM_PAGES if p != "logout_confirm.html"]


def _render(template: str, locale: str, **overrides: Any) -> tuple[Any, Page]:
    context = _contexts()[template] | overrides
    response = render(template, locale=locale, **context)
    return response, Page(bytes(response.body).decode())


# Catalogs


def test_catalogs_have_identical_keys() -> None:
    assert set(MESSAGES) == set(LOCALES)
    assert set(MESSAGES["zh-CN"]) == set(MESSAGES["en"])


def test_catalog_placeholders_match_between_locales() -> None:
    placeholder = re.compile(r"\{(\w+)\}")
    for key, english in MESSAGES["en"].items():
        chinese = MESSAGES["zh-CN"][key]
        assert set(placeholder.findall(chinese)) == set(placeholder.findall(english)), key


def test_catalog_messages_are_text_not_markup() -> None:
    for catalog in MESSAGES.values():
        for key, message in catalog.items():
            assert "<" not in message, key
            assert message.strip(), key


def test_every_consent_attribute_has_a_label_in_both_locales() -> None:
    for locale in LOCALES:
        t = translator(locale)
        assert all(t(f"attr.{key}") for key in ATTRIBUTES)


def test_translator_formats_and_refuses_missing_keys_and_locales() -> None:
    t = translator("en")
    assert t("login.client", client="Tax Portal").startswith("Tax Portal ")
    with pytest.raises(KeyError):
        t("no.such.key")
    with pytest.raises(ValueError, match="unsupported locale"):
        translator("fr")


# Rendering


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", PAGES)
def test_every_page_renders_in_both_locales_with_the_shared_head(
    template: str, locale: str
) -> None:
    response, page = _render(template, locale)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-language"] == locale
    assert page.html_lang == locale
    metas = {m.get("name"): m.get("content") for m in page.metas}
    assert metas["referrer"] == "no-referrer"
    assert "width=device-width" in (metas["viewport"] or "")
    assert page.stylesheets == ["/static/onecard.css"]
    assert f"onecard · {MESSAGES[locale]['product.name']}" in page.all_text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", FORM_PAGES)
def test_every_form_posts_to_the_action_with_csrf_and_txn(template: str, locale: str) -> None:
    _, page = _render(template, locale)
    assert page.forms
    action = _contexts()[template]["action"]
    for form in page.forms:
        assert form["attrs"]["method"] == "post"
        assert form["attrs"]["action"] == action
        hidden = {i["name"]: i["value"] for i in form["inputs"] if i.get("type") == "hidden"}
        assert hidden["csrf_token"] == CSRF
        if template in TXN_PAGES:
            assert hidden["txn"] == TXN


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", PAGES)
def test_every_visible_input_has_a_label(template: str, locale: str) -> None:
    _, page = _render(template, locale)
    for form in page.forms:
        for field_ in form["inputs"]:
            if field_.get("type") != "hidden":
                assert field_.get("id") in page.labels_for, field_


def test_login_form_fields_buttons_and_autocomplete() -> None:
    _, page = _render("login.html", "zh-CN")
    (login,) = page.inputs("login")
    (password,) = page.inputs("password")
    assert login["autocomplete"] == "username"
    assert login["value"] == "13800138000"
    assert password["type"] == "password"
    assert password["autocomplete"] == "current-password"
    assert "value" not in password
    assert page.button_values() == {"login", "cancel"}
    # Cancel must work with the fields still empty.
    cancel = next(b for f in page.forms for b in f["buttons"] if b["value"] == "cancel")
    assert "formnovalidate" in cancel


def test_login_without_hint_leaves_the_field_empty() -> None:
    _, page = _render("login.html", "en", login_hint=None)
    assert page.inputs("login")[0]["value"] == ""


@pytest.mark.parametrize(
    "error", ["invalid_credentials", "throttled", "account_not_active", "csrf"]
)
@pytest.mark.parametrize("locale", LOCALES)
def test_login_shows_each_error(error: str, locale: str) -> None:
    _, page = _render("login.html", locale, error=error)
    key = f"error.{error}"
    assert MESSAGES[locale][key] in page.all_text


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (30, "try again in 30 seconds"),
        (1, "try again in 2 seconds"),
        (89, "try again in 89 seconds"),
        (90, "try again in 2 minutes"),
        (900, "try again in 15 minutes"),
        (901, "try again in 16 minutes"),
    ],
)
def test_throttled_login_says_how_long_to_wait(retry_after: int, expected: str) -> None:
    _, page = _render("login.html", "en", error="throttled", retry_after=retry_after)
    assert expected in page.all_text


def test_throttled_in_chinese_uses_minutes() -> None:
    _, page = _render("login.html", "zh-CN", error="throttled", retry_after=600)
    assert "请10分钟后再试" in page.all_text


def test_reauth_tells_the_citizen_the_portal_asked_to_sign_in_again() -> None:
    _, page = _render("login.html", "en", reauth=True, client_name="Tax Portal")
    assert "Tax Portal asks you to sign in again" in page.all_text


def test_password_is_never_echoed() -> None:
    # Routers must not pass it, but even a stray context value must not reach the page.
    response, _ = _render("login.html", "en", error="invalid_credentials", password="hunter2!")
    assert "hunter2!" not in bytes(response.body).decode()


def test_totp_page_has_code_and_recovery_forms_posting_verify() -> None:
    _, page = _render("totp.html", "zh-CN")
    (code,) = page.inputs("code")
    assert code["inputmode"] == "numeric"
    assert code["autocomplete"] == "one-time-code"
    assert code["maxlength"] == "6"
    assert page.inputs("recovery_code")
    verify_forms = [f for f in page.forms if any(b["value"] == "verify" for b in f["buttons"])]
    assert len(verify_forms) == 2
    assert "cancel" in page.button_values()


@pytest.mark.parametrize("error", ["totp_invalid", "recovery_code_invalid", "throttled", "csrf"])
def test_totp_shows_each_error(error: str) -> None:
    _, page = _render("totp.html", "en", error=error, retry_after=60)
    if error == "throttled":
        assert "try again in 60 seconds" in page.all_text
    else:
        assert MESSAGES["en"][f"error.{error}"] in page.all_text


def test_recovery_code_error_opens_the_recovery_section() -> None:
    response, _ = _render("totp.html", "en", error="recovery_code_invalid")
    assert '<details class="disclosure" open>' in bytes(response.body).decode()


def test_step_up_without_authenticator_offers_only_cancel() -> None:
    _, page = _render("totp.html", "zh-CN", step_up=True, totp_enrolled=False)
    assert not page.inputs("code")
    assert not page.inputs("recovery_code")
    assert page.button_values() == {"cancel"}
    assert MESSAGES["zh-CN"]["totp.not_enrolled_heading"] in page.all_text


def test_step_up_with_authenticator_explains_why() -> None:
    _, page = _render("totp.html", "en", step_up=True, client_name="Tax Portal")
    assert "Tax Portal requires a higher level" in page.all_text
    assert page.inputs("code")


def test_enterprise_page_lists_radios_with_translated_roles() -> None:
    _, page = _render("enterprise.html", "zh-CN")
    radios = page.inputs("enterprise_id")
    assert [r["value"] for r in radios] == ["ent-1", "ent-2"]
    assert all(r["type"] == "radio" for r in radios)
    assert "法定代表人、管理员" in page.all_text
    assert "经办人、tax_filing" in page.all_text  # a service role shown as named
    assert page.button_values() == {"choose", "cancel"}


def test_enterprise_page_with_a_single_enterprise_preselects_it() -> None:
    _, page = _render("enterprise.html", "en", enterprises=[Enterprise("e", "Solo Ltd")])
    (radio,) = page.inputs("enterprise_id")
    assert "checked" in radio


def test_enterprise_page_without_enterprises_offers_only_cancel() -> None:
    _, page = _render("enterprise.html", "en", enterprises=[])
    assert not page.inputs("enterprise_id")
    assert page.button_values() == {"cancel"}
    assert MESSAGES["en"]["enterprise.none"] in page.all_text


@pytest.mark.parametrize("locale", LOCALES)
def test_consent_names_each_attribute_and_how_to_withdraw(locale: str) -> None:
    _, page = _render("consent.html", locale)
    text = page.all_text
    for key in ATTRIBUTES:
        assert MESSAGES[locale][f"attr.{key}"] in text
    assert translator(locale)("consent.withdraw", client="市政务服务网") in text
    assert page.button_values() == {"allow", "deny"}


def test_consent_with_an_unknown_attribute_fails_loudly() -> None:
    with pytest.raises(KeyError):
        _render("consent.html", "en", attributes=["shoe_size"])


def test_logout_confirm_carries_the_extra_hidden_fields() -> None:
    _, page = _render("logout_confirm.html", "en")
    hidden = {i["name"]: i["value"] for i in page.forms[0]["inputs"] if i["type"] == "hidden"}
    assert hidden == {
        "csrf_token": CSRF,
        "state": "s1",
        "post_logout_redirect_uri": "https://portal.example/bye",
    }
    assert page.button_values() == {"logout", "cancel"}


def test_logout_confirm_without_client_name() -> None:
    _, page = _render("logout_confirm.html", "zh-CN", client_name=None)
    assert MESSAGES["zh-CN"]["logout.heading"] in page.all_text


def test_logged_out_links_back_to_the_portal() -> None:
    _, page = _render("logged_out.html", "en", client_name="Tax Portal")
    assert page.links[-1] == "https://portal.example/bye"
    assert "Return to Tax Portal" in page.all_text


def test_logged_out_without_return_url_has_no_link() -> None:
    _, page = _render("logged_out.html", "en", return_url=None, client_name=None)
    assert page.links == ["#main"]  # only the skip link


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//evil.example"])
def test_logged_out_never_links_a_non_http_url(url: str) -> None:
    _, page = _render("logged_out.html", "en", return_url=url)
    assert page.links == ["#main"]


def test_status_code_is_set_by_the_caller() -> None:
    response, _ = _render("error.html", "en", error="invalid_client")
    assert response.status_code == 200
    response = render(
        "error.html", locale="en", status_code=400, error="invalid_client", description="x"
    )
    assert response.status_code == 400


def test_missing_context_value_fails_loudly() -> None:
    context = _contexts()["login.html"]
    del context["reauth"]
    with pytest.raises(UndefinedError, match="reauth"):
        render("login.html", locale="en", **context)


def test_t_is_reserved() -> None:
    with pytest.raises(TypeError):
        render("error.html", locale="en", error="e", description="d", t=str)


# Escaping and safety

HOSTILE = '<script>alert("x")</script>'


@pytest.mark.parametrize("template", [p for p in PAGES if "client_name" in _contexts()[p]])
def test_client_name_is_escaped(template: str) -> None:
    # On the TOTP page the portal is named only when it asked for a higher level.
    extra = {"step_up": True} if template == "totp.html" else {}
    response, _ = _render(template, "en", client_name=HOSTILE, **extra)
    html = bytes(response.body).decode()
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_every_context_string_is_escaped() -> None:
    response, _ = _render(
        "enterprise.html",
        "en",
        enterprises=[Enterprise('"><script>', HOSTILE, [HOSTILE])],
        csrf_token='"><script>',
    )
    html = bytes(response.body).decode()
    assert "<script" not in html
    response, _ = _render("error.html", "en", error=HOSTILE, description=HOSTILE)
    assert "<script" not in bytes(response.body).decode()
    response, _ = _render("logout_confirm.html", "en", hidden={'"><script>': HOSTILE})
    assert "<script" not in bytes(response.body).decode()


def test_role_names_with_markup_are_escaped_once() -> None:
    _, page = _render("enterprise.html", "en", enterprises=[Enterprise("e", "A&B", ["R&D"])])
    assert "Your roles: R&D" in page.all_text  # parsed text: escaped exactly once
    assert "A&B" in page.all_text


def test_error_page_has_no_form_and_no_outbound_link() -> None:
    response, page = _render(
        "error.html",
        "en",
        error="invalid_request",
        description="Redirect URI https://evil.example/cb is not registered.",
    )
    html = bytes(response.body).decode()
    assert not page.forms
    assert "<form" not in html
    assert 'action="http' not in html
    assert all(href is not None and href.startswith("#") for href in page.links)


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(path: Path) -> None:
    source = path.read_text(encoding="utf-8").lower()
    # A script file of our own is allowed (CSP script-src 'self'); a script body is not.
    source = re.sub(r'<script src="/static/[a-z]+\.js" defer></script>', "", source)
    for forbidden in ("<script", "style=", "<style", "javascript:", " on"):
        if forbidden == " on":
            # Inline event handlers (onclick=, onsubmit=…) are inline script too.
            assert not re.search(r"\son[a-z]+\s*=", source), path.name
        else:
            assert forbidden not in source, (path.name, forbidden)


def test_every_template_is_covered_by_the_tests() -> None:
    names = {p.name for p in TEMPLATES.glob("*.html") if not p.name.startswith("_")}
    assert names == set(PAGES) | {"base.html"}


# Locale negotiation


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "expected"),
    [
        (None, None, "zh-CN"),
        ("", "", "zh-CN"),
        ("en", None, "en"),
        ("en-US", None, "en"),
        ("zh", None, "zh-CN"),
        ("zh-Hans", "en", "zh-CN"),
        ("zh-CN", "en", "zh-CN"),
        ("zh_CN", "en", "zh-CN"),
        ("fr-FR en zh", None, "en"),  # first supported in preference order
        ("en-GB zh-CN", "zh-CN", "en"),  # ui_locales beats Accept-Language
        ("fr de", "en-US,en;q=0.9", "en"),  # nothing supported: fall back to the browser
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "zh-CN;q=0.5, en;q=0.8", "en"),  # q-values, not order
        (None, "en;q=0.5, zh;q=0.5", "en"),  # equal weights: earlier wins
        (None, "fr-FR, zh-Hans;q=0.7, en;q=0.3", "zh-CN"),
        (None, "en;q=0, fr", "zh-CN"),  # q=0 means "not this one"
        (None, "EN-us", "en"),
        (None, "*", "zh-CN"),
        (None, "en;q=2", "zh-CN"),  # invalid weight ignored
        (None, "en;q=nan, zh;q=0.1", "zh-CN"),
        (None, "de;q=0.9, en ;q=0.8", "en"),
    ],
)
def test_negotiate_locale(
    ui_locales: str | None, accept_language: str | None, expected: str
) -> None:
    assert negotiate_locale(ui_locales, accept_language) == expected


@pytest.mark.parametrize(
    "junk",
    [
        ";;;,,,",
        "q=0.5",
        ";q=1",
        "en;q=",
        "en;q=abc",
        "\x00\xff\u202e",
        "zh-" + "x" * 5000,
        "en," * 10000,
        "😀;q=1",
        "-en",
        "en--US",
    ],
)
def test_negotiate_locale_never_raises_on_junk(junk: str) -> None:
    assert negotiate_locale(junk, junk) in LOCALES


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_negotiate_locale_always_returns_a_supported_locale(
    ui_locales: str | None, accept_language: str | None
) -> None:
    assert negotiate_locale(ui_locales, accept_language) in LOCALES


def test_default_locale_is_simplified_chinese() -> None:
    assert DEFAULT_LOCALE == "zh-CN"
    assert LOCALES[0] == DEFAULT_LOCALE


# Static files


def test_mount_static_serves_the_stylesheet() -> None:
    app = FastAPI()
    pages.mount_static(app)
    response = TestClient(app).get("/static/onecard.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "@import" not in response.text  # no external fonts or stylesheets
    assert "url(" not in response.text
