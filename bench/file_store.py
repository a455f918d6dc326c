"""Files in a folder against files in an S3 bucket (moto's server on
127.0.0.1): the upload time of a 50 MB wheel, and download throughput when
the app sends the bytes (local store) against a redirect to a signed URL.

    .venv/bin/python bench/file_store.py [--mb 50] [--clients 4] [--downloads 40]

Two apps on real waitress servers (8 threads each) over one SQLite file;
clients are threads with ``http.client``. For the redirect, two figures: how
fast the app answers the 302 (what the app spends per download; the bytes
then come from the store or a CDN, which scale on their own), and the
download followed through to moto (whose Python server is far slower than
S3, so that figure says little about a real bucket).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import io
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import transaction
from moto.server import ThreadedMotoServer
from waitress.server import create_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from myapp import main
from myapp.accounts import services as accounts
from myapp.data import DbSession, get_tm_session
from myapp.data.migrations import upgrade_to_head

PASSWORD = "bench-password-0123456789"
KEY = "bench"


def big_wheel(mb: int, version: str) -> tuple[str, bytes]:
    """A valid wheel of ``mb`` MiB (a stored, incompressible data file)."""
    name = f"big_thing-{version}-py3-none-any.whl"
    info = f"big_thing-{version}.dist-info"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("big_thing/__init__.py", "")
        zf.writestr("big_thing/data.bin", os.urandom(mb * 1024 * 1024))
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: big-thing\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return name, buf.getvalue()


def serve(app: Any) -> tuple[str, Any]:
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return f"127.0.0.1:{server.effective_port}", server


def upload(host: str, filename: str, data: bytes, version: str) -> float:
    boundary = uuid.uuid4().hex
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "big-thing",
        "version": version,
        "filetype": "bdist_wheel",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n\r\n'
    body = b"".join([*parts, head.encode(), data, f"\r\n--{boundary}--\r\n".encode()])
    auth = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Basic {auth}"}
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=600)
    conn.request("POST", "/legacy/", body=body, headers=headers)
    res = conn.getresponse()
    res.read()
    assert res.status == 200, (res.status, res.reason)
    return time.perf_counter() - started


def get(host: str, path: str, follow: bool) -> int:
    """One download: the bytes received (following one redirect if asked)."""
    conn = http.client.HTTPConnection(host, timeout=600)
    conn.request("GET", path)
    res = conn.getresponse()
    size = 0
    while chunk := res.read(1024 * 1024):
        size += len(chunk)
    conn.close()
    if res.status == 302 and follow:
        where = urlsplit(res.getheader("Location"))
        return get(where.netloc, f"{where.path}?{where.query}", follow=False)
    assert res.status in (200, 302), res.status
    return size


def throughput(label: str, clients: int, downloads: int, fetch: Callable[[], int]) -> None:
    done: list[int] = []

    def client() -> None:
        for _ in range(downloads // clients):
            done.append(fetch())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    mb = sum(done) / 1e6
    print(f"  {label:44} {len(done) / elapsed:8.1f} downloads/s {mb / elapsed:8.1f} MB/s")


def downloads(host: str, args: argparse.Namespace, *, redirects: bool) -> None:
    path = "/files/big_thing-1.0-py3-none-any.whl"
    if not redirects:
        throughput("the app sends the file", args.clients, args.downloads, lambda: get(host, path, False))
        return
    throughput("the app answers a 302", args.clients, args.downloads * 25, lambda: get(host, path, False))
    throughput("the 302 followed to moto", args.clients, args.downloads, lambda: get(host, path, True))


def database(folder: Path, name: str) -> str:
    """A migrated SQLite file with the uploading user."""
    url = f"sqlite:///{folder / name}"
    DbSession.global_init(url)
    upgrade_to_head(DbSession.engine)  # type: ignore[arg-type]
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(DbSession.factory, tm, write=True)  # type: ignore[arg-type]
        user = accounts.create_user(db, username="bench", email="bench@example.org", password=PASSWORD)
        user.email_verified = True
    DbSession.dispose()
    return url


def main_(args: argparse.Namespace) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    folder = Path(tempfile.mkdtemp(prefix="myapp-store-bench-"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=KEY
    ).create_bucket(Bucket="bench-files")
    s3 = {
        "myapp.files_store": "s3://bench-files/files",
        "myapp.s3.endpoint_url": endpoint,
        "myapp.s3.region": "us-east-1",
        "myapp.s3.access_key_id": KEY,
        "myapp.s3.secret_access_key": KEY,
    }
    print(f"{args.mb} MiB wheel; uploads: best of {args.rounds}; downloads: {args.clients} clients")
    local = {"myapp.files_dir": str(folder / "files")}
    for n, (label, extra) in enumerate((("local folder", local), ("S3 bucket (moto)", s3))):
        url = database(folder, f"{n}.sqlite")
        settings = {"sqlalchemy.url": url, "myapp.secret": "bench-" + "x" * 40, "myapp.page_cache_seconds": "0"}
        settings |= {"myapp.files_dir": str(folder / f"node-{n}"), "myapp.max_upload_bytes": str(2**31)}
        host, server = serve(main({}, **settings | extra))
        times = []
        for round in range(args.rounds):
            filename, data = big_wheel(args.mb, f"1.{round}")
            times.append(upload(host, filename, data, f"1.{round}"))
        best = min(times)
        print(f"{label}: upload {best:.2f} s ({len(data) / 1e6 / best:.1f} MB/s)")
        downloads(host, args, redirects=n == 1)
        server.close()
        DbSession.dispose()
    moto.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--downloads", type=int, default=40)
    main_(parser.parse_args())
