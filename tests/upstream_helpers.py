"""Helpers for the proxy's tests: an upstream's database written from outside,
a count of the requests it served, a hostile upstream server."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import webtest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from myapp.config import configure
from myapp.packaging.models import Package, Release, ReleaseFile
from myapp.packaging.names import normalize
from myapp.packaging.publish import new_package, new_release
from myapp.packaging.services import bump_serial
from tests.conftest import BIN, LiveServer, free_port

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


@contextmanager
def upstream_db(server: LiveServer) -> Iterator[Session]:
    """A session on a live upstream's own database, committed at the end."""
    engine = create_engine(server.url)
    try:
        with Session(engine) as db:
            yield db
            db.commit()
    finally:
        engine.dispose()


def wheel_name(name: str, version: str) -> str:
    return f"{normalize(name).replace('-', '_')}-{version}-py3-none-any.whl"


def publish(server: LiveServer, name: str, versions: dict[str, datetime], *, metadata: bool = False) -> None:
    """Releases of ``name`` on the upstream, each with one wheel uploaded at the
    given time (with ``metadata``, its page advertises PEP 658 metadata too)."""
    with upstream_db(server) as db:
        package = db.scalar(select(Package).where(Package.name == normalize(name)))
        if package is None:
            package = new_package(name, summary=f"The {name} project")
            db.add(package)
        for version, uploaded in versions.items():
            release = new_release(version, created=uploaded)
            filename = wheel_name(name, version)
            release.files.append(
                ReleaseFile(
                    filename=filename,
                    packagetype="bdist_wheel",
                    python_version="py3",
                    size=1234,
                    sha256=hashlib.sha256(filename.encode()).hexdigest(),
                    upload_time=uploaded,
                    storage_path=f"fake/{filename}",  # listed at /files/<name>; never downloaded here
                    metadata_sha256=hashlib.sha256(b"Metadata-Version: 2.1").hexdigest() if metadata else None,
                )
            )
            package.releases.append(release)
        db.flush()
        bump_serial(db, package)


def yank(server: LiveServer, name: str, version: str, reason: str) -> None:
    with upstream_db(server) as db:
        package = db.scalar(select(Package).where(Package.name == normalize(name)))
        assert package is not None
        release = db.scalar(select(Release).where(Release.package_id == package.id, Release.version == version))
        assert release is not None
        release.yanked, release.yanked_reason = True, reason
        for f in release.files:
            f.yanked = True
        bump_serial(db, package)


def remove(server: LiveServer, name: str, version: str) -> None:
    with upstream_db(server) as db:
        package = db.scalar(select(Package).where(Package.name == normalize(name)))
        assert package is not None
        release = db.scalar(select(Release).where(Release.package_id == package.id, Release.version == version))
        assert release is not None
        for file in release.files:  # this engine has SQLite's foreign keys off: no cascade to count on
            db.delete(file)
        db.delete(release)
        bump_serial(db, package)


def requests_for(server: LiveServer, path: str) -> int:
    """How many GETs of ``path`` the upstream's access log shows."""
    text = server.log.read_text(errors="replace") if server.log.exists() else ""
    return len(re.findall(rf'"GET {re.escape(path)}(\?[^ ]*)? HTTP', text))


def ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)


# -- a hostile upstream -----------------------------------------------------------------------


class Hostile:
    """An HTTP server on 127.0.0.1 whose answers the test decides: path -> (status, headers, body);
    a body given as a list of parts is sent a part at a time (a callable part is waited on: a pause)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], tuple[int, dict[str, str], Any]]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                route = outer.routes.get(self.path)
                status, headers, body = route() if route else (404, {}, b"not here")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                parts = body if isinstance(body, list) else [body]
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(sum(len(p) for p in parts if isinstance(p, bytes))))
                self.end_headers()
                with suppress(OSError):  # the client hung up on purpose (a cap reached)
                    for part in parts:
                        if callable(part):
                            part()
                        else:
                            self.wfile.write(part)
                            self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hostile:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A small, real wheel (for pypiserver, which reads the files it serves)."""
    import zipfile

    dist = normalize(name).replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def proxy_app(settings: dict[str, Any], upstream: LiveServer | str, **more: str) -> webtest.TestApp:
    """This app, in process, proxying ``upstream`` (a live app, or a simple index's URL)."""
    url = upstream if isinstance(upstream, str) else f"{upstream.base}/simple/"
    app = configure({**settings, "myapp.upstream": url, **more}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@contextmanager
def pypiserver(folder: Path) -> Iterator[str]:
    """pypiserver on 127.0.0.1 serving ``folder`` (an HTML-only index without
    upload times); its simple URL. Its log is beside the folder."""
    port = free_port()
    log = (folder.parent / "pypiserver.log").open("wb")
    process = subprocess.Popen(
        # --disable-fallback: an unknown name is a 404, never a redirect to a public index.
        [
            *(str(BIN / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", "."),
            *("--disable-fallback", "--hash-algo", "sha256", str(folder)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("pypiserver did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
