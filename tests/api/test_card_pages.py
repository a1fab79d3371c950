"""onecard's own pages: the citizen's card page (live QR code, countdown, refresh) and the
counter page (a card officer pastes or photographs a code and sees the disclosure).

Each test signs in the way a browser does, through the authorization endpoint's forms, so the
pages' own client, its PKCE and ``state``, and the step-up to level 2 for the counter are
exercised end to end."""

from __future__ import annotations

import base64
import re
from html import unescape
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from onecard.api.pages import LOCALES, render
from onecard.api.portal import CARD_PAGE, COUNTER_PAGE
from onecard.card import cards
from onecard.card.models import CardVerification
from onecard.card.purpose import Purpose
from onecard.card.qr import render_png
from onecard.card.token import InvalidCardReason
from onecard.card.verify import OfflineVerifier
from onecard.core.audit import Actor
from onecard.identity.models import StaffRole, StaffRoleName
from onecard.identity.oidc.first_party import PORTAL_CLIENT_ID
from onecard.identity.oidc.models import Grant
from onecard.identity.staff import grant_role, withdraw_role
from tests.api.page_contexts import DISCLOSURES, TERMINAL, card_page_context, counter_page_context
from tests.api.test_oidc_flows import (
    PASSWORD,
    browser,
    enrol_totp,
    frozen_at_step,
    make_account,
)
from tests.oidc_flow import form_action, form_fields

__all__ = ["browser", "frozen_at_step"]  # fixtures, used by name


def _walk(browser, path: str, login: str, *, totp: str | None = None):  # type: ignore[no-untyped-def]
    """Open ``path`` in ``browser`` and answer the sign-in pages until a page is shown."""
    response = browser.get(path, follow_redirects=False)
    for _ in range(12):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            target = urlsplit(location)
            response = browser.get(
                target.path + ("?" + target.query if target.query else ""),
                follow_redirects=False,
            )
            continue
        if response.status_code != 200 or "<form" not in response.text:
            return response
        action = form_action(response.text)
        if not action.startswith("/oauth2/"):
            return response  # the page itself (its own forms)
        fields = form_fields(response.text)
        data = {"csrf_token": fields["csrf_token"], "txn": fields["txn"]}
        step = action.rsplit("/", 1)[-1]
        if step == "login":
            data.update(login=login, password=PASSWORD, action="login")
        elif step == "totp" and totp is not None:
            data.update(action="verify", code=totp)
        else:
            return response
        response = browser.post(action, data=data, follow_redirects=False)
    raise AssertionError("the sign-in did not end")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:400]
    return unescape(match.group(1))


def _qr(html: str) -> dict[str, str]:
    figure = re.search(r'<figure class="qr" id="qr"([^>]*)>', html)
    assert figure, html[:400]
    attributes = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', figure.group(1)))
    text = re.search(r'<code id="qr-text">([^<]+)</code>', html)
    assert text
    return {**{k: unescape(v) for k, v in attributes.items()}, "token": unescape(text.group(1))}


def _verifier(runtime, now: float) -> OfflineVerifier:  # type: ignore[no-untyped-def]
    from onecard.card.trustlist import TrustList
    from onecard.core import clock

    with runtime.database.read_session() as session:
        jws = runtime.trust_list.current(session)
        jwks = runtime.keyring.jwks(session)
    return OfflineVerifier(TrustList.from_jws(jws, jwks, now=clock.now()), clock=lambda: now)


def _card_holder(runtime, *, level: int = 1):  # type: ignore[no-untyped-def]
    account = make_account(runtime, level=level)
    with runtime.database.session() as session:
        cards.issue_card(session, account.id, actor=Actor.system())
    return account


# -- the card page ------------------------------------------------------------------------


