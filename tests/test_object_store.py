"""Files in an object store, on SQLite and PostgreSQL, against a real S3
server on 127.0.0.1 (moto's server mode, one per test session, a bucket per
test).

* The store's contract, the same for a folder and a bucket.
* Uploads write the object during the request and take it back if the
  transaction aborts; deletions remove objects only after the commit.
* Downloads are a 302 to a short-lived signed URL (or to a CDN's base URL
  on a public index, never on a private one), or the bytes streamed through
  the app (``myapp.files_serve = proxy``), counted as before.
* twine uploads and pip and uv install through the store; two app processes
  with separate folders share one PostgreSQL database and one bucket.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

import pytest
import transaction
import webtest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from myapp.config import configure
from myapp.data import DbSession, get_tm_session
from myapp.data.jobs import JobContext
from myapp.packaging import maintain, services
from myapp.packaging.demo import _wheel
from myapp.packaging.models import ReleaseFile
from myapp.packaging.storage import FileStore, LocalFileStore, make_store
from myapp.packaging.storage.audit import sweep_orphans
from tests.accounts import PASSWORD, make_user
from tests.conftest import BIN, LiveServer, fresh_database
from tests.factories import refuse
from tests.s3server import KEY, REGION, S3Server
from tests.test_accounts import basic
from tests.test_simple import installed_version, make_venv, offline_env
from tests.test_upload import WHEEL, add_user, twine_upload, upload


@pytest.fixture
def uploader(dbsession: Session) -> Any:
    return make_user(dbsession, "uploader")


def s3_app(settings: dict[str, Any], s3: S3Server, bucket: str, **extra: str) -> webtest.TestApp:
    app = configure({**settings, **s3.settings(bucket), **extra}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@pytest.fixture
def s3app(settings, dbsession, s3, bucket) -> webtest.TestApp:
    return s3_app(settings, s3, bucket)


# -- the contract, for both kinds ------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    if request.param == "local":
        return LocalFileStore(tmp_path / "files")
    s3: S3Server = request.getfixturevalue("s3")
    settings = {**s3.settings(s3.bucket(), "some/prefix"), "myapp.cache_dir": str(tmp_path / "cache")}
    return make_store(settings)


def test_a_store_keeps_bytes_under_a_path_and_streams_them_back(store):
    big = os.urandom(6 * 1024 * 1024 + 7)  # over obstore's 5 MiB part: a multipart upload
    store.write("ab/cd/big.whl", io.BytesIO(big))
    store.write("ab/cd/small.whl.metadata", io.BytesIO(b"Metadata-Version: 2.1\n"))
    store.put_file(store.write_incoming(b"sdist bytes"), "ef/01/thing-1.0.tar.gz")
    assert store.stat("ab/cd/big.whl").size == len(big) and store.stat("no/ne/such.whl") is None
    with store.open("ab/cd/big.whl") as stream:
        first = stream.read(1000)
        assert first == big[:1000] and first + stream.read() == big
    assert sorted((o.path, o.size) for o in store.iter_objects()) == [
        ("ab/cd/big.whl", len(big)),
        ("ab/cd/small.whl.metadata", 22),
        ("ef/01/thing-1.0.tar.gz", 11),
    ]
    store.delete("ab/cd/big.whl")
    store.delete("ab/cd/big.whl")  # deleting what is gone is no error
    assert not store.exists("ab/cd/big.whl")
    with pytest.raises(FileNotFoundError), store.open("ab/cd/big.whl") as stream:
        stream.read()
    assert not list((store.scratch / ".incoming").iterdir())  # the temporary file was used up


def test_placing_follows_the_transaction(store):
    tm = transaction.TransactionManager(explicit=True)
    with pytest.raises(RuntimeError), tm:
        store.place_on_commit(tm, [(store.write_incoming(b"one"), "aa/aa/one.whl")])
        raise RuntimeError("the request failed")
    assert not store.exists("aa/aa/one.whl")
    with tm:
        store.place_on_commit(tm, [(store.write_incoming(b"two"), "aa/aa/two.whl")])
    with store.open("aa/aa/two.whl") as stream:
        assert stream.read() == b"two"
    with pytest.raises(RuntimeError), tm:
        store.remove_on_commit(tm, ["aa/aa/two.whl"])
        raise RuntimeError("the request failed")
    assert store.exists("aa/aa/two.whl")
    with tm:
        store.remove_on_commit(tm, ["aa/aa/two.whl"])
        assert store.exists("aa/aa/two.whl")  # not before the commit
    assert not store.exists("aa/aa/two.whl")
    assert not list((store.scratch / ".incoming").iterdir())


# -- uploads and deletions ---------------------------------------------------------------


def test_an_upload_lands_in_the_bucket_under_its_content_address(s3app, s3, bucket, dbsession, uploader):
    data = _wheel("Tiny-Thing", "1.0", "A tiny thing")
    assert upload(s3app, "uploader", PASSWORD, WHEEL, data).status_int == 200
    file = services.find_file(dbsession, WHEEL)
    digest = hashlib.sha256(data).hexdigest()
    assert file.storage_path == f"{digest[:2]}/{digest[2:4]}/{WHEEL}"
    objects = s3.keys(bucket)
    assert objects[f"files/{file.storage_path}"] == data
    assert objects[f"files/{file.storage_path}.metadata"].startswith(b"Metadata-Version")
    head = s3.client.head_object(Bucket=bucket, Key=f"files/{file.storage_path}")
    assert head["ContentType"] == "application/zip"


def test_an_aborted_upload_leaves_no_object(s3app, s3, bucket, dbsession, uploader):
    """The object is written before the row; the database refuses the row: the object goes too."""
    refuse(dbsession, "release_files", "INSERT")
    res = upload(s3app, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert res.status_int == 500
    assert s3.keys(bucket) == {}
    assert services.find_file(dbsession, WHEEL) is None


def test_an_abort_spares_an_object_that_another_uploads_row_names(s3app, s3, bucket, dbsession, uploader):
    """Two uploads of the same bytes under the same name: A writes the object,
    B finds it there and keeps none of its own, B's row commits first, A's
    fails. A takes back nothing that B's row names."""
    data = _wheel("Tiny-Thing", "1.0", "x")
    assert upload(s3app, "uploader", PASSWORD, WHEEL, data).status_int == 200  # B, committed
    file = services.find_file(dbsession, WHEEL)
    store: FileStore = s3app.app.registry["file_store"]
    s3.client.delete_object(Bucket=bucket, Key=f"files/{file.storage_path}")  # as when A had not yet written it
    tm = transaction.TransactionManager(explicit=True)
    with pytest.raises(RuntimeError), tm:
        store.place_on_commit(tm, [(store.write_incoming(data), file.storage_path)])  # A writes it
        assert store.exists(file.storage_path)
        raise RuntimeError("A's row is refused: B's is there")
    with store.open(file.storage_path) as stream:
        assert stream.read() == data
    with pytest.raises(RuntimeError), tm:  # a path no row names is taken back as before
        store.place_on_commit(tm, [(store.write_incoming(b"x"), "aa/bb/nobody-1.0.tar.gz")])
        raise RuntimeError("refused")
    assert not store.exists("aa/bb/nobody-1.0.tar.gz")


