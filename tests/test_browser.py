"""A real Chromium walks the site as a person would: home, search, project,
release, at desktop and phone widths (screenshots in each test's tmp_path),
copying with the copy buttons; accounts, uploads and yanks.

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (its own
browser download is not used). Without them the tests skip, except under
``CI=true``, where they fail. One server (SQLite, demo data) and one browser
serve the whole module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import LiveServer, live_server, missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The network is closed: nothing may phone home.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000
SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Reports CSP violations to Python from every page, across navigations.
# Playwright's init scripts are not subject to the page's CSP.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} on ${e.documentURI}`);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server("sqlite", tmp_path_factory.mktemp("browser"), demo=True) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing(f"the playwright package cannot be imported ({exc})")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Problems:
    """What went wrong in the browser while a test ran."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def assert_none(self) -> None:
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.csp_violations == [], f"CSP violations: {self.csp_violations}"


def open_page(browser: Browser, problems: Problems, **context_options: Any) -> Page:
    context = browser.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.expose_function("reportCspViolation", lambda report: problems.csp_violations.append(report))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    return page


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: Browser, problems: Problems) -> Iterator[Page]:
    page = open_page(browser, problems, viewport={"width": 1280, "height": 900})
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def phone(browser: Browser, problems: Problems) -> Iterator[Page]:
    page = open_page(browser, problems, viewport={"width": 375, "height": 700}, is_mobile=True, has_touch=True)
    try:
        yield page
    finally:
        page.context.close()


