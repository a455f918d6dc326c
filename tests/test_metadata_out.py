"""What an uploaded file's metadata says comes out again, on SQLite and
PostgreSQL: the JSON API's ``info`` carries the release's dependencies,
extras, license expression and files as PyPI's does, and the project page
lists the dependencies (linking those hosted here) and the license."""

from __future__ import annotations

import webtest

from myapp.config import configure
from tests.accounts import PASSWORD, make_user
from tests.factories import make_package
from tests.test_upload import WHEEL, upload
from tests.test_upload_checks import make_wheel, metadata

RICH = metadata(
    "License-Expression: mit\n"
    "License-File: LICENSE\n"
    "License-File: NOTICE\n"
    "Requires-Dist: requests>=2.31\n"
    "Requires-Dist: Hosted_Here<3 ; python_version < '3.12'\n"
    "Requires-Dist: pysocks!=1.5.7 ; extra == 'socks'\n"
    "Provides-Extra: socks\n"
    "Dynamic: Requires-Dist\n"
    "Platform: any\n"
    "Download-URL: https://example.org/tiny-thing-1.0.tar.gz\n",
    mv="2.4",
)
DEPENDENCIES = [
    "requests>=2.31",
    "Hosted_Here<3 ; python_version < '3.12'",
    "pysocks!=1.5.7 ; extra == 'socks'",
]


def publish(testapp, dbsession, text: str = RICH) -> None:
    make_user(dbsession, "uploader")
    res = upload(testapp, "uploader", PASSWORD, WHEEL, make_wheel(text), classifiers=None)
    assert res.status_int == 200, res.text


def test_the_json_api_serves_the_files_core_metadata(testapp, dbsession):
    publish(testapp, dbsession)
    for url in ("/pypi/tiny-thing/json", "/pypi/tiny-thing/1.0/json"):
        info = testapp.get(url).json["info"]
        assert info["requires_dist"] == DEPENDENCIES
        assert info["provides_extra"] == ["socks"]
        assert info["license_expression"] == "MIT"  # as packaging normalizes it
        assert info["license_files"] == ["LICENSE", "NOTICE"]
        assert info["dynamic"] == ["Requires-Dist"]
        assert info["platform"] == "any"
        assert info["download_url"] == "https://example.org/tiny-thing-1.0.tar.gz"
        assert info["yanked"] is False and info["yanked_reason"] is None
        assert info["bugtrack_url"] is None and info["docs_url"] is None


def test_what_the_file_leaves_out_is_null_as_on_pypi(testapp, dbsession):
    publish(testapp, dbsession, metadata("Requires-Python: >=3.9\n"))
    info = testapp.get("/pypi/tiny-thing/1.0/json").json["info"]
    nulls = ("requires_dist", "provides_extra", "license_expression", "license_files", "dynamic", "platform")
    assert {key: info[key] for key in nulls} == dict.fromkeys(nulls)
    assert info["requires_python"] == ">=3.9" and info["project_urls"] is None
    page = testapp.get("/project/tiny-thing/").html  # and no empty list or license on the page
    assert page.select("ul.dependencies") == [] and page.select("dd.license-expression") == []


def test_each_release_serves_its_own_dependencies(testapp, dbsession):
    publish(testapp, dbsession)
    newer = make_wheel(metadata("Requires-Dist: httpx\n", version="2.0"), version="2.0")
    res = upload(testapp, "uploader", PASSWORD, "tiny_thing-2.0-py3-none-any.whl", newer, version="2.0")
    assert res.status_int == 200, res.text
    assert testapp.get("/pypi/tiny-thing/json").json["info"]["requires_dist"] == ["httpx"]
    assert testapp.get("/pypi/tiny-thing/1.0/json").json["info"]["requires_dist"] == DEPENDENCIES


def test_the_project_page_lists_dependencies_by_extra_and_the_license_expression(testapp, dbsession):
    make_package(dbsession, "hosted-here")
    publish(testapp, dbsession)
    page = testapp.get("/project/tiny-thing/").html
    lists = page.select("ul.dependencies")
    assert [li.get_text(" ", strip=True) for li in lists[0].select("li")] == [
        "requests >=2.31",
        'Hosted_Here <3 if python_version < "3.12"',
    ]
    assert [a["href"] for a in lists[0].select("a")] == ["/project/hosted-here/"]  # hosted here: linked
    assert page.select_one("h3.extra").get_text(" ", strip=True) == "With [socks]"
    assert [li.get_text(" ", strip=True) for li in lists[1].select("li")] == ["pysocks !=1.5.7"]
    assert page.select_one("dd.license-expression").text == "MIT"


def test_install_lines_name_this_index_unless_it_is_the_default_one(testapp, dbsession, settings):
    make_package(dbsession, "tool", versions=["1.0"])
    lines = [b["data-copy"] for b in testapp.get("/project/tool/").html.select(".project-header button.copy")]
    # The request's own host: a private index's users never get the public project of that name.
    assert lines == [
        "pip install --index-url http://localhost/simple/ tool",
        "uv pip install --index-url http://localhost/simple/ tool",
    ]
    other_host = testapp.get("/project/tool/", extra_environ={"HTTP_HOST": "127.0.0.1:8080"})
    assert "--index-url http://127.0.0.1:8080/simple/ tool" in other_host.text
    default = webtest.TestApp(
        configure({**settings, "myapp.default_index": "true"}).make_wsgi_app(),
        extra_environ={"HTTP_HOST": "localhost"},
    )
    lines = [b["data-copy"] for b in default.get("/project/tool/").html.select(".project-header button.copy")]
    assert lines == ["pip install tool", "uv pip install tool"]
