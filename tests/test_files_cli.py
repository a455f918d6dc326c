"""``myapp-files`` as an operator runs it, on SQLite and PostgreSQL, against
moto's S3 server: ``check`` finds a planted orphan and a planted corruption
(and ``--repair`` removes only the orphan); ``copy`` moves a local store to
a bucket, resumably, and the app then serves from the bucket; and back."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, select

from myapp.packaging.models import ReleaseFile
from tests.conftest import BIN, LiveServer, free_port, fresh_database, write_ini
from tests.test_object_store import fetch

# A few demo projects (dozens of files) exercise every path; the whole demo made
# each of these tests take a minute and a half under CI's load, mostly in moto.
DEMO = ("--demo", "--demo-projects", "5")


def files(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return server.run_cli(str(BIN / "myapp-files"), *args)


def stored_rows(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ReleaseFile.filename, ReleaseFile.storage_path, ReleaseFile.sha256).order_by(ReleaseFile.id)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_check_finds_a_planted_orphan_and_a_planted_corruption(backend, tmp_path, s3, bucket):
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, env=s3.env, settings={"myapp.files_store": f"s3://{bucket}/files"})
        assert server.initdb(*DEMO).returncode == 0  # the demo's files go to the bucket
        clean = files(server, "check", str(server.ini))
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "ok" in clean.stdout and "orphan" not in clean.stdout + clean.stderr

        _, victim, _ = stored_rows(url)[0]
        original = s3.client.get_object(Bucket=bucket, Key=f"files/{victim}")["Body"].read()
        damaged = bytes([original[0] ^ 0xFF]) + original[1:]  # the same size: only the hash tells
        s3.client.put_object(Bucket=bucket, Key=f"files/{victim}", Body=damaged)
        s3.client.put_object(Bucket=bucket, Key="files/00/00/stray-1.0.tar.gz", Body=b"no row names me")

        found = files(server, "check", str(server.ini))
        assert found.returncode == 2
        assert f"damaged: {victim}: sha256" in found.stderr
        assert "orphan: 00/00/stray-1.0.tar.gz (15 bytes)" in found.stderr
        quick = files(server, "check", str(server.ini), "--quick")  # sizes only: the orphan, not the damage
        assert "orphan: 00/00/stray" in quick.stderr and "damaged" not in quick.stderr

        kept = files(server, "check", str(server.ini), "--repair")  # the orphan is younger than --grace
        assert "(younger than --grace: kept)" in kept.stderr
        repaired = files(server, "check", str(server.ini), "--repair", "--grace", "0")
        assert "orphan removed: 00/00/stray-1.0.tar.gz" in repaired.stderr
        keys = {item["Key"] for item in s3.client.list_objects_v2(Bucket=bucket)["Contents"]}
        assert "files/00/00/stray-1.0.tar.gz" not in keys
        assert f"files/{victim}" in keys  # damage is reported, never removed
        again = files(server, "check", str(server.ini))
        assert again.returncode == 2 and "damaged" in again.stderr and "orphan" not in again.stderr


def test_copy_moves_a_local_store_to_a_bucket_and_back(backend, tmp_path, s3, bucket):
    with fresh_database(backend, tmp_path) as url:
        (tmp_path / "local").mkdir()
        local = LiveServer(url, tmp_path / "local", env=s3.env)
        assert local.initdb(*DEMO).returncode == 0
        rows = stored_rows(url)
        target = f"s3://{bucket}/files"
        checked = files(local, "check", str(local.ini))  # the local store checks out too
        assert checked.returncode == 0 and "orphan" not in checked.stderr, checked.stdout + checked.stderr

        done = files(local, "copy", str(local.ini), "--to", target, "--quiet")
        assert done.returncode == 0, done.stdout + done.stderr
        objects = len(rows) + sum(1 for filename, _, _ in rows if filename.endswith(".whl"))  # + .metadata
        assert f"{objects} copied" in done.stdout
        s3.client.delete_object(Bucket=bucket, Key=f"files/{rows[0][1]}")  # as if interrupted
        resumed = files(local, "copy", str(local.ini), "--to", target, "--quiet")
        assert "1 copied" in resumed.stdout and f"{objects - 1} skipped (already there)" in resumed.stdout
        verified = files(local, "copy", str(local.ini), "--to", target, "--quiet", "--verify")
        assert f"{objects} skipped (already there" in verified.stdout

        # The app, pointed at the bucket, serves from it.
        ini = write_ini(
            tmp_path / "s3.ini",
            url,
            tmp_path / "gone",
            port := _port(),
            extra={"myapp.files_store": target, "myapp.cache_dir": str(tmp_path / "cache")},
        )
        with LiveServer(url, tmp_path, ini=ini, port=port, env=s3.env, migrate=False) as server:
            checked = files(server, "check", str(ini))
            assert checked.returncode == 0, checked.stdout + checked.stderr
            filename, storage_path, sha256 = rows[0]
            status, body = fetch(f"{server.base}/files/{filename}")
            assert status == 200 and hashlib.sha256(body).hexdigest() == sha256
        assert f'"GET /files/{filename} HTTP/1.1" 302' in server.log.read_text()

        back = files(server, "copy", str(ini), "--to", str(tmp_path / "back"), "--quiet")
        assert back.returncode == 0 and f"{objects} copied" in back.stdout
        assert (tmp_path / "back" / storage_path).read_bytes() == (
            tmp_path / "local" / "files" / storage_path
        ).read_bytes()
        assert sorted(_tree(tmp_path / "back")) == sorted(_tree(tmp_path / "local" / "files"))

        # Verified as it goes: a damaged object is reported and not copied.
        damaged = tmp_path / "local" / "files" / storage_path
        damaged.write_bytes(b"\0" * damaged.stat().st_size)
        again = files(local, "copy", str(local.ini), "--to", f"s3://{bucket}/again", "--quiet")
        assert again.returncode == 2 and f"damaged, not copied: {storage_path}: sha256" in again.stderr
        keys = {item["Key"] for item in s3.client.list_objects_v2(Bucket=bucket, Prefix="again/")["Contents"]}
        assert len(keys) == objects - 1 and f"again/{storage_path}" not in keys


def _tree(root: Path) -> list[str]:
    return [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    ]


def _port() -> int:
    return free_port()