def as_int(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_search_then_open_project_and_release(server: LiveServer, page: Page, problems: Problems, tmp_path: Path):
    from playwright.sync_api import expect

    # Home: title, counts, a search box.
    page.goto(server.base + "/")
    expect(page).to_have_title(re.compile(r"^Home · myapp package index$"))
    counts = page.locator("ul.counts li")
    expect(counts).to_have_count(3)
    for label, item in zip(["projects", "releases", "files"], counts.all(), strict=True):
        expect(item).to_contain_text(label)
        assert as_int(item.locator("strong").inner_text()) > 0, f"no {label} counted"

    # Type a query into the big search box and press Enter.
    box = page.locator(".hero form.search input[name='q']")
    expect(box).to_be_visible()
    box.click()
    box.press_sequentially("cache")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=cache$"))

    # Results: "N results for “cache”", and that many projects listed.
    heading = page.locator("main h1")
    expect(heading).to_have_text(re.compile(r"^\d+ results? for “cache”$"))
    total = int(heading.inner_text().split()[0])
    assert total > 0
    links = page.locator("main .project-list a.project-name")
    assert 0 < links.count() <= total
    first = links.first
    name = first.inner_text().strip()
    assert "cache" in name
    first.click()

    # Project page: name, pip install line, release history.
    page.wait_for_url(re.compile(rf"/project/{re.escape(name)}/$"))
    expect(page.locator(".project-header h1")).to_contain_text(name)
    # The install line names this index: not the public project of the same name.
    pip_line = rf"^pip install --index-url http://127\.0\.0\.1:\d+/simple/ {re.escape(name)}"
    expect(page.locator("pre.install").first).to_have_text(re.compile(pip_line))
    releases = page.locator("ul.releases li a")
    assert releases.count() > 0, "no releases listed"
    page.screenshot(path=tmp_path / "project.png", full_page=True)
    version = releases.first.inner_text().strip()
    releases.first.click()

    # Release page: the files list a wheel and an sdist with their hashes.
    page.wait_for_url(re.compile(rf"/project/{re.escape(name)}/{re.escape(version)}/$"))
    expect(page.locator("article.release > h1")).to_contain_text(version)
    rows = page.locator("ul.files li.file")
    assert rows.count() >= 2
    files = {
        row.locator("a.filename").inner_text().strip(): row.locator("code.hash").text_content() for row in rows.all()
    }
    assert any(f.endswith(".whl") for f in files), files
    assert any(f.endswith(".tar.gz") for f in files), files
    for filename, digest in files.items():
        assert SHA256.match(digest), f"{filename}: bad sha256 {digest!r}"

    problems.assert_none()


def test_home_fits_a_phone_screen(server: LiveServer, phone: Page, problems: Problems, tmp_path: Path):
    from playwright.sync_api import expect

    phone.goto(server.base + "/")
    expect(phone.locator(".hero form.search input[name='q']")).to_be_visible()
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    phone.screenshot(path=tmp_path / "home-phone.png", full_page=True)
    assert widths[0] <= widths[1], f"the page scrolls sideways: scrollWidth {widths[0]} > innerWidth {widths[1]}"
    problems.assert_none()


# What scrolls sideways inside the page, where the page itself would not show it
# (a README's code blocks may: they keep their lines).
HIDDEN_OVERFLOW = """() => [...document.querySelectorAll("main *")]
  .filter((e) => !e.closest(".readme") && getComputedStyle(e).overflowX !== "visible")
  .filter((e) => e.scrollWidth > e.clientWidth + 1)
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)"""
# Lines a block of text takes.
LINES = "(e) => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))"


def showcase_project(server: LiveServer) -> str:
    """A demo project with a yanked release and a pre-release: every badge."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.url)
    with engine.connect() as conn:
        name = conn.execute(
            text(
                "SELECT p.name FROM packages p WHERE"
                " EXISTS (SELECT 1 FROM releases r WHERE r.package_id = p.id AND r.yanked) AND"
                " EXISTS (SELECT 1 FROM releases r WHERE r.package_id = p.id AND r.is_prerelease)"
                " ORDER BY p.name LIMIT 1"
            )
        ).scalar_one()
    engine.dispose()
    return name


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_screen_and_copy_buttons_copy(
    server: LiveServer, browser: Browser, problems: Problems, tmp_path: Path, width: int
):
    """Home, project, release and search at 1280 and 390 px: a screenshot of
    each (in tmp_path), nothing wider than a phone, file cards that stay
    short, hashes that wrap only between groups, README headings below the
    page's, and copy buttons that put the right text on the clipboard."""
    from playwright.sync_api import expect

    phone = width < 800
    page = open_page(browser, problems, viewport={"width": width, "height": 844}, is_mobile=phone, has_touch=phone)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
    name = showcase_project(server)
    try:

        def visit(label: str, path: str) -> None:
            page.goto(server.base + path)
            page.screenshot(path=tmp_path / f"{label}-{width}.png", full_page=True)
            if phone:
                widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                assert widths[0] <= widths[1], f"{path} scrolls sideways: scrollWidth {widths[0]} > {widths[1]}"
                assert page.evaluate(HIDDEN_OVERFLOW) == [], f"{path} hides content that scrolls sideways"

        def copies(button: Any, expected: str) -> None:
            expect(button).to_be_visible()  # copy.js showed it
            button.click()
            expect(button).to_have_text("Copied")
            assert page.evaluate("() => navigator.clipboard.readText()") == expected

        visit("home", "/")
        visit("search", "/search?q=cache")
        expect(page.locator("main .project-list li").first).to_be_visible()

        visit("project", f"/project/{name}/")
        # Badges in the history: the release shown is "latest"; pre-releases and yanks are marked.
        expect(page.locator(".releases .badge.latest")).to_have_count(1)
        assert page.locator(".releases .badge.pre").count() > 0
        assert page.locator(".releases li.yanked .badge.yanked").count() > 0
        latest = page.locator(".releases li:has(.badge.latest) a").inner_text().strip()
        expect(page.locator(".download-files .for-release")).to_contain_text(latest)
        # A README's h1 is smaller than the page's own section headings.
        size = "(e) => parseFloat(getComputedStyle(e).fontSize)"
        section = page.locator(".description > h2").evaluate(size)
        readme = page.locator(".readme :is(h1, h2, h3, h4, h5, h6)").evaluate_all(f"(all) => all.map({size})")
        assert readme and max(readme) < section, f"README headings {readme} px, the page's {section} px"
        install = page.locator(".project-header .command button.copy")
        copies(install.first, f"pip install --index-url {server.base}/simple/ {name}")
        copies(install.nth(1), f"uv pip install --index-url {server.base}/simple/ {name}")
        first_file = page.locator(".download-files li.file").first
        digest = first_file.locator("code.hash").text_content()
        assert SHA256.match(digest), digest
        copies(first_file.locator(".digest button.copy"), digest)

        visit("release", f"/project/{name}/{latest}/")
        cards = page.locator("ul.files li.file")
        assert cards.count() >= 2
        heights = cards.evaluate_all("(all) => all.map((e) => e.getBoundingClientRect().height)")
        assert max(heights) < 160, f"file cards {heights} px tall"
        # The hash: short until asked for; then whole, on one line at 1280, two at 390, never a lone digit.
        card = cards.first
        expect(card.locator("code.hash")).not_to_be_visible()
        card.locator("summary").click()
        full = card.locator("code.hash")
        expect(full).to_be_visible()
        assert full.evaluate(LINES) == (2 if phone else 1)
        copies(card.locator(".digest button.copy"), full.text_content())
        page.screenshot(path=tmp_path / f"release-hash-open-{width}.png", full_page=True)
    finally:
        page.context.close()
    problems.assert_none()


def test_without_javascript_no_copy_button_shows_and_hashes_still_open(
    server: LiveServer, browser: Browser, problems: Problems
):
    from playwright.sync_api import expect

    page = open_page(browser, problems, viewport={"width": 390, "height": 844}, java_script_enabled=False)
    try:
        page.goto(server.base + f"/project/{showcase_project(server)}/")
        assert page.locator("button.copy").count() > 0
        for button in page.locator("button.copy").all():
            expect(button).to_be_hidden()
        card = page.locator(".download-files li.file").first
        card.locator("summary").click()
        expect(card.locator("code.hash")).to_be_visible()
    finally:
        page.context.close()
    problems.assert_none()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_account_path_register_verify_two_factor_maintainer(
    server: LiveServer, browser: Browser, problems: Problems, tmp_path: Path, screen: str
):
    """Register, verify the address from the mail, set up two-factor sign-in
    (the code computed from the secret shown), sign out, sign in with it, add a
    maintainer to a project, sign out."""
    import time

    import pyotp
    from playwright.sync_api import expect
    from sqlalchemy import create_engine, text

    from tests.accounts import PASSWORD, link_in, mails_to, unique
    from tests.test_upload import add_user

    size = {"width": 1280, "height": 900} if screen == "desktop" else {"width": 390, "height": 800}
    page = open_page(browser, problems, viewport=size, is_mobile=screen == "phone", has_touch=screen == "phone")
    name, helper = unique("owner"), unique("helper")
    address = f"{name}@example.org"
    try:
        # Register: an address, then the link mailed to it, then a username and a password.
        page.goto(server.base + "/account/register")
        page.fill("#email", address)
        page.click("form button[type=submit]:text('Send the link')")
        expect(page.locator("main")).to_contain_text(f"Check your inbox: we sent a message to {address}")
        (mail,) = mails_to(server.folder / "mail", address)
        page.goto(server.base + link_in(mail))
        expect(page.locator("main")).to_contain_text(f"Creating an account for {address}")
        page.fill("#username", name)
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]:text('Create account')")
        page.wait_for_url(re.compile(r"/account$"))
        expect(page.locator(".account-nav")).to_contain_text(name)
        expect(page.locator("main .badge.ok")).to_have_text("verified")

        # A project to share, and a second account to share it with (the operator's tool).
        engine = create_engine(server.url)
        with engine.begin() as conn:
            ids = conn.execute(
                text("SELECT u.id, (SELECT min(id) FROM packages) FROM users u WHERE u.username = :n"), {"n": name}
            ).one()
            conn.execute(
                text("INSERT INTO roles (user_id, package_id, role) VALUES (:u, :p, 'owner')"),
                {"u": ids[0], "p": ids[1]},
            )
            project = conn.execute(text("SELECT name FROM packages WHERE id = :p"), {"p": ids[1]}).scalar()
        engine.dispose()
        add_user(server, helper)

        # Two-factor set-up: scan (here: read) the secret, type the current code.
        page.goto(server.base + "/account/two-factor")
        expect(page.locator(".qr svg")).to_be_visible()
        secret = page.locator(".totp-secret").inner_text()
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("form button[type=submit]:text('Turn on')")
        expect(page.locator(".recovery-codes code")).to_have_count(10)
        page.screenshot(path=tmp_path / f"recovery-{screen}.png", full_page=True)

        # Sign out, and in again: password, then a code.
        page.click(".account-nav button:text('Log out')")
        expect(page.locator(".account-nav")).to_contain_text("Log in")
        page.click(".account-nav a:text('Log in')")
        page.fill("#username", name)
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]:text('Log in')")
        page.wait_for_url(re.compile(r"/account/login/two-factor"))
        page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))  # the set-up used the current one
        page.click("form button[type=submit]:text('Continue')")
        page.wait_for_url(re.compile(r"/account$"))
        expect(page.locator(".events")).to_contain_text("two-factor added")

        # Add the helper as a maintainer of the project.
        page.goto(server.base + f"/manage/project/{project}/collaborators")
        page.fill("#add-collaborator #username", helper)
        page.click("#add-collaborator button[type=submit]")
        expect(page.locator("table.collaborators")).to_contain_text(helper)
        page.goto(server.base + f"/project/{project}/")
        expect(page.locator(".maintainers")).to_contain_text(helper)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the page scrolls sideways on a {screen}: {widths}"
        page.screenshot(path=tmp_path / f"project-{screen}.png", full_page=True)
        page.click(".account-nav button:text('Log out')")
        expect(page.locator(".account-nav")).to_contain_text("Log in")
    finally:
        page.context.close()
    problems.assert_none()


