"""NUL, which PostgreSQL cannot store, is a 400 at the request guard wherever
a view could take text from: path, query string, form fields (urlencoded and
multipart) and basic-auth credentials. On both databases: PostgreSQL used to
answer 500 where SQLite answered 4xx."""

from __future__ import annotations

import pytest

from myapp.packaging.demo import _wheel
from myapp.web.storable import is_storable
from tests.accounts import PASSWORD, log_in, make_user, signed_in_as
from tests.factories import make_package
from tests.test_accounts import basic
from tests.test_upload import WHEEL, upload

REASON = "cannot be stored"


@pytest.mark.parametrize(
    "path",
    [
        "/user/a%00b/",
        "/search?c=a%00b",
        "/search?q=a%00b",
        "/search?a%00b=1",
        "/pypi/tool/1.0%00/json",
        "/pypi/to%00ol/json",
        "/simple/to%00ol/",
        "/project/tool/1.0%00/",
        "/account/login?came_from=/%00",
    ],
)
def test_nul_in_the_address_is_400(testapp, dbsession, path):
    make_package(dbsession, "tool")
    res = testapp.get(path, status=400)
    assert REASON in res.text and res.content_type == "text/html"


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/account/login", {"username": "a\x00b", "password": "x"}),
        ("/account/login", {"username": "someone", "password": "pass\x00word"}),
        ("/account/forgot-password", {"email": "a\x00b@example.org"}),
        ("/account/register", {"username": "new\x00user", "email": "n@example.org", "password": "x" * 20}),
        ("/search", {"q\x00": "x"}),
    ],
)
def test_nul_in_a_form_is_400(testapp, dbsession, path, form):
    res = testapp.post(path, form, status=400)
    assert REASON in res.text


def test_nul_in_basic_auth_credentials_is_400(testapp, dbsession):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    for user, password in [("upl\x00oader", PASSWORD), ("uploader", PASSWORD + "\x00"), ("__token__", "pypi-\x00")]:
        res = upload(testapp, user, password, WHEEL, data)
        assert res.status_int == 400 and REASON in res.text, (user, res.status)
        assert testapp.get("/simple/", headers=basic(user, password), status=400)


def test_nul_in_an_upload_form_field_is_400(testapp, dbsession):
    make_user(dbsession, "uploader")
    res = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"), summary="a\x00b")
    assert res.status_int == 400 and REASON in res.text
    ok = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert ok.status_int == 200, ok.status  # the same upload without the NUL


def test_ordinary_text_passes(testapp, dbsession):
    make_package(dbsession, "tool")
    assert testapp.get("/search?q=t%C3%B6%C3%B6l&c=Typing+%3A%3A+Typed").status_int == 200
    assert testapp.get("/pypi/tool/json").status_int == 200
    assert is_storable("caf\u00e9 \U0001f600") and not is_storable("a\x00") and not is_storable("\ud800")


def test_a_signed_in_user_gets_the_400_too(testapp, dbsession):
    make_user(dbsession, "someone")
    log_in(testapp, "someone")
    assert signed_in_as(testapp) == "someone"
    res = testapp.get("/user/a%00b/", status=400)
    assert REASON in res.text
    assert signed_in_as(testapp) == "someone"  # the refusal did not touch the session


def test_a_form_that_cannot_be_parsed_is_400(testapp, dbsession):
    headers = {"Content-Type": "multipart/form-data; boundary="}
    res = testapp.post("/account/login", b"x", headers=headers, status=400)
    assert "The form cannot be read" in res.text
