"""A real Chromium on a private index: after signing out, Back does not show
a private page again (it is ``no-store``); the API tokens and two-factor
pages fit 1280 and 390 px (screenshots in each test's tmp_path), copy a new
token with its button under the site's CSP, and show "Revoke" as dangerous;
the two-factor QR code fills its box with a 4-module quiet zone.

One server (SQLite, demo data, ``myapp.read_access = authenticated``) serves
the module; the browser and helpers are ``tests.test_browser``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import test_browser as chromium
from tests.accounts import PASSWORD, unique
from tests.conftest import LiveServer, live_server
from tests.test_browser import Problems, open_page
from tests.test_upload import add_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WIDTHS = [1280, 390]
browser = chromium.browser  # the fixtures: one Chromium for the module, and what went wrong in it
problems = chromium.problems
# Whatever in the page is cut off at the right: it reaches past the window, or
# it scrolls sideways inside its box. (Visually hidden text, 1 px wide on purpose, aside.)
CUT_OFF = """() => [...document.querySelectorAll("main *")]
  .filter((e) => e.getBoundingClientRect().width > 1)
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5
    || (getComputedStyle(e).overflowX !== "visible" && e.scrollWidth > e.clientWidth + 1))
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = {"myapp.read_access": "authenticated"}
    with live_server("sqlite", tmp_path_factory.mktemp("private-browser"), demo=True, settings=settings) as live:
        yield live


def first_project(server: LiveServer) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.url)
    with engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM packages ORDER BY name LIMIT 1")).scalar_one()
    engine.dispose()
    return name


def sign_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(server.base + "/account/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]:text('Log in')")
    page.wait_for_url(re.compile(r"/account$"))


@contextmanager
def new_user_signed_in(server: LiveServer, browser: Browser, problems: Problems, width: int) -> Iterator[Page]:
    """A page at ``width`` px, signed in as a new user (made with ``myapp-adduser``)."""
    phone = width < 800
    name = unique("user")
    add_user(server, name)
    page = open_page(browser, problems, viewport={"width": width, "height": 844}, is_mobile=phone, has_touch=phone)
    try:
        sign_in(page, server, name)
        yield page
    finally:
        page.context.close()
    problems.assert_none()


def fits(page: Page, label: str) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{label} scrolls sideways: scrollWidth {widths[0]} > {widths[1]}"
    assert page.evaluate(CUT_OFF) == [], f"{label} cuts content off"


def test_back_after_signing_out_does_not_show_the_private_page(
    server: LiveServer, browser: Browser, problems: Problems, tmp_path: Path
):
    from playwright.sync_api import expect

    name, project = unique("reader"), first_project(server)
    add_user(server, name)
    page = open_page(browser, problems, viewport={"width": 1280, "height": 900})
    try:
        sign_in(page, server, name)
        page.goto(server.base + f"/project/{project}/")
        expect(page.locator(".project-header h1")).to_contain_text(project)
        page.click(".account-nav button:text('Log out')")
        page.wait_for_url(re.compile(r"/account/login"))  # home is private too
        page.go_back()
        page.screenshot(path=tmp_path / "after-back.png", full_page=True)
        expect(page.locator(".project-header")).to_have_count(0)
        expect(page.locator("main h1")).to_have_text("Log in")
        assert name not in page.content()
    finally:
        page.context.close()
    problems.assert_none()


@pytest.mark.parametrize("width", WIDTHS)
def test_tokens_page_fits_copies_and_marks_revoke_as_dangerous(
    server: LiveServer, browser: Browser, problems: Problems, tmp_path: Path, width: int
):
    from playwright.sync_api import expect

    with new_user_signed_in(server, browser, problems, width) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
        page.goto(server.base + "/account/tokens")
        for label in ("laptop", "a-rather-long-token-name-for-the-ci-server"):
            page.fill("#name", label)
            page.click("form button[type=submit]:text('Create token')")
            expect(page.locator(".new-token")).to_be_visible()
        page.screenshot(path=tmp_path / f"tokens-new-{width}.png", full_page=True)
        fits(page, f"the tokens page at {width} px")

        value = page.locator(".new-token").text_content()
        assert value and value.startswith("myapp-")
        button = page.locator(".new-token-box button.copy")
        expect(button).to_be_visible()
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == value
        box = page.locator(".new-token").bounding_box()
        assert box and box["x"] + box["width"] <= width, "the new token is cut off"

        revoke = page.locator("table.tokens button:text('Revoke')").first
        expect(revoke).to_be_visible()
        assert revoke.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "Revoke is cut off"
        right = revoke.bounding_box()
        assert right and right["x"] + right["width"] <= width
        color = revoke.evaluate("(e) => getComputedStyle(e).backgroundColor + ' ' + getComputedStyle(e).color")
        red, green, blue = (int(n) for n in re.findall(r"\d+", color)[:3])
        assert red > 150 and green < 100 and blue < 100, f"Revoke does not look dangerous: {color}"
        page.goto(server.base + "/account/tokens")
        page.screenshot(path=tmp_path / f"tokens-{width}.png", full_page=True)
        fits(page, f"the tokens page at {width} px")


@pytest.mark.parametrize("width", WIDTHS)
def test_two_factor_setup_fits_and_its_qr_code_fills_its_box(
    server: LiveServer, browser: Browser, problems: Problems, tmp_path: Path, width: int
):
    from playwright.sync_api import expect

    with new_user_signed_in(server, browser, problems, width) as page:
        page.goto(server.base + "/account/two-factor")
        qr = page.locator(".qr svg")
        expect(qr).to_be_visible()
        page.screenshot(path=tmp_path / f"two-factor-{width}.png", full_page=True)
        fits(page, f"the two-factor page at {width} px")
        box, svg = page.locator(".qr").bounding_box(), qr.bounding_box()
        assert box and svg
        assert abs(box["width"] - svg["width"]) <= 2 and abs(box["height"] - svg["height"]) <= 2, (box, svg)
        assert svg["width"] >= 160, f"a QR code {svg['width']} px wide is hard to scan"
        # The quiet zone: 4 modules of white around the code (ISO/IEC 18004).
        modules, border = qr.evaluate(
            """(svg) => {
              const [, , w] = svg.getAttribute("viewBox").split(" ").map(Number);
              const path = svg.querySelector("path.qrline");
              const first = path.getAttribute("d").match(/M(\\d+)/);
              return [w, Number(first[1])];
            }"""
        )
        assert border == 4, f"quiet zone of {border} modules"
        assert svg["width"] / modules >= 4, f"{modules} modules in {svg['width']} px: too small to scan"
        assert "recovery code" not in page.locator("label[for=code]").inner_text().lower()
