"""Only the upload goal of bench/peers.py: a 60-file ``twine upload`` to myapp (SQLite, production.ini)
and to pypiserver, in alternating rounds, optionally with py-spy recording myapp's server.

    .venv/bin/python bench/upload_speed.py [--rounds 5] [--upload-files 60] [--py-spy out.svg]

Quicker than peers.py when only the upload is being worked on; the same servers and timing, and by
default the same wheels already on each index (``--projects``/``--versions``): pypiserver lists its
folder on each upload, so it is faster on a near-empty one (``--projects 3 --versions 1``).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import peers

import bench


def _pid_listening(port: int) -> int:
    """The pid of the process listening on ``port`` (pserve's, for py-spy)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=bench.positive_int, default=5)
    parser.add_argument("--upload-files", type=bench.positive_int, default=60)
    parser.add_argument("--projects", type=bench.positive_int, default=30, help="projects already there (default 30)")
    parser.add_argument("--versions", type=bench.positive_int, default=3, help="wheels per project (default 3)")
    parser.add_argument("--peers-venv", type=Path, default=peers.DEFAULT_VENV)
    parser.add_argument(
        "--py-spy", type=Path, help="record myapp's server with py-spy (.svg: a flame graph; else collapsed stacks)"
    )
    parser.add_argument("--only-myapp", action="store_true", help="leave pypiserver out")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="myapp-upload-")))
        wheels = peers.make_wheels(work / "wheels", args.projects, args.versions)
        ports = bench.free_ports(2)
        servers = [
            peers.start_myapp(
                stack,
                work / "sqlite",
                "myapp SQLite",
                f"sqlite:///{work / 'myapp.sqlite'}",
                ports[0],
                int(bench.production_ini()["server:main"].get("threads", "8")),
                wheels,
            )
        ]
        if not args.only_myapp:
            binaries = peers.peers_venv(args.peers_venv)
            servers.append(peers.start_pypiserver(stack, work / "pypiserver", binaries, ports[1], wheels))
        spy = None
        if args.py_spy:
            pid = _pid_listening(ports[0])
            command = ["py-spy", "record", "-o", str(args.py_spy), "--pid", str(pid), "--threads", "--rate", "250"]
            if args.py_spy.suffix != ".svg":  # collapsed stacks, for reading the top frames
                command += ["--format", "raw"]
            spy = subprocess.Popen([str(bench.BIN / command[0]), *command[1:]], stdout=subprocess.DEVNULL)
        for round_no in range(args.rounds):
            batch = peers.upload_batch(work / f"upload-{round_no}", round_no, args.upload_files)
            order = servers if round_no % 2 == 0 else list(reversed(servers))
            for server in order:
                seconds = peers.twine_upload(server.upload or "", batch)
                times.setdefault(server.name, []).append(seconds)
                print(f"  round {round_no + 1}: {server.name} {seconds:.2f} s", file=sys.stderr, flush=True)
        served = _app_milliseconds(work / "sqlite" / "myapp.log")
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its SVG and exits
            spy.wait(timeout=60)
    for name, values in times.items():
        print(f"{name:<14} median {statistics.median(values):.2f} s  ({' '.join(f'{v:.2f}' for v in values)})")
    if served:
        print(f"myapp's own time per upload (access log): median {statistics.median(served):.1f} ms")
    return 0


def _app_milliseconds(log: Path) -> list[float]:
    """The milliseconds the app took per measured upload, as its access log says."""
    found = re.findall(r'"POST /legacy/ [^"]*" 200 \S+ ([0-9.]+)ms', log.read_text(errors="replace"))
    return [float(ms) for ms in found][-1 * 10**6 :]


if __name__ == "__main__":
    sys.exit(main())