def test_an_upload_shows_and_a_maintainer_yanks_it(server: LiveServer, page: Page, problems: Problems, tmp_path: Path):
    """twine publishes; the release appears with its files and download count;
    its maintainer yanks it in the browser; the project and simple pages say so."""
    import urllib.request

    from playwright.sync_api import expect

    from tests.accounts import PASSWORD
    from tests.test_upload import add_user, build_project, twine_upload

    add_user(server, "publisher")
    done = twine_upload(server, build_project(tmp_path, "1.0"), "publisher", PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr
    with urllib.request.urlopen(f"{server.base}/files/tiny_twine-1.0-py3-none-any.whl", timeout=10) as res:
        assert res.status == 200 and res.read()
    # Counts are written in batches (myapp.download_flush_seconds, 1 s here), and a page
    # may be kept for myapp.page_cache_seconds: look again until the count is in.
    wait_for_download_count(server, "tiny_twine-1.0-py3-none-any.whl", 1)

    page.goto(server.base + "/project/tiny-twine/1.0/")
    rows = page.locator("ul.files li.file")
    expect(rows).to_have_count(2)
    wheel_row = rows.filter(has_text="tiny_twine-1.0-py3-none-any.whl")
    expect(wheel_row.locator(".downloads")).to_have_text("1")

    page.goto(server.base + "/account/login")
    page.fill("#username", "publisher")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]:text('Log in')")
    page.wait_for_url(re.compile(r"/account$"))
    page.goto(server.base + "/manage/project/tiny-twine/")
    release = page.locator("#release-1\\.0")
    release.locator("input[name=reason]").fill("Built from the wrong branch")
    release.locator("button:text('Yank')").click()
    expect(page.locator("#release-1\\.0 .badge")).to_have_text("yanked: Built from the wrong branch")
    expect(page.locator("table.journal")).to_contain_text("yank release (Built from the wrong branch)")

    page.goto(server.base + "/project/tiny-twine/")
    expect(page.locator("ul.releases li.yanked")).to_contain_text("1.0")
    page.goto(server.base + "/simple/tiny-twine/")
    links = page.locator("a[data-yanked='Built from the wrong branch']")
    expect(links).to_have_count(2)
    problems.assert_none()


