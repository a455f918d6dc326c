"""A real Chromium, signed in to a private index through its own basic-auth
prompt (credentials in the address, as a user types them into the prompt),
then visits a page on another site that posts to the yank API. Chromium
answers the API's 401 challenge with the credentials it saved: before,
the release was yanked. Now the cross-site request is refused first.

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package, like
tests/test_browser.py (whose browser fixture this uses).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from sqlalchemy import select

from myapp.packaging.models import Package, Release
from tests.accounts import PASSWORD
from tests.conftest import LiveServer, live_server
from tests.test_browser import Problems, browser, open_page  # noqa: F401 - browser is a fixture
from tests.test_live import query
from tests.test_live_channels import add_owner

pytestmark = pytest.mark.browser

ATTACKS = {
    # An empty body: the API yanks without a reason.
    "/form.html": """<!doctype html><form method="post" action="{target}"></form>
<script>document.forms[0].submit()</script>""",
    "/fetch.html": """<!doctype html><script>
fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include"}})
  .finally(() => {{ document.title = "sent"; }});
</script>""",
}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("cross-site")
    with live_server("sqlite", folder, settings={"myapp.read_access": "authenticated"}) as server:
        yield server


@pytest.fixture
def other_site(private: LiveServer) -> Iterator[tuple[str, list[str]]]:
    """Another site (127.0.0.1 on another port; the index is reached as
    localhost, so the two are cross-site, not only cross-origin) whose pages
    post to the index's yank API for the project named in their query."""
    seen: list[str] = []

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, target = self.path.partition("?")
            if path not in ATTACKS:
                self.send_error(404)
                return
            body = ATTACKS[path].format(target=target).encode()
            seen.append(path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def is_yanked(server: LiveServer, name: str, version: str) -> bool:
    return query(
        server.url, select(Release.yanked).join(Package).where(Package.name == name, Release.version == version)
    )


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_another_site_cannot_yank_with_saved_basic_credentials(browser, private, other_site, tmp_path, attack):  # noqa: F811
    username = f"owner-{attack.strip('/').split('.')[0]}"
    name, version, _ = add_owner(private, username, nth=sorted(ATTACKS).index(attack))
    site, seen = other_site
    index = f"http://localhost:{private.port}"
    page = open_page(browser, Problems())
    try:
        # The browser's sign-in prompt: Chromium keeps the credentials for the site.
        signed_in = page.goto(f"http://{username}:{quote(PASSWORD)}@localhost:{private.port}/simple/")
        assert signed_in is not None and signed_in.status == 200
        assert page.goto(f"{index}/simple/{name}/").status == 200  # saved: no credentials in this address

        target = f"{index}/api/projects/{name}/{version}/yank"
        answers: list[int] = []
        page.on("response", lambda response: answers.append(response.status) if response.url == target else None)
        page.goto(f"{site}{attack}?{target}")
        page.wait_for_timeout(1500)  # the form's navigation or the fetch, and Chromium's retry after a 401
        assert seen == [attack]
        assert answers and set(answers) == {403}, answers
        assert not is_yanked(private, name, version)
        page.screenshot(path=str(tmp_path / "after.png"))
    finally:
        page.context.close()
