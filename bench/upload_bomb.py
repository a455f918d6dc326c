"""How fast, and with how little memory, an upload bomb is refused.

    .venv/bin/python bench/upload_bomb.py [--megabytes 300]

Builds the bombs of issue 20: a wheel of about 300 kB whose METADATA unzips to
300 MB, and an sdist whose tar unzips to as much. Measures, in this process,
the time and the traced peak memory (tracemalloc) of reading each one's
metadata (``archives.py``), then uploads each to a live server (``pserve``
on a fresh SQLite file, as tests/conftest.py's LiveServer runs it) and
reports the answer, its time, and the growth of the server's peak resident
memory (VmHWM) over its size before the upload.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import tempfile
import time
import tracemalloc
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packaging.version import Version  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from myapp.accounts import services as accounts  # noqa: E402
from myapp.packaging import archives  # noqa: E402
from tests.conftest import LiveServer  # noqa: E402
from tests.test_accounts import basic  # noqa: E402
from tests.test_publish_live import _multipart  # noqa: E402
from tests.test_upload import add_user  # noqa: E402

HEAD = b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n"
MB = 1024 * 1024


def zip_bomb(megabytes: int) -> bytes:
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("bomb-1.0.dist-info/METADATA", "w", force_zip64=True) as out,
    ):
        out.write(HEAD + b"Description: ")
        for _ in range(megabytes):
            out.write(b" " * MB)
    return buf.getvalue()


def gzip_bomb(megabytes: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
        info = tarfile.TarInfo("bomb-1.0/PKG-INFO")
        info.size = len(HEAD)
        tf.addfile(info, io.BytesIO(HEAD))
        info = tarfile.TarInfo("bomb-1.0/zeros")
        info.size = megabytes * MB

        class Zeros(io.RawIOBase):
            def readinto(self, b):  # type: ignore[no-untyped-def]
                b[:] = bytes(len(b))
                return len(b)

        tf.addfile(info, Zeros())
    return buf.getvalue()


def in_process(label: str, read) -> None:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        read()
        outcome = "ACCEPTED"
    except archives.ArchiveRefused as exc:
        outcome = f"refused: {exc}"
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label:6} in process: {elapsed * 1000:7.1f} ms, traced peak {peak / MB:6.2f} MiB, {outcome}")


def peak_rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def api_token(server: LiveServer) -> str:
    """A token for "pub": checking it costs no argon2 hash (whose 64 MiB would hide the bomb's cost)."""
    engine = create_engine(server.url)
    with Session(engine) as db, db.begin():
        _, token = accounts.create_token(db, accounts.find_user(db, "pub"), "bench")
    engine.dispose()
    return token


def over_http(label: str, server: LiveServer, token: str, filename: str, filetype: str, data: bytes) -> None:
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "bomb",
        "version": "1.0",
        "filetype": filetype,
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    body, content_type = _multipart(fields, filename, data)
    headers = {"Content-Type": content_type} | basic("__token__", token)
    request = urllib.request.Request(server.base + "/legacy/", data=body, headers=headers, method="POST")
    assert server.process is not None
    rss_before, _ = peak_rss_kib(server.process.pid)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as res:
            status, reason = res.status, res.reason
    except urllib.error.HTTPError as err:
        status, reason = err.code, err.reason
    elapsed = time.perf_counter() - start
    _, hwm_after = peak_rss_kib(server.process.pid)
    growth = max(0, hwm_after - rss_before) / 1024
    figures = f"{elapsed * 1000:7.1f} ms, server peak RSS growth {growth:6.2f} MiB"
    print(f"{label:6} over HTTP:   {figures}, {status} {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300, help="what each bomb unpacks to")
    args = parser.parse_args()
    wheel, sdist = zip_bomb(args.megabytes), gzip_bomb(args.megabytes)
    print(f"wheel: {len(wheel) / 1024:.0f} kB unpacking to {args.megabytes} MB of METADATA")
    print(f"sdist: {len(sdist) / 1024:.0f} kB unpacking to {args.megabytes} MB of tar")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "bomb-1.0-py3-none-any.whl").write_bytes(wheel)
        (tmp / "bomb-1.0.tar.gz").write_bytes(sdist)
        in_process("wheel", lambda: archives.wheel_metadata(tmp / "bomb-1.0-py3-none-any.whl"))
        in_process("sdist", lambda: archives.sdist_metadata(tmp / "bomb-1.0.tar.gz", "bomb", Version("1.0")))
        with LiveServer(f"sqlite:///{tmp / 'bomb.sqlite'}", tmp, demo=False) as server:
            add_user(server, "pub")
            token = api_token(server)
            # Warm-up: the server's first upload imports and connects what every later one reuses.
            over_http("warm", server, token, "bomb-1.0-py3-none-any.whl", "bdist_wheel", b"not a zip")
            over_http("wheel", server, token, "bomb-1.0-py3-none-any.whl", "bdist_wheel", wheel)
            over_http("sdist", server, token, "bomb-1.0.tar.gz", "sdist", sdist)


if __name__ == "__main__":
    main()
