"""``pip install`` and ``uv pip install`` of 30 proxied projects through a warm
proxy, side by side with the same install straight from the (local) upstream.

    .venv/bin/python bench/proxy_install.py [--projects 30] [--rounds 3] [--json]

Two ``pserve`` processes on 127.0.0.1 from copies of production.ini (SQLite
files in a temp folder): the upstream, an instance of this app holding
``--projects`` projects of one real wheel each (with PEP 658 metadata), and
the proxy, ``myapp.upstream`` pointing at it. The proxy is warmed by one
install of everything (the cold figure is reported too); then, in interleaved
rounds (which index goes first alternates), each client installs all the projects into a fresh ``--target``
folder with no client cache (``--no-cache-dir``, ``--no-cache``), once from
the upstream and once from the proxy, each with that index as its only
``--index-url``. Reported: the median wall time of each, and proxy/upstream.
Finally the upstream is stopped and both clients install through the proxy
again (the goal: it still succeeds). The exit code is 0 whatever the figures
are, 1 if an install fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

# bench/bench.py's servers and ini files (this folder is first on sys.path when run as a script).
from bench import BIN, BenchError, app_settings, free_ports, serve, server_env, write_ini
from myapp.packaging.models import ReleaseFile
from myapp.packaging.publish import new_package, new_release
from myapp.packaging.services import bump_serial

INSTALL_TIMEOUT = 600
WHEEL = "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--padding", type=int, default=200_000, help="random bytes added to each wheel")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def build_wheel(folder: Path, name: str, version: str, padding: int) -> tuple[Path, bytes]:
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{dist}/data.bin", os.urandom(padding))
        wheel.writestr(f"{info}/METADATA", metadata)
        wheel.writestr(f"{info}/WHEEL", WHEEL)
        wheel.writestr(f"{info}/RECORD", "")
    return path, metadata


def publish(database: str, files_dir: Path, scratch: Path, names: list[str], padding: int) -> None:
    """Each project with one release and one wheel, written as an upload would leave them."""
    engine = create_engine(database)
    try:
        with Session(engine) as db:
            for name in names:
                wheel, metadata = build_wheel(scratch, name, "1.0", padding)
                data = wheel.read_bytes()
                sha256 = hashlib.sha256(data).hexdigest()
                relative = f"{sha256[:2]}/{sha256[2:4]}/{wheel.name}"
                target = files_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                (target.parent / (wheel.name + ".metadata")).write_bytes(metadata)
                package = new_package(name, summary=f"bench project {name}")
                release = new_release("1.0", created=datetime(2024, 1, 1, tzinfo=UTC))
                release.files.append(
                    ReleaseFile(
                        filename=wheel.name,
                        packagetype="bdist_wheel",
                        python_version="py3",
                        size=len(data),
                        sha256=sha256,
                        upload_time=datetime(2024, 1, 1, tzinfo=UTC),
                        storage_path=relative,
                        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
                    )
                )
                package.releases.append(release)
                db.add(package)
                db.flush()
                bump_serial(db, package)
            db.commit()
    finally:
        engine.dispose()


def client_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(folder / "uv")}


def install(client: str, index: str, names: list[str], folder: Path) -> float:
    """Seconds for one install of ``names`` from ``index`` into a fresh target, no client cache."""
    target = Path(tempfile.mkdtemp(dir=folder, prefix=f"{client}-"))
    if client == "pip":
        command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target)]
    else:
        command = [str(BIN / "uv"), "pip", "install", "--no-cache", "--python", sys.executable, "--target", str(target)]
    command += ["--index-url", index, *names]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=client_env(folder), timeout=INSTALL_TIMEOUT)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    if done.returncode != 0:
        raise BenchError(f"{client} install from {index} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def server_ini(folder: Path, name: str, port: int, **more: str) -> Path:
    app = app_settings(f"sqlite:///{folder / name}.sqlite")
    app.update({"myapp.files_dir": str(folder / f"{name}-files"), "myapp.worker_thread": "true", **more})
    return write_ini(folder / f"{name}.ini", app, port, threads=8)


def init(ini: Path, env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "myapp-initdb"), str(ini)], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"myapp-initdb failed:\n{done.stdout}{done.stderr}")


def run(args: argparse.Namespace) -> dict[str, object]:
    names = [f"bench-proxied-{i:02d}" for i in range(args.projects)]
    with tempfile.TemporaryDirectory(prefix="myapp-proxy-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        env = server_env()
        up_port, proxy_port = free_ports(2)
        up_ini = server_ini(folder, "upstream", up_port)
        init(up_ini, env)
        scratch = folder / "wheels"
        scratch.mkdir()
        publish(f"sqlite:///{folder / 'upstream'}.sqlite", folder / "upstream-files", scratch, names, args.padding)
        upstream_stack = ExitStack()
        upstream = upstream_stack.enter_context(serve(up_ini, up_port, env))
        proxy_ini = server_ini(folder, "proxy", proxy_port, **{"myapp.upstream": f"{upstream}/simple/"})
        init(proxy_ini, env)
        proxy = stack.enter_context(serve(proxy_ini, proxy_port, env))
        indexes = {"upstream": f"{upstream}/simple/", "proxy": f"{proxy}/simple/"}

        cold = {client: install(client, indexes["proxy"], names, folder) for client in ("pip", "uv")}
        times: dict[str, dict[str, list[float]]] = {c: {"upstream": [], "proxy": []} for c in ("pip", "uv")}
        for round_number in range(args.rounds):
            # Which index goes first alternates: a machine that slows down for a while
            # (this one is shared) then costs both the same.
            order = ("upstream", "proxy") if round_number % 2 == 0 else ("proxy", "upstream")
            for client in ("pip", "uv"):
                for where in order:
                    times[client][where].append(install(client, indexes[where], names, folder))
        upstream_stack.close()  # the upstream stops: the warm proxy alone
        down = {client: install(client, indexes["proxy"], names, folder) for client in ("pip", "uv")}

    figures: dict[str, object] = {"projects": args.projects, "rounds": args.rounds, "wheel_padding": args.padding}
    for client in ("pip", "uv"):
        up = statistics.median(times[client]["upstream"])
        px = statistics.median(times[client]["proxy"])
        figures[client] = {
            "upstream_s": round(up, 3),
            "warm_proxy_s": round(px, 3),
            "proxy_over_upstream": round(px / up, 3),
            "cold_proxy_s": round(cold[client], 3),
            "upstream_stopped_s": round(down[client], 3),
            "all_upstream_s": [round(t, 3) for t in times[client]["upstream"]],
            "all_proxy_s": [round(t, 3) for t in times[client]["proxy"]],
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = run(args)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.projects} projects, median of {args.rounds} interleaved rounds, no client cache")
    print(f"{'client':<6} {'upstream':>10} {'warm proxy':>11} {'ratio':>7} {'cold proxy':>11} {'upstream down':>14}")
    for client in ("pip", "uv"):
        f = figures[client]
        assert isinstance(f, dict)
        print(
            f"{client:<6} {f['upstream_s']:>9.2f}s {f['warm_proxy_s']:>10.2f}s {f['proxy_over_upstream']:>7.2f}"
            f" {f['cold_proxy_s']:>10.2f}s {f['upstream_stopped_s']:>13.2f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
