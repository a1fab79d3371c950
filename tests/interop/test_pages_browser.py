"""The card page and the counter page in a real browser: Debian's Chromium, driven through
chromedriver by Selenium, against onecard served by uvicorn on 127.0.0.1.

What only a browser shows: the page's script runs under the site's CSP (no violation is
logged), the QR image it shows decodes (zxing-cpp, from a screenshot) to the very token the
page holds, the countdown runs, and a new code replaces the old one before it expires. To see
a minute pass in seconds, the page's monotonic clock (``performance.now``) runs twelve times
faster; the service's clock is not touched, so the codes are real.

Needs ``chromium`` and ``chromedriver`` (``make test`` installs Debian's packages). Without
them the tests are skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
import zxingcpp
from PIL import Image

from onecard.api.routers.cards import card_code
from onecard.card import cards
from onecard.card.purpose import Purpose
from onecard.card.terminals import TerminalSpec, create_terminal
from onecard.core.audit import Actor
from onecard.identity import credentials
from onecard.identity.credentials import set_password
from onecard.identity.models import AssuranceLevel, Person, StaffRoleName
from onecard.identity.staff import grant_role
from tests.factories import identity_number, person
from tests.interop.live_server import live_onecard

PASSWORD = "correct horse battery"
SPEED = 12  # how much faster the page's clock runs
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail("CI must run the browser tests: chromium and chromedriver are missing")
    pytest.skip(
        "needs chromium and chromedriver (make test installs them)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402 (only with a browser to drive)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

# The page's clock, SPEED times faster from the moment the page starts.
_FAST_CLOCK = f"""
(() => {{
  const real = performance.now.bind(performance);
  const start = real();
  performance.now = () => start + (real() - start) * {SPEED};
}})();
"""


@pytest.fixture(scope="module")
def server(database_factory, master_key, tmp_path_factory):  # type: ignore[no-untyped-def]
    with live_onecard(database_factory, master_key, tmp_path_factory, "browser") as live:
        yield live.base, live.runtime


@pytest.fixture
def chrome() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=800,1200")
    options.add_argument("--lang=en")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _account(runtime, *, level: int = 1, roles: tuple[str, ...] = ()) -> tuple[str, Person]:  # type: ignore[no-untyped-def]
    number = identity_number()
    with runtime.database.session() as session:
        member = person(session, runtime.sealer, level=AssuranceLevel(level), number=number)
        set_password(
            session, runtime.sealer, runtime.hasher, member, PASSWORD, actor=Actor.system()
        )
        for role in roles:
            grant_role(session, member, StaffRoleName(role), actor=Actor.system(), granted_by=None)
    return number, member


def _sign_in(driver, login: str, totp: pyotp.TOTP | None = None) -> None:  # type: ignore[no-untyped-def]
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, 'button[value="login"]').click()
    if totp is not None:
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.NAME, "code"))
        driver.find_element(By.NAME, "code").send_keys(totp.now())
        driver.find_element(By.CSS_SELECTOR, 'button[value="verify"]').click()


def _severe_console_entries(driver) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _shown_code(driver) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The token the page holds, and the text of the QR image it shows (from a screenshot)."""
    text = driver.find_element(By.ID, "qr-text").get_attribute("textContent")
    png = driver.find_element(By.ID, "qr-image").screenshot_as_png
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))
    assert len(found) == 1, "the page's QR image does not decode"
    return text, found[0].text


def test_the_card_page_shows_a_code_that_decodes_counts_down_and_is_replaced_in_time(  # type: ignore[no-untyped-def]
    server, chrome
) -> None:
    base, runtime = server
    login, member = _account(runtime)
    with runtime.database.session() as session:
        cards.issue_card(session, member.id, actor=Actor.system())
    chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _FAST_CLOCK})

    chrome.get(base + "/card")
    _sign_in(chrome, login)
    WebDriverWait(chrome, 10).until(lambda d: d.find_elements(By.ID, "qr-image"))
    first_text, first_image = _shown_code(chrome)
    assert first_text.startswith("OC1:")
    assert first_image == first_text

    countdown = chrome.find_element(By.ID, "qr-countdown")
    seen = [countdown.text]
    deadline = time.monotonic() + 60 / SPEED + 5
    while time.monotonic() < deadline:
        seen.append(countdown.text)
        if chrome.find_element(By.ID, "qr-text").get_attribute("textContent") != first_text:
            break
        time.sleep(0.2)
    second_text, second_image = _shown_code(chrome)
    assert second_text != first_text, f"the code was not replaced; countdown showed {seen}"
    assert second_image == second_text
    # It counted down, and the new code came while the old one was still valid: never a
    # moment without a valid code on screen.
    numbers = [int("".join(ch for ch in s if ch.isdigit()) or -1) for s in seen]
    assert max(numbers) >= 55
    assert 0 < min(n for n in numbers if n >= 0) <= 12
    assert "expired" not in (chrome.find_element(By.ID, "qr").get_attribute("class") or "")
    assert _severe_console_entries(chrome) == []


def test_the_counter_page_verifies_a_pasted_code(server, chrome) -> None:  # type: ignore[no-untyped-def]
    base, runtime = server
    officer_login, officer = _account(runtime, level=2, roles=("card_officer",))
    with runtime.database.session() as session:
        enrolment = credentials.begin_totp_enrolment(
            session, runtime.sealer, officer, actor=Actor.system(), label="browser"
        )
        totp = pyotp.TOTP(enrolment.secret)
        # Confirmed with the previous step's code, so the current one is left for the sign-in.
        credentials.confirm_totp(
            session, runtime.sealer, officer, totp.at(time.time() - 30), actor=Actor.system()
        )
        spec = TerminalSpec("Counter 2", "Huangpu hall", "City social security", Purpose("bank"))
        terminal = create_terminal(session, spec, actor=Actor.system()).terminal
    _, holder = _account(runtime, level=2)
    with runtime.database.session() as session:
        cards.issue_card(session, holder.id, actor=Actor.system())

    chrome.get(base + "/counter")
    _sign_in(chrome, officer_login, totp)
    WebDriverWait(chrome, 10).until(lambda d: d.find_elements(By.ID, "terminal"))
    assert chrome.switch_to.active_element.get_attribute("id") == "code"  # ready for a scanner
    Select(chrome.find_element(By.ID, "terminal")).select_by_value(str(terminal.id))
    token = card_code(runtime, holder.id, Purpose.BANK).token
    chrome.find_element(By.ID, "code").send_keys(token + "\n")  # a scanner ends with Enter
    WebDriverWait(chrome, 10).until(lambda d: d.find_elements(By.ID, "result"))
    result = chrome.find_element(By.ID, "result")
    assert result.get_attribute("data-result") == "valid"
    assert result.find_elements(By.CSS_SELECTOR, '[data-field="bank_cards_masked"]')
    assert not result.find_elements(By.CSS_SELECTOR, '[data-field="name"]')

    chrome.find_element(By.ID, "code").send_keys(token + "\n")  # the same code again
    WebDriverWait(chrome, 10).until(
        lambda d: d.find_element(By.ID, "result").get_attribute("data-result") == "refused"
    )
    assert chrome.find_element(By.ID, "result").get_attribute("data-reason") == "replayed"
    assert _severe_console_entries(chrome) == []
