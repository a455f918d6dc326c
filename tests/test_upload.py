"""Uploads through the legacy API, on SQLite and PostgreSQL: every refusal is
a 4xx with its reason and writes nothing (no row, no file); and real twine
publishing to a live server with a password and with a token."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from myapp.accounts import services as accounts
from myapp.packaging import roles, services
from myapp.packaging.demo import _sdist, _wheel
from myapp.packaging.models import Package, RoleName
from tests.accounts import PASSWORD, make_user
from tests.conftest import BIN, LiveServer, live_server
from tests.factories import refuse
from tests.test_accounts import basic
from tests.test_simple import installed_version, make_venv, offline_env


def upload(testapp, user: str, password: str, filename: str, data: bytes, *, status="*", **fields):
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "Tiny-Thing",
        "version": "1.0",
        "filetype": "bdist_wheel" if filename.endswith(".whl") else "sdist",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "classifiers": "Programming Language :: Python :: 3",
    } | fields
    return testapp.post(
        "/legacy/",
        [(k, v) for k, v in form.items() if v is not None],
        upload_files=[("content", filename, data)],
        headers=basic(user, password),
        status=status,
        expect_errors=True,
    )


WHEEL = "tiny_thing-1.0-py3-none-any.whl"


@pytest.fixture
def uploader(dbsession):
    return make_user(dbsession, "uploader")


def stored_files(files_dir: Path) -> set[str]:
    return {p.name for p in files_dir.rglob("*") if p.is_file() and ".incoming" not in p.parts}


def test_first_upload_creates_the_project_with_its_uploader_as_owner(testapp, dbsession, files_dir, uploader):
    data = _wheel("Tiny-Thing", "1.0", "A tiny thing")
    res = upload(testapp, "uploader", PASSWORD, WHEEL, data)
    assert res.status == "200 OK", res.text
    package = services.find_package(dbsession, "tiny-thing")
    assert package is not None and package.display_name == "Tiny-Thing" and package.summary == "A tiny thing"
    assert package.classifiers == []  # the form's classifier is not in the file: not taken
    assert [(r.user.username, r.role) for r in roles.maintainers(dbsession, package)] == [("uploader", RoleName.OWNER)]
    file = services.find_file(dbsession, WHEEL)
    assert file.sha256 == hashlib.sha256(data).hexdigest() and file.size == len(data)
    assert (files_dir / file.storage_path).read_bytes() == data
    assert (files_dir / (file.storage_path + ".metadata")).read_bytes().startswith(b"Metadata-Version")
    assert testapp.get(f"/files/{WHEEL}").body == data
    assert package.last_serial > 0

    again = upload(testapp, "uploader", PASSWORD, WHEEL, data)  # twine --skip-existing, or a retry
    assert again.status_int == 200 and "nothing changed" in again.status
    other = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "changed"))
    assert other.status_int == 400 and "File already exists" in other.status
    sdist = _sdist("Tiny-Thing", "1.0", "A tiny thing")
    assert upload(testapp, "uploader", PASSWORD, "tiny_thing-1.0.tar.gz", sdist).status_int == 200
    assert len(services.find_release(dbsession, package, "1.0").files) == 2


@pytest.mark.parametrize(
    ("filename", "fields", "reason"),
    [
        ("../tiny_thing-1.0-py3-none-any.whl", {}, "Invalid filename"),
        ("tiny_thing-1.0-py3-none-any.whl/..", {}, "Invalid filename"),
        ("evil-1.0-py3-none-any.whl", {}, "does not match the project"),
        ("tiny_thing-2.0-py3-none-any.whl", {}, "does not match the project"),
        ("tiny_thing-1.0.exe", {}, "Invalid file extension"),
        ("tiny_thing-1.0.zip", {}, "Invalid file extension"),
        ("Tiny-Thing-1.0.tar.gz", {"filetype": "sdist"}, "PEP 625 wants tiny_thing-1.0.tar.gz"),
        ("tiny_thing-1.0-py3-none-any.whl", {"version": "not a version"}, "Invalid version"),
        ("tiny_thing-1.0-py3-none-any.whl", {"name": "bad name!"}, "Invalid or missing project name"),
        ("tiny_thing-1.0-py3-none-any.whl", {"sha256_digest": "0" * 64}, "sha256_digest does not match"),
        ("tiny_thing-1.0-py3-none-any.whl", {"sha256_digest": None}, "at least one digest"),
        ("tiny_thing-1.0-py3-none-any.whl", {":action": "remove_pkg"}, "Unknown :action"),
        ("tiny_thing-1.0-py3-none-any.whl", {"filetype": "sdist"}, "does not match"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_write_nothing(
    testapp, dbsession, files_dir, uploader, filename, fields, reason
):
    before = stored_files(files_dir)
    res = upload(testapp, "uploader", PASSWORD, filename, _wheel("Tiny-Thing", "1.0", "x"), **fields)
    assert res.status_int == 400 and reason in res.status, res.status
    assert "\n" not in res.status
    assert services.find_package(dbsession, "tiny-thing") is None
    assert stored_files(files_dir) == before


def test_a_wheel_must_be_a_wheel_of_what_it_claims(testapp, dbsession, files_dir, uploader):
    not_zip = b"this is not a zip file"
    res = upload(testapp, "uploader", PASSWORD, WHEEL, not_zip)
    assert res.status_int == 400 and "Invalid wheel" in res.status
    lying = _wheel("Other-Thing", "1.0", "x")
    res = upload(testapp, "uploader", PASSWORD, WHEEL, lying)
    assert res.status_int == 400 and "METADATA names another project" in res.status


def test_oversized_files_are_413(settings, dbsession, files_dir, uploader):
    import webtest

    from myapp.config import configure

    app = webtest.TestApp(
        configure({**settings, "myapp.max_upload_bytes": "500"}).make_wsgi_app(),
        extra_environ={"HTTP_HOST": "localhost"},
    )
    before = stored_files(files_dir)
    res = upload(app, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x" * 2000))
    assert res.status_int == 413 and "too large" in res.status
    assert stored_files(files_dir) == before
    assert not any((files_dir / ".incoming").iterdir())


def test_who_may_upload(testapp, dbsession, uploader):
    upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    make_user(dbsession, "stranger")
    res = upload(
        testapp,
        "stranger",
        PASSWORD,
        "tiny_thing-1.1-py3-none-any.whl",
        _wheel("Tiny-Thing", "1.1", "x"),
        version="1.1",
    )
    assert res.status_int == 403 and "not an owner or maintainer of Tiny-Thing" in res.status
    assert upload(testapp, "uploader", "wrong password", WHEEL, b"x").status_int == 401
    res = testapp.post("/legacy/", {":action": "file_upload"}, status=401)
    assert res.headers["WWW-Authenticate"].startswith("Basic")

    helper = make_user(dbsession, "helper")
    roles.set_role(dbsession, services.find_package(dbsession, "tiny-thing"), helper, RoleName.MAINTAINER)
    _, token = accounts.create_token(dbsession, helper, "ci")
    dbsession.flush()
    data = _wheel("Tiny-Thing", "1.1", "x")
    assert upload(testapp, "__token__", token, "tiny_thing-1.1-py3-none-any.whl", data, version="1.1").status_int == 200


def test_a_project_scoped_token_uploads_to_its_project_only(testapp, dbsession, uploader):
    upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    package = services.find_package(dbsession, "tiny-thing")
    _, token = accounts.create_token(dbsession, uploader, "ci", package_id=package.id)
    dbsession.flush()
    ok = upload(
        testapp, "__token__", token, "tiny_thing-1.2-py3-none-any.whl", _wheel("Tiny-Thing", "1.2", "x"), version="1.2"
    )
    assert ok.status_int == 200
    new = upload(
        testapp, "__token__", token, "brand_new-1.0-py3-none-any.whl", _wheel("brand-new", "1.0", "x"), name="brand-new"
    )
    assert new.status_int == 403 and "limited to another project" in new.status
    assert services.find_package(dbsession, "brand-new") is None


def test_an_upload_the_database_refuses_leaves_no_file(testapp, dbsession, files_dir, uploader):
    """The file is moved into the store only as the transaction commits."""
    refuse(dbsession, "release_files", "INSERT")
    before = stored_files(files_dir)
    res = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert res.status_int == 500
    assert stored_files(files_dir) == before
    assert not any((files_dir / ".incoming").iterdir())
    assert dbsession.scalar(select(Package).where(Package.name == "tiny-thing")) is None


# -- real twine -------------------------------------------------------------------------------


def build_project(folder: Path, version: str) -> list[Path]:
    """A tiny real project, built into a wheel and an sdist with `build --no-isolation`."""
    source = folder / f"src-{version}"
    (source / "tiny_twine").mkdir(parents=True)
    (source / "tiny_twine" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "tiny-twine"
            version = "{version}"
            description = "Uploaded by twine in a test"
            requires-python = ">=3.9"
            """
        )
    )
    return build_dists(source, folder / f"dist-{version}")