def test_the_card_page_signs_in_and_shows_a_live_code_that_verifies(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    page = _walk(browser(), "/card?purpose=social_security", account.login)
    assert page.status_code == 200, page.text[:500]
    assert page.headers["cache-control"] == "no-store"
    qr = _qr(page.text)
    assert qr["token"].startswith("OC1:")
    assert int(qr["data-expires-at"]) - int(qr["data-now"]) == 60
    assert qr["data-code-url"] == "/card/code?purpose=social_security"
    assert '<script src="/static/card.js" defer></script>' in page.text
    # Without scripts the page reloads itself 10 s before the code expires.
    assert '<noscript><meta http-equiv="refresh" content="50"></noscript>' in page.text
    verifier = _verifier(runtime, float(qr["data-now"]))
    assert verifier.verify(qr["token"], purpose=Purpose.SOCIAL_SECURITY).card_reference


def test_the_pages_script_gets_a_fresh_code_as_json_with_its_image(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    from onecard.card.qr import render_svg

    account = _card_holder(runtime)
    b = browser()
    first = _qr(_walk(b, "/card", account.login).text)["token"]
    fresh = b.get("/card/code", params={"purpose": "bank"})
    assert fresh.status_code == 200
    assert fresh.headers["cache-control"] == "no-store"
    body = fresh.json()
    assert body["token"] != first
    assert body["purpose"] == "bank"
    assert body["expires_at"] - body["now"] == 60
    prefix = "data:image/svg+xml;base64,"
    assert body["image"].startswith(prefix)
    assert base64.b64decode(body["image"][len(prefix) :]) == render_svg(body["token"])


def test_the_script_is_told_to_sign_in_again_when_the_session_ends(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    _walk(b, "/card", account.login)
    assert b.get("/card/code").status_code == 200
    with runtime.database.session() as session:  # e.g. the citizen signed out elsewhere
        for grant in session.exec(select(Grant).where(Grant.person_id == account.id)):
            grant.revoked_at = grant.created_at
            session.add(grant)
    refused = b.get("/card/code")
    assert refused.status_code == 401
    assert refused.json()["code"] == "sign_in_required"
    again = b.get("/card", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/oauth2/authorize?")


def test_the_sign_in_uses_pkce_and_state_and_needs_no_consent(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    start = b.get("/card", follow_redirects=False)
    assert start.status_code == 303
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    assert query["client_id"] == PORTAL_CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/card/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["scope"] == "openid account"
    assert len(query["state"]) >= 32
    assert "acr_values" not in query
    page = _walk(b, "/card", account.login)
    assert page.status_code == 200
    assert 'id="qr"' in page.text


def test_a_callback_from_another_browser_or_without_iss_is_refused(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    victim, attacker = browser(), browser()
    # The attacker's own authorization response, replayed in the victim's browser (login CSRF).
    start = attacker.get("/card", follow_redirects=False)
    walk = attacker.get(start.headers["location"], follow_redirects=False)
    fields = form_fields(walk.text)
    answer = attacker.post(
        form_action(walk.text),
        data={**fields, "login": account.login, "password": PASSWORD, "action": "login"},
        follow_redirects=False,
    )
    callback = answer.headers["location"]
    assert "/card/callback?" in callback
    victim.get("/card", follow_redirects=False)  # the victim's own sign-in is under way
    refused = victim.get(urlsplit(callback).path + "?" + urlsplit(callback).query)
    assert refused.status_code == 400
    assert "sign_in_expired" in refused.text
    assert "oc_card=" not in refused.headers.get("set-cookie", "")
    # In the attacker's own browser, a missing iss is refused too (RFC 9207).
    no_iss = re.sub(r"&iss=[^&]*", "", urlsplit(callback).query)
    refused = attacker.get("/card/callback?" + no_iss)
    assert refused.status_code == 400
    assert "invalid_issuer" in refused.text


def test_card_page_forms_need_their_csrf_token(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    page = _walk(b, "/card", account.login)
    refused = b.post("/card/report-lost", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    with runtime.database.read_session() as session:
        assert cards.card_of_person(session, account.id).status == "active"
    lost = b.post(
        "/card/report-lost", data={"csrf_token": _csrf(page.text)}, follow_redirects=False
    )
    assert lost.status_code == 303
    shown = b.get("/card")
    assert 'data-status="lost"' in shown.text
    assert 'id="qr"' not in shown.text
    assert b.get("/card/code").json()["code"] == "card_not_active"
    replaced = b.post("/card/reissue", data={"csrf_token": _csrf(shown.text)})
    assert replaced.status_code == 200
    assert 'data-status="active"' in replaced.text


def test_a_citizen_without_a_card_gets_one_from_the_page(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = make_account(runtime)
    b = browser()
    page = _walk(b, "/card", account.login)
    assert 'action="/card/get"' in page.text
    got = b.post("/card/get", data={"csrf_token": _csrf(page.text)})
    assert got.status_code == 200
    assert 'id="qr"' in got.text


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_card_page_renders_in_each_locale(runtime, browser, locale: str) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    b.headers["Accept-Language"] = locale
    page = _walk(b, "/card", account.login)
    assert page.headers["content-language"] == locale


# -- the counter page ---------------------------------------------------------------------


def _terminal(runtime, purpose: str):  # type: ignore[no-untyped-def]
    from onecard.card.purpose import Purpose
    from onecard.card.terminals import TerminalSpec, create_terminal

    with runtime.database.session() as session:
        spec = TerminalSpec(
            "Counter 2", "Huangpu service hall", "City social security", Purpose(purpose)
        )
        return create_terminal(session, spec, actor=Actor.system()).terminal


def _officer(runtime, step: int, *roles: str):  # type: ignore[no-untyped-def]
    account = enrol_totp(runtime, make_account(runtime, level=2), step - 1)
    with runtime.database.session() as session:
        from onecard.identity.models import Person

        member = session.get_one(Person, account.id)
        for role in roles:
            grant_role(session, member, StaffRoleName(role), actor=Actor.system(), granted_by=None)
    return account


def _code_for(runtime, account, purpose: str) -> str:  # type: ignore[no-untyped-def]
    from onecard.api.routers.cards import card_code
    from onecard.card.purpose import Purpose

    return card_code(runtime, account.id, Purpose(purpose)).token


def _counter(runtime, browser, frozen_at_step):  # type: ignore[no-untyped-def]
    _, step = frozen_at_step
    officer = _officer(runtime, step, "card_officer")
    b = browser()
    page = _walk(b, "/counter", officer.login, totp=officer.totp.generate_otp(step))
    assert page.status_code == 200, page.text[:400]
    return b, page, officer


def test_the_counter_page_asks_for_the_second_factor(runtime, browser, frozen_at_step) -> None:  # type: ignore[no-untyped-def]
    _, step = frozen_at_step
    officer = _officer(runtime, step, "card_officer")
    b = browser()
    start = b.get("/counter", follow_redirects=False)
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["acr_values"] == ["urn:onecard:loa:2"]
    assert query["scope"] == ["openid staff"]
    stopped = _walk(b, "/counter", officer.login)  # no code given: stops at the TOTP page
    assert form_action(stopped.text).endswith("/totp")


def test_a_clerk_pastes_a_code_and_sees_the_social_security_disclosure_once(  # type: ignore[no-untyped-def]
    runtime, browser, frozen_at_step
) -> None:
    terminal = _terminal(runtime, "social_security")
    b, page, _ = _counter(runtime, browser, frozen_at_step)
    holder = _card_holder(runtime)
    token = _code_for(runtime, holder, "social_security")
    form = {"csrf_token": _csrf(page.text), "terminal": str(terminal.id), "code": token}
    shown = b.post("/counter", data=form)
    assert shown.status_code == 200
    assert 'data-result="valid"' in shown.text
    assert 'data-field="name"' in shown.text
    assert 'data-field="identity_number_masked"' in shown.text
    assert 'data-field="bank_cards_masked"' not in shown.text
    assert "*" in re.search(r'data-field="identity_number_masked"[^>]*>([^<]+)<', shown.text).group(
        1
    )
    with runtime.database.read_session() as session:
        rows = session.exec(
            select(CardVerification).where(CardVerification.person_id == holder.id)
        ).all()
    assert [row.terminal_id for row in rows] == [terminal.id]
    again = b.post("/counter", data={**form, "csrf_token": _csrf(shown.text)})
    assert 'data-reason="replayed"' in again.text
    assert f'value="{terminal.id}" selected' in again.text  # the counter is remembered


def test_a_clerk_photographs_a_code(runtime, browser, frozen_at_step) -> None:  # type: ignore[no-untyped-def]
    terminal = _terminal(runtime, "transit")
    b, page, _ = _counter(runtime, browser, frozen_at_step)
    holder = _card_holder(runtime)
    photo = render_png(_code_for(runtime, holder, "transit"))
    shown = b.post(
        "/counter",
        data={"csrf_token": _csrf(page.text), "terminal": str(terminal.id)},
        files={"photo": ("code.png", photo, "image/png")},
    )
    assert 'data-result="valid"' in shown.text
    assert 'data-field="transit_linked"' in shown.text
    assert 'data-field="name"' not in shown.text


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("OC1:NOT-A-CODE", "bad_encoding"),
        ("HC1:6BFOXN", "bad_prefix"),
        ("OC1:" + "A" * 1200, "oversize"),
    ],
)
def test_bad_codes_are_refused_with_their_reason(  # type: ignore[no-untyped-def]
    runtime, browser, frozen_at_step, code: str, reason: str
) -> None:
    terminal = _terminal(runtime, "transit")
    b, page, _ = _counter(runtime, browser, frozen_at_step)
    shown = b.post(
        "/counter",
        data={"csrf_token": _csrf(page.text), "terminal": str(terminal.id), "code": code},
    )
    assert shown.status_code == 200
    assert f'data-reason="{reason}"' in shown.text


def test_the_wrong_purpose_and_a_photo_without_a_code_are_refused(  # type: ignore[no-untyped-def]
    runtime, browser, frozen_at_step
) -> None:
    import io

    from PIL import Image

    terminal = _terminal(runtime, "bank")
    b, page, _ = _counter(runtime, browser, frozen_at_step)
    holder = _card_holder(runtime)
    base = {"csrf_token": _csrf(page.text), "terminal": str(terminal.id)}
    wrong = b.post("/counter", data={**base, "code": _code_for(runtime, holder, "transit")})
    assert 'data-reason="wrong_purpose"' in wrong.text
    blank = io.BytesIO()
    Image.new("L", (64, 64), 255).save(blank, format="PNG")
    empty = b.post("/counter", data=base, files={"photo": ("x.png", blank.getvalue(), "image/png")})
    assert empty.status_code == 422
    assert 'data-error="image_without_code"' in empty.text
    junk = b.post("/counter", data=base, files={"photo": ("x.png", b"not an image", "image/png")})
    assert junk.status_code == 422
    assert 'data-error="image_unreadable"' in junk.text
    nothing = b.post("/counter", data=base)
    assert nothing.status_code == 422
    assert 'data-error="code_required"' in nothing.text
    with runtime.database.read_session() as session:
        assert not session.exec(
            select(CardVerification).where(CardVerification.person_id == holder.id)
        ).all()


def test_the_counter_refuses_forged_forms_and_oversized_photos(  # type: ignore[no-untyped-def]
    runtime, browser, frozen_at_step
) -> None:
    terminal = _terminal(runtime, "transit")
    b, page, _ = _counter(runtime, browser, frozen_at_step)
    holder = _card_holder(runtime)
    token = _code_for(runtime, holder, "transit")
    forged = b.post(
        "/counter", data={"csrf_token": "x", "terminal": str(terminal.id), "code": token}
    )
    assert forged.status_code == 403
    huge = b.post(
        "/counter",
        data={"csrf_token": _csrf(page.text), "terminal": str(terminal.id)},
        files={"photo": ("big.png", b"\0" * (11 * 1024 * 1024), "image/png")},
    )
    assert huge.status_code == 413
    # Neither consumed the code: it still verifies.
    shown = b.post(
        "/counter",
        data={"csrf_token": _csrf(page.text), "terminal": str(terminal.id), "code": token},
    )
    assert 'data-result="valid"' in shown.text


def test_only_card_officers_use_the_counter_and_a_withdrawn_role_ends_at_once(  # type: ignore[no-untyped-def]
    runtime, browser, frozen_at_step
) -> None:
    _, step = frozen_at_step
    registrar = _officer(runtime, step, "registrar")
    page = _walk(browser(), "/counter", registrar.login, totp=registrar.totp.generate_otp(step))
    assert page.status_code == 403
    b, page, officer = _counter(runtime, browser, frozen_at_step)
    with runtime.database.session() as session:
        role = session.exec(select(StaffRole).where(StaffRole.person_id == officer.id)).one()
        withdraw_role(session, role.id, actor=Actor.system(), withdrawn_by=None)
    assert b.get("/counter").status_code == 403


def test_a_level_1_session_is_stepped_up_for_the_counter(runtime, browser, frozen_at_step) -> None:  # type: ignore[no-untyped-def]
    _, step = frozen_at_step
    officer = _officer(runtime, step, "card_officer")
    b = browser()
    assert _walk(b, "/card", officer.login).status_code == 200  # signed in at level 1
    page = _walk(b, "/counter", officer.login, totp=officer.totp.generate_otp(step))
    assert page.status_code == 200
    assert 'action="/counter"' in page.text


def test_page_cookies_are_scoped_to_their_pages(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    _walk(b, "/card", account.login)
    cookie = next(c for c in b.cookies.jar if c.name == CARD_PAGE.session_cookie)
    assert cookie.path == CARD_PAGE.path
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert not any(c.name == COUNTER_PAGE.session_cookie for c in b.cookies.jar)


# -- every state of both pages, in every locale (a missing message fails here) ------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("status", [None, "active", "suspended", "lost", "closed"])
def test_the_card_page_renders_every_status(locale: str, status: str | None) -> None:
    html = bytes(render("card.html", locale=locale, **card_page_context(status)).body).decode()
    assert ('id="qr"' in html) == (status == "active")
    assert ('action="/card/reissue"' in html) == (status == "lost")
    assert ('action="/card/get"' in html) == (status is None)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_counter_page_renders_every_outcome(locale: str) -> None:
    outcomes = [
        SimpleNamespace(terminal=TERMINAL, disclosure=d, refused=None) for d in DISCLOSURES.values()
    ]
    outcomes += [
        SimpleNamespace(terminal=TERMINAL, disclosure=None, refused=str(reason))
        for reason in InvalidCardReason
    ]
    for outcome in outcomes:
        html = bytes(
            render("counter.html", locale=locale, **counter_page_context(outcome=outcome)).body
        ).decode()
        assert 'id="result"' in html
    for error in COUNTER_ERRORS:
        context = counter_page_context(outcome=None, error=error)
        html = bytes(render("counter.html", locale=locale, **context).body).decode()
        assert f'data-error="{error}"' in html
    empty = render(
        "counter.html", locale=locale, **counter_page_context(terminals=[], outcome=None)
    )
    assert b'action="/counter"' not in bytes(empty.body)


# Every code the counter page may show above its form.
COUNTER_ERRORS = (
    "terminal_required",
    "terminal_not_active",
    "code_required",
    "image_too_large",
    "image_unreadable",
    "image_without_code",
    "image_many_codes",
)


def test_signing_out_from_the_card_page_ends_the_session_and_closes_the_page(  # type: ignore[no-untyped-def]
    runtime, browser
) -> None:
    from html import unescape as html_unescape

    account = _card_holder(runtime)
    b = browser()
    page = _walk(b, "/card", account.login)
    link = html_unescape(re.search(r'<p class="signout"><a href="([^"]+)"', page.text).group(1))
    assert link.startswith("/oauth2/logout?client_id=onecard-portal&post_logout_redirect_uri=")
    confirm = b.get(link)
    assert confirm.status_code == 200
    fields = form_fields(confirm.text)
    done = b.post(
        form_action(confirm.text), data={**fields, "action": "logout"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("http://testserver/card")
    assert b.get("/card/code").status_code == 401  # the grant went with the session
    again = b.get("/card", follow_redirects=False)
    assert again.headers["location"].startswith("/oauth2/authorize?")


def test_non_ascii_csrf_tokens_and_states_are_refused_not_crashed(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    account = _card_holder(runtime)
    b = browser()
    _walk(b, "/card", account.login)
    assert b.post("/card/report-lost", data={"csrf_token": "令牌é"}).status_code == 403
    # The sign-in pages' own forms, and the callback's state, take the same care.
    assert (
        b.post("/oauth2/authorize/login", data={"csrf_token": "令牌", "txn": "x"}).status_code
        == 403
    )
    b.get("/card/code")  # still signed in
    fresh = browser()
    fresh.get("/card", follow_redirects=False)
    answer = fresh.get(
        "/card/callback", params={"state": "状态", "code": "x", "iss": "http://testserver"}
    )
    assert answer.status_code == 400
    assert "sign_in_expired" in answer.text


def test_the_counter_reads_no_upload_before_knowing_the_officer(runtime, browser) -> None:  # type: ignore[no-untyped-def]
    stranger = browser()
    answer = stranger.post(
        "/counter",
        files={"photo": ("big.png", b"\0" * (11 * 1024 * 1024), "image/png")},
        follow_redirects=False,
    )
    assert answer.status_code == 303  # sent to sign in, body unread
    assert answer.headers["location"].startswith("/oauth2/authorize?")
