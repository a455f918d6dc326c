"""The Cookie header's fast path (myapp.web.cookies): the same cookies as
WebOb's parse for every header it takes, and WebOb's parse for the rest."""

from __future__ import annotations

import random
import string

import pytest
import webob.cookies
from webob.cookies import RequestCookies

from myapp.web.cookies import plain_cookies, remember_plain_cookies
from tests.accounts import log_in, make_user, signed_in_as


def webobs(header: str) -> dict[str, str]:
    return dict(RequestCookies({"HTTP_COOKIE": header}))


PLAIN = [
    "session=" + "Ab9_-" * 90,  # a signed-in browser's: base64url, about 450 bytes
    "a=1; b=2",
    "a=1; a=2",  # the last of a name, as WebOb keeps it
    "a=b=c",  # padding and equals signs belong to the value
    "a.b-c_d=x/y+z",
    "a=",
    "Path=/; session=x",  # an attribute's name is never a cookie
    "SameSite=Lax; a=1; Max-Age=3",
]
NOT_PLAIN = [
    "a=1;b=2",  # no space
    'a="quoted; still a"',
    "a=\\012",
    "$Version=1; a=1",
    "a=1; b",
    "a = 1",
    "a=1; ",
    "a=caf\u00e9",
    "a=1, b=2",
]


@pytest.mark.parametrize("header", PLAIN)
def test_a_plain_header_reads_as_webob_reads_it(header):
    assert plain_cookies(header) == webobs(header)


@pytest.mark.parametrize("header", NOT_PLAIN)
def test_any_other_header_is_left_to_webob(header):
    assert plain_cookies(header) is None
    environ = {"HTTP_COOKIE": header}
    remember_plain_cookies(environ)
    assert dict(RequestCookies(environ)) == webobs(header)


def test_random_headers_agree_with_webob():
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + '_.-=/+ ;"\\$,'
    for _ in range(3000):
        header = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        found = plain_cookies(header)
        assert found is None or found == webobs(header), header


def test_the_parse_is_kept_where_webob_looks_and_follows_the_header():
    environ = {"HTTP_COOKIE": "a=1"}
    remember_plain_cookies(environ)
    cookies = RequestCookies(environ)
    assert cookies["a"] == "1"
    environ["HTTP_COOKIE"] = "a=2"  # a changed header is parsed again, by WebOb if need be
    assert cookies["a"] == "2"


def test_a_signed_in_browser_is_read_through_the_fast_path(testapp, dbsession, monkeypatch):
    user = make_user(dbsession)
    log_in(testapp, user.username)

    def refuse(header):
        raise AssertionError(f"WebOb parsed {header!r}")

    monkeypatch.setattr(webob.cookies, "parse_cookie", refuse)
    assert signed_in_as(testapp) == user.username  # the session (and CSRF) cookies, without WebOb's parse