def build_dists(source: Path, out: Path) -> list[Path]:
    """``source`` built into a wheel and an sdist in ``out``, by its own backend (``build --no-isolation``)."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return sorted(out.iterdir())


def add_user(server: LiveServer, username: str) -> None:
    """An account made the operator's way, with ``myapp-adduser``."""
    done = server.run_cli(
        str(BIN / "myapp-adduser"),
        str(server.ini),
        "--username",
        username,
        "--email",
        f"{username}@example.org",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr


def twine_upload(server: LiveServer, files: list[Path], user: str, password: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "twine"), "upload", "--repository-url", server.base + "/legacy/", "-u", user, "-p", password]
    env = offline_env(server.folder) | {"TWINE_NON_INTERACTIVE": "1"}
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True, env=env, timeout=120)


def uv_publish(server: LiveServer, files: list[Path], user: str, password: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "uv"), "publish", "--publish-url", server.base + "/legacy/", "--trusted-publishing", "never"]
    command += ["--username", user, "--password", password, *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, env=offline_env(server.folder), timeout=120)


def test_twine_uploads_and_pip_installs(backend, tmp_path):
    with live_server(backend, tmp_path, demo=False) as server:
        add_user(server, "pub")

        def twine(*files: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
            return twine_upload(server, list(files), user, password)

        first = build_project(tmp_path, "1.0")
        done = twine(*first, user="pub", password=PASSWORD)
        assert done.returncode == 0, done.stdout + done.stderr
        assert twine(*first, user="pub", password=PASSWORD).returncode == 0  # the same files again: nothing changes

        wrong = twine(*build_project(tmp_path, "1.1"), user="pub", password="not the password")
        assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr

        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        engine = create_engine(server.url)
        with Session(engine) as db, db.begin():
            user = accounts.find_user(db, "pub")
            _, token = accounts.create_token(db, user, "twine")
        engine.dispose()
        second = build_project(tmp_path, "2.0")
        done = twine(*second, user="__token__", password=token)
        assert done.returncode == 0, done.stdout + done.stderr

        third = build_project(tmp_path, "3.0rc1")  # uv publish too, with the token
        done = uv_publish(server, third, "__token__", token)
        assert done.returncode == 0, done.stdout + done.stderr

        python = make_venv(tmp_path / "venv")
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--index-url", server.base + "/simple/", "tiny-twine"],
            capture_output=True,
            text=True,
            env=offline_env(tmp_path),
            timeout=180,
        )
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert installed_version(python, "tiny-twine") == "2.0"  # 3.0rc1 is a pre-release
    log = server.log.read_text()
    assert token not in log and PASSWORD not in log and "Traceback" not in log
    wheels = {p.name for p in (tmp_path / "files").rglob("*.whl")}
    assert wheels == {f"tiny_twine-{v}-py3-none-any.whl" for v in ("1.0", "2.0", "3.0rc1")}


