"""Publishing to a live server (waitress, a fresh database of each kind):
today's build tools and upload clients, and uploads that race.

* hatchling 1.33 writes ``Metadata-Version: 2.5``: its wheels and sdists are
  published with twine, ``uv publish`` and ``hatch publish``, and pip installs
  the project and its dependency from the index, reading ``Requires-Dist``
  from the wheel's metadata file (PEP 658) rather than the wheel.
* Many uploads of one filename at once: one wins, every other one is told
  "File already exists" (a 400), never a 500 from a unique constraint.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
import threading
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

from myapp.packaging.demo import _wheel
from tests.accounts import PASSWORD
from tests.conftest import BIN, LiveServer, live_server
from tests.test_accounts import basic
from tests.test_simple import installed_version, make_venv, offline_env
from tests.test_upload import add_user, build_dists, twine_upload, uv_publish

RACERS = 16


def hatch_project(folder: Path, name: str, version: str, dependencies: list[str]) -> list[Path]:
    """A tiny project built by hatchling (``build --no-isolation``): its wheel and sdist."""
    module = name.replace("-", "_")
    source = folder / f"{name}-src-{version}"
    (source / "src" / module).mkdir(parents=True)
    (source / "src" / module / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (source / "README.md").write_text(f"# {name}\n\nBuilt by hatchling in a test.\n")
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "{version}"
            description = "Built by hatchling"
            readme = "README.md"
            license = "MIT"
            requires-python = ">=3.9"
            dependencies = {dependencies!r}
            classifiers = ["Programming Language :: Python :: 3", "Typing :: Typed"]

            [project.urls]
            Source = "https://example.org/{name}"
            """
        )
    )
    return build_dists(source, folder / f"{name}-dist-{version}")


def metadata_version(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Metadata-Version:"))


def hatch_publish(server: LiveServer, files: list[Path], folder: Path) -> subprocess.CompletedProcess[str]:
    home = folder / "hatch-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").touch()  # hatch's defaults, nothing from this machine's user
    env = offline_env(folder) | {
        "HATCH_DATA_DIR": str(home / "data"),
        "HATCH_CACHE_DIR": str(home / "cache"),
        "HATCH_CONFIG": str(home / "config.toml"),
        "HATCH_INDEX_USER": "pub",
        "HATCH_INDEX_AUTH": PASSWORD,
    }
    command = [str(BIN / "hatch"), "publish", "--repo", server.base + "/legacy/", "--no-prompt", *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=files[0].parent, timeout=180)


def test_hatchling_metadata_2_5_publishes_with_twine_uv_and_hatch_and_pip_installs(backend, tmp_path):
    with live_server(backend, tmp_path, demo=False) as server:
        add_user(server, "pub")
        dependency = hatch_project(tmp_path, "tiny-dep", "1.0", [])
        assert metadata_version(next(p for p in dependency if p.suffix == ".whl")) == "2.5"
        done = twine_upload(server, dependency, "pub", PASSWORD)
        assert done.returncode == 0, done.stdout + done.stderr

        published = {}
        for version, publish in [
            ("1.0", lambda files: twine_upload(server, files, "pub", PASSWORD)),
            ("2.0", lambda files: uv_publish(server, files, "pub", PASSWORD)),
            ("3.0", lambda files: hatch_publish(server, files, tmp_path)),
        ]:
            files = hatch_project(tmp_path, "tiny-hatch", version, ["tiny-dep>=1.0"])
            done = publish(files)
            assert done.returncode == 0, done.stdout + done.stderr
            published[version] = files

        python = make_venv(tmp_path / "venv")
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--index-url", server.base + "/simple/", "tiny-hatch"],
            capture_output=True,
            text=True,
            env=offline_env(tmp_path),
            timeout=180,
        )
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert installed_version(python, "tiny-hatch") == "3.0"
        assert installed_version(python, "tiny-dep") == "1.0"  # found through requires_dist
    stored = {p.name for p in (tmp_path / "files").rglob("*") if p.is_file() and ".incoming" not in p.parts}
    assert {p.name for files in published.values() for p in files} <= stored
    assert "tiny_hatch-3.0-py3-none-any.whl.metadata" in stored
    log = server.log.read_text()
    # pip read the dependency from the metadata file, before downloading any wheel of tiny-hatch.
    metadata_read = log.index("/tiny_hatch-3.0-py3-none-any.whl.metadata")
    assert metadata_read < log.index("/tiny_hatch-3.0-py3-none-any.whl ")
    assert "Traceback" not in log and PASSWORD not in log


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
    parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post_upload(base: str, data: bytes, barrier: threading.Barrier) -> tuple[int, str]:
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "Tiny-Thing",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    body, content_type = _multipart(fields, "tiny_thing-1.0-py3-none-any.whl", data)
    headers = {"Content-Type": content_type} | basic("pub", PASSWORD)
    request = urllib.request.Request(base + "/legacy/", data=body, headers=headers, method="POST")
    barrier.wait()
    try:
        with urllib.request.urlopen(request, timeout=120) as res:
            return res.status, res.reason
    except urllib.error.HTTPError as err:
        return err.code, err.reason


def test_racing_uploads_of_one_filename_one_wins_the_rest_are_400(backend, tmp_path):
    """Each racer has other content for the same name, for a project that does not exist yet:
    they race on the project, the release and the file rows at once."""
    with live_server(backend, tmp_path, demo=False, settings={"myapp.page_cache_seconds": "0"}) as server:
        add_user(server, "pub")
        barrier = threading.Barrier(RACERS)
        results: list[tuple[int, str]] = []

        def racer(n: int) -> None:
            results.append(_post_upload(server.base, _wheel("Tiny-Thing", "1.0", f"racer {n}"), barrier))

        threads = [threading.Thread(target=racer, args=(n,)) for n in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * (RACERS - 1), results
    assert all("File already exists" in reason for status, reason in results if status == 400), results
    wheels = [p for p in (tmp_path / "files").rglob("*.whl")]
    assert len(wheels) == 1
    assert "Traceback" not in server.log.read_text()
    assert not [p for p in (tmp_path / "files" / ".incoming").iterdir() if os.path.isfile(p)]