def test_the_private_login_page_offers_no_way_back_to_itself(browser: Browser, tmp_path: Path):
    """On a private index a signed-out visitor sees the login page with no
    Browse or Search (they would lead back to it), at 1280 and 390 px; the
    header still fits, and the register page says registration is closed."""
    from playwright.sync_api import expect

    settings = {"myapp.read_access": "authenticated"}
    with live_server("sqlite", tmp_path, demo=False, settings=settings) as private:
        for width in (1280, 390):
            problems = Problems()
            page = open_page(browser, problems, viewport={"width": width, "height": 800})
            try:
                page.goto(private.base + "/projects/")
                page.wait_for_url(re.compile(r"/account/login\?came_from="))
                expect(page.locator("header nav")).to_have_count(0)
                expect(page.locator("header form.search")).to_have_count(0)
                expect(page.locator(".account-nav a", has_text="Log in")).to_be_visible()
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=tmp_path / f"private-login-{width}.png", full_page=True)
                page.click(".account-nav a:text('Register')")
                expect(page.locator("main .notice")).to_have_text("Registration is closed.")
                expect(page.locator("main input[type=password]")).to_have_count(0)
            finally:
                page.context.close()
            problems.assert_none()


def wait_for_download_count(server: LiveServer, filename: str, count: int, timeout: float = 15.0) -> None:
    """Until the database holds ``count`` downloads of ``filename`` (written by the server's flush)."""
    import sqlalchemy as sa

    engine = sa.create_engine(server.url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                found = conn.execute(
                    sa.text("SELECT downloads FROM release_files WHERE filename = :f"), {"f": filename}
                ).scalar()
            if found == count or time.monotonic() > deadline:
                assert found == count, f"{filename}: {found} downloads recorded, expected {count}"
                return
            time.sleep(0.1)
    finally:
        engine.dispose()
