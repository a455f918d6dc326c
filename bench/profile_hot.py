"""Where a pserve's time goes under load on one URL: py-spy samples the server while wrk loads it.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_hot.py [--path simple|download] [--seconds 10] [--gil] [--top 25] [--private]

The server is bench.py's (production.ini on a fresh SQLite file with the demo data); with ``--private``
the index is private (``myapp.read_access = authenticated``) and every request carries an API token as
basic auth, as pip and uv send it. Prints the
frames with the most samples, inclusive (the frame or anything it called) and by themselves, as
shares of all samples; ``--gil`` samples only the thread holding the GIL (where Python time goes),
otherwise every thread (waiting included). py-spy needs ptrace: as root, or with
``kernel.yama.ptrace_scope = 0``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import bench


def collapsed_counts(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Inclusive and self sample counts per frame from py-spy's ``--format raw`` (collapsed stacks)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    return inclusive, own, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=("simple", "simple-json", "download"), default="simple")
    parser.add_argument("--seconds", type=bench.positive_int, default=10)
    parser.add_argument("--threads", type=bench.positive_int, default=8)
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL")
    parser.add_argument("--top", type=bench.positive_int, default=25)
    parser.add_argument("--keep", type=Path, help="also write py-spy's collapsed stacks here")
    parser.add_argument("--private", action="store_true", help="a private index, asked with an API token")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(bench.BIN / "py-spy")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="myapp-profile-")))
        url = f"sqlite:///{folder / 'bench.sqlite'}"
        (port,) = bench.free_ports(1)
        settings = bench.app_settings(url, private=args.private)
        settings["myapp.files_dir"] = str(folder / "files")
        ini = bench.write_ini(folder / "myapp.ini", settings, port, args.threads)
        env = bench.server_env()
        bench.init_database(ini, env)
        headers = bench.basic_auth(bench.add_account(ini, env)) if args.private else ()
        log = ini.with_suffix(".log")
        with log.open("wb") as output:
            process = subprocess.Popen([str(bench.BIN / "pserve"), str(ini)], stdout=output, stderr=output, env=env)
        try:
            bench.wait_until_listening(process, port, log)
            base = f"http://{bench.HOST}:{port}"
            name = bench.first_project(base, headers)
            url = {
                "simple": f"{base}/simple/{name}/",
                "simple-json": f"{base}/simple/{name}/{bench.SIMPLE_JSON}",
                "download": bench.wheel_url(base, name, headers),
            }[args.path]
            target = bench.Target(args.path, url, headers)
            bench.warm_up(target)
            raw = args.keep or folder / "stacks.txt"
            command = [spy, "record", "--pid", str(process.pid), "--duration", str(args.seconds), "--rate", "200"]
            command += ["--format", "raw", "--output", str(raw), "--nonblocking"] + (["--gil"] if args.gil else [])
            recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1)
            load = bench.wrk_load(target, 16, args.seconds - 1)
            recorder.wait(timeout=args.seconds + 60)
        finally:
            bench.stop(process)
        inclusive, own, total = collapsed_counts(raw)
        print(
            f"{args.path} {target.path}: {load.requests_per_sec:.0f} req/s, "
            f"p99 {load.p99_ms:.0f} ms; {total} samples ({'GIL holder' if args.gil else 'all threads'})"
        )
        print("inclusive:")
        for frame, count in inclusive.most_common(args.top):
            print(f"  {100 * count / total:5.1f}%  {frame}")
        print("self:")
        for frame, count in own.most_common(args.top):
            print(f"  {100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