def test_no_stale_reads_across_processes(backend, tmp_path):
    """Two server processes on one database, both caching pages for a minute:
    an upload through one shows on the other's very next request."""
    from tests.conftest import LiveServer, fresh_database
    from tests.test_live import fetch

    cache = {"myapp.page_cache_seconds": "60"}
    with fresh_database(backend, tmp_path) as url:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with (
            LiveServer(url, tmp_path / "a", demo=False, settings=cache) as a,
            LiveServer(url, tmp_path / "b", migrate=False, settings=cache) as b,
        ):
            add_user(a, "pub")

            def publish(version: str) -> None:
                done = twine_upload(a, build_project(tmp_path, version), "pub", PASSWORD)
                assert done.returncode == 0, done.stdout + done.stderr

            publish("1.0")
            page = b.base + "/project/tiny-twine/"
            assert fetch(page)[0] == 200
            status, headers, body = fetch(page)
            assert headers.get("X-Page-Cache") == "hit" and b'<span class="version">1.0</span>' in body
            publish("2.0")
            status, headers, body = fetch(page)
            assert status == 200 and "X-Page-Cache" not in headers
            assert b'<span class="version">2.0</span>' in body
            for path in ("/simple/tiny-twine/", "/pypi/tiny-twine/json"):
                assert b"2.0" in fetch(b.base + path)[2]


def test_a_description_is_rendered_again_only_when_it_changes(testapp, dbsession, uploader):
    from sqlalchemy import update

    from myapp.packaging.demo import _wheel
    from myapp.packaging.models import Package

    def send(version: str, readme: str) -> None:
        core = f"Description-Content-Type: text/markdown\n\n{readme}\n"
        data = _wheel("Tiny-Thing", version, "x", core)
        res = upload(testapp, "uploader", PASSWORD, f"tiny_thing-{version}-py3-none-any.whl", data, version=version)
        assert res.status_int == 200, res.text

    def stored_html() -> str:
        dbsession.expire_all()
        return dbsession.query(Package).filter_by(name="tiny-thing").one().description_html

    send("1.0", "# Hello")
    assert ">Hello<" in stored_html()
    # A marker no renderer writes: it stays while the description, its type and the renderer do.
    dbsession.execute(update(Package).where(Package.name == "tiny-thing").values(description_html="<p>kept</p>"))
    dbsession.flush()
    send("1.1", "# Hello")
    assert stored_html() == "<p>kept</p>"
    send("1.2", "# Changed")
    html = stored_html()
    assert ">Changed<" in html and "kept" not in html