def test_an_unreachable_store_is_a_503_and_writes_nothing(settings, dbsession, uploader, s3):
    app = s3_app(settings, s3, "no-such-bucket")
    res = upload(app, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert res.status_int == 503 and res.headers["Retry-After"]
    assert services.find_package(dbsession, "tiny-thing") is None


def test_a_deleted_releases_objects_go_after_the_commit_and_not_before(s3app, s3, bucket, dbsession, uploader):
    for version in ("1.0", "2.0"):
        wheel = f"tiny_thing-{version}-py3-none-any.whl"
        res = upload(s3app, "uploader", PASSWORD, wheel, _wheel("Tiny-Thing", version, "x"), version=version)
        assert res.status_int == 200
    store: FileStore = s3app.app.registry["file_store"]
    tm = transaction.TransactionManager(explicit=True)
    for commit in (False, True):
        with tm:
            db = get_tm_session(DbSession.factory, tm, write=True)  # type: ignore[arg-type]
            package = services.find_package(db, "tiny-thing")
            release = services.find_release(db, package, "1.0")
            paths = maintain.delete_release(db, package, release, make_user(db, f"owner-{commit}"))
            store.remove_on_commit(tm, paths)
            db.flush()
            assert len(paths) == 2 and all(store.exists(p) for p in paths)  # not before the commit
            if not commit:
                tm.abort()
                tm.begin()  # the with block commits an empty transaction
        assert all(store.exists(p) for p in paths) != commit
    assert [k.rsplit("/", 1)[-1] for k in s3.keys(bucket)] == [
        "tiny_thing-2.0-py3-none-any.whl",
        "tiny_thing-2.0-py3-none-any.whl.metadata",
    ]


def test_the_sweep_deletes_objects_no_row_names(s3app, s3, bucket, dbsession, uploader):
    assert upload(s3app, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x")).status_int == 200
    s3.client.put_object(Bucket=bucket, Key="files/de/ad/lost-1.0.tar.gz", Body=b"left by an abort")
    registry = s3app.app.registry
    sweep_orphans(JobContext(dbsession, registry, None), {})  # type: ignore[arg-type]
    assert "files/de/ad/lost-1.0.tar.gz" in s3.keys(bucket)  # younger than the grace period
    registry.settings["myapp.files_orphan_grace_seconds"] = "0"
    time.sleep(1)  # S3 dates are whole seconds
    sweep_orphans(JobContext(dbsession, registry, None), {})  # type: ignore[arg-type]
    assert sorted(k.rsplit("/", 1)[-1] for k in s3.keys(bucket)) == [WHEEL, WHEEL + ".metadata"]


def test_the_sweep_spares_what_rows_name_in_a_local_store_too(testapp, dbsession, files_dir, uploader):
    assert upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x")).status_int == 200
    lost = files_dir / "de" / "ad" / "lost-1.0.tar.gz"
    lost.parent.mkdir(parents=True, exist_ok=True)
    lost.write_bytes(b"left behind")
    saved = files_dir / ".cache" / "simple-old"
    saved.parent.mkdir(exist_ok=True)
    saved.write_bytes(b"a saved listing")
    for path in (lost, saved):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    registry = testapp.app.registry
    registry.settings["myapp.files_orphan_grace_seconds"] = "3600"
    try:
        sweep_orphans(JobContext(dbsession, registry, None), {})  # type: ignore[arg-type]
    finally:
        del registry.settings["myapp.files_orphan_grace_seconds"]
    assert not lost.exists()
    file = services.find_file(dbsession, WHEEL)
    assert (files_dir / file.storage_path).exists() and (files_dir / (file.storage_path + ".metadata")).exists()
    assert saved.exists()  # hidden folders (.cache, .incoming) are the node's, not the store's


# -- downloads -------------------------------------------------------------------------


def stored_wheel(app: webtest.TestApp, dbsession: Session) -> tuple[ReleaseFile, bytes]:
    data = _wheel("Tiny-Thing", "1.0", "x")
    assert upload(app, "uploader", PASSWORD, WHEEL, data).status_int == 200
    return services.find_file(dbsession, WHEEL), data


def signed_for(url: str, seconds: int) -> bool:
    """The URL's signature is SigV4's over its own date and ``seconds`` of validity:
    an S3 server refuses it after that (moto does not check the expiry itself,
    so the test checks that the expiry is signed in and cannot be stretched)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if query.get("X-Amz-Expires") != str(seconds):
        return False
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    if abs(signed_at.replace(tzinfo=UTC).timestamp() - time.time()) > 60:
        return False
    unsigned = {k: v for k, v in query.items() if not k.startswith("X-Amz-")}
    request = AWSRequest("GET", f"{parts.scheme}://{parts.netloc}{parts.path}", params=unsigned)
    # botocore signs at "now"; the verifier signs again at the URL's own time.
    with patch("botocore.auth.get_current_datetime", return_value=signed_at):
        S3SigV4QueryAuth(Credentials(KEY, KEY), "s3", REGION, expires=seconds).add_auth(request)
    again = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    return again["X-Amz-Signature"] == query["X-Amz-Signature"]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_download_is_a_redirect_to_a_short_lived_signed_url_and_counts(settings, dbsession, s3, bucket, uploader):
    app = s3_app(settings, s3, bucket, **{"myapp.files_url_seconds": "120"})
    file, data = stored_wheel(app, dbsession)
    res = app.get(f"/files/{WHEEL}", status=302)
    assert res.headers["Cache-Control"] == "private, no-store"
    assert signed_for(res.location, 120) and f"/{bucket}/files/{file.storage_path}?" in res.location
    assert fetch(res.location) == (200, data)
    tampered = res.location.replace("X-Amz-Expires=120", "X-Amz-Expires=999999")
    assert not signed_for(tampered, 999999)
    metadata = app.get(f"/files/{WHEEL}.metadata", status=302)
    assert fetch(metadata.location)[1].startswith(b"Metadata-Version")
    app.head(f"/files/{WHEEL}", status=302)  # a HEAD is not a download
    app.get(f"/files/{WHEEL}", headers={"Range": "bytes=100-"}, status=302)  # a later chunk is not one either
    assert app.get(f"/files/{WHEEL}", headers={"If-None-Match": f'"{file.sha256}"'}, status=304)
    dbsession.expire_all()
    assert services.find_file(dbsession, WHEEL).downloads == 1


def test_a_public_index_may_send_clients_to_a_cdn(settings, dbsession, s3, bucket, uploader):
    app = s3_app(settings, s3, bucket, **{"myapp.files_base_url": "https://cdn.example.org/files/"})
    file, _ = stored_wheel(app, dbsession)
    res = app.get(f"/files/{WHEEL}", status=302)
    assert res.location == f"https://cdn.example.org/files/{file.storage_path}"


def test_a_private_index_never_signs_a_url_for_a_stranger(settings, dbsession, s3, bucket, uploader):
    """Only signed, short-lived URLs, only after the permission check (the base URL is ignored)."""
    extra = {"myapp.read_access": "authenticated", "myapp.files_base_url": "https://cdn.example.org/files/"}
    extra["myapp.files_url_seconds"] = "604800"  # a week: capped at 15 minutes here
    app = s3_app(settings, s3, bucket, **extra)
    uploader.email_verified = True  # a member: may publish and read
    dbsession.flush()
    _, data = stored_wheel(app, dbsession)
    for path in (f"/files/{WHEEL}", f"/files/{WHEEL}.metadata"):
        stranger = app.get(path, status="*", expect_errors=True)
        assert stranger.status_int in (401, 403) and "Location" not in stranger.headers
        assert "X-Amz" not in stranger.text and bucket not in stranger.text
        wrong = app.get(path, headers=basic("uploader", "not the password"), status="*", expect_errors=True)
        assert wrong.status_int in (401, 403) and "Location" not in wrong.headers
    res = app.get(f"/files/{WHEEL}", headers=basic("uploader", PASSWORD), status=302)
    assert "cdn.example.org" not in res.location and signed_for(res.location, 900)
    assert fetch(res.location) == (200, data)


def test_proxy_mode_streams_the_bytes_with_ranges(settings, dbsession, s3, bucket, uploader):
    app = s3_app(settings, s3, bucket, **{"myapp.files_serve": "proxy"})
    file, data = stored_wheel(app, dbsession)
    res = app.get(f"/files/{WHEEL}", status=200)
    assert res.body == data and res.headers["Content-Type"] == "application/zip"
    assert res.headers["Content-Length"] == str(len(data))
    assert res.headers["ETag"] == f'"{file.sha256}"' and res.headers["Accept-Ranges"] == "bytes"
    part = app.get(f"/files/{WHEEL}", headers={"Range": "bytes=10-19"}, status=206)
    assert part.body == data[10:20] and part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert app.get(f"/files/{WHEEL}", headers={"Range": "bytes=-5"}, status=206).body == data[-5:]
    assert app.get(f"/files/{WHEEL}", headers={"Range": "bytes=0-3"}, status=206).body == data[:4]
    app.get(f"/files/{WHEEL}", headers={"Range": f"bytes={len(data)}-"}, status=416)
    head = app.head(f"/files/{WHEEL}", status=200)
    assert head.headers["Content-Length"] == str(len(data)) and not head.body
    assert app.get(f"/files/{WHEEL}.metadata").body.startswith(b"Metadata-Version")
    s3.client.delete_object(Bucket=bucket, Key=f"files/{file.storage_path}")
    assert "temporarily unavailable" in app.get(f"/files/{WHEEL}", status=503).text
    dbsession.expire_all()
    assert services.find_file(dbsession, WHEEL).downloads == 2  # the full GET and the first chunk


def test_health_says_whether_the_store_answers(settings, dbsession, s3, bucket):
    res = s3_app(settings, s3, bucket).get("/health", status=200)
    assert res.json["files"] == "ok"
    res = s3_app(settings, s3, "no-such-bucket").get("/health", status=503)
    assert res.json["files"] == "store unavailable"


# -- real clients, real servers -----------------------------------------------------------


def s3_server(url: str, folder: Path, s3: S3Server, bucket: str, **kwargs: Any) -> LiveServer:
    """A live app whose files are in ``bucket``, its own folders under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"myapp.files_store": f"s3://{bucket}/files", "myapp.cache_dir": str(folder / "cache")}
    settings |= kwargs.pop("settings", {})
    return LiveServer(url, folder, env=s3.env, settings=settings, **kwargs)


def pip_install(python: Path, index: str, project: str, folder: Path) -> subprocess.CompletedProcess[str]:
    command = [str(python), "-m", "pip", "install", "--index-url", index, project]
    return subprocess.run(command, capture_output=True, text=True, env=offline_env(folder), timeout=180)


def test_twine_uploads_and_pip_and_uv_install_through_the_store(backend, tmp_path, s3, bucket):
    with fresh_database(backend, tmp_path) as url, s3_server(url, tmp_path / "node", s3, bucket, demo=False) as server:
        add_user(server, "pub")
        wheel = tmp_path / "tiny_thing-1.0-py3-none-any.whl"
        wheel.write_bytes(_wheel("Tiny-Thing", "1.0", "A tiny thing"))
        done = twine_upload(server, [wheel], "pub", PASSWORD)
        assert done.returncode == 0, done.stdout + done.stderr
        assert {k.rsplit("/", 1)[-1] for k in s3.keys(bucket)} == {wheel.name, wheel.name + ".metadata"}
        assert not (tmp_path / "node" / "files").exists()  # nothing of the index on the node's disk

        python = make_venv(tmp_path / "venv")
        pip = pip_install(python, server.base + "/simple/", "tiny-thing", tmp_path)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert installed_version(python, "tiny-thing") == "1.0"
        uv = [str(BIN / "uv"), "pip", "install", "--python", str(python), "--reinstall"]
        done = subprocess.run(
            [*uv, "--index-url", server.base + "/simple/", "tiny-thing"],
            capture_output=True,
            text=True,
            env=offline_env(tmp_path),
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    log = server.log.read_text()
    assert f'"GET /files/{wheel.name} HTTP/1.1" 302' in log and "Traceback" not in log


@pytest.mark.postgresql_only
def test_two_nodes_share_one_database_and_one_bucket(backend, tmp_path, s3, bucket):
    """Upload through one node, install through the other at once; each has folders of its own."""
    with fresh_database(backend, tmp_path) as url:
        with (
            s3_server(url, tmp_path / "a", s3, bucket, demo=False) as a,
            s3_server(url, tmp_path / "b", s3, bucket, migrate=False) as b,
        ):
            add_user(a, "pub")
            before = fetch(b.base + "/simple/")
            assert before[0] == 200 and b"tiny-thing" not in before[1]  # node b saved this listing
            wheel = tmp_path / "tiny_thing-1.0-py3-none-any.whl"
            wheel.write_bytes(_wheel("Tiny-Thing", "1.0", "A tiny thing"))
            done = twine_upload(a, [wheel], "pub", PASSWORD)
            assert done.returncode == 0, done.stdout + done.stderr
            assert b"tiny-thing" in fetch(b.base + "/simple/")[1]  # b's saved listing is stale: not served
            python = make_venv(tmp_path / "venv")
            pip = pip_install(python, b.base + "/simple/", "tiny-thing", tmp_path)
            assert pip.returncode == 0, pip.stdout + pip.stderr
            assert installed_version(python, "tiny-thing") == "1.0"
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.scalar(select(ReleaseFile.filename)) == wheel.name
        engine.dispose()
    for node in ("a", "b"):
        assert not (tmp_path / node / "files").exists()
        assert "Traceback" not in (tmp_path / node / "server.log").read_text()
    assert list((tmp_path / "b" / "cache" / ".cache").glob("simple-*"))  # b's own saved listing
