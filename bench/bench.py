"""Requests per second of myapp's pages against a bare Pyramid app, both on waitress.

    .venv/bin/python bench/bench.py [--duration 10] [--threads 4] [--connections 16] [--url URL] [--json]

Both apps run as ``pserve`` subprocesses on 127.0.0.1 from copies of production.ini that keep its
waitress, logging and alembic settings, so the app is the only difference between them. myapp's copy
points at a fresh SQLite file in a temp folder (or at --url / DATABASE_URL) that ``myapp-initdb --demo``
fills; the bare app is bench/hello.py. The load comes from ``wrk`` when it is installed, else from
threads running http.client (--loader picks one). The exit code is 0 whatever the figures are, and 1
if a server does not start or a URL does not answer 200 (in the warm-up or under load).
"""

from __future__ import annotations

import argparse
import configparser
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

HERE = Path(__file__).resolve().parent
PRODUCTION_INI = HERE.parent / "production.ini"
BIN = Path(sys.executable).parent  # the venv's console scripts sit beside its python
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
INITDB_TIMEOUT = 300.0
WARMUP_REQUESTS = 20
MAX_REQUESTS_PER_CONNECTION = 1_000_000  # the Python loader stops at this or at the deadline
TARGET_RATIO = 0.60
PROJECT_LINK = re.compile(r'href="(/project/[^/"?#]+/)"')
WHEEL_LINK = re.compile(r'href="(/files/[^"#]+\.whl)#')
SIMPLE_JSON = "?format=application/vnd.pypi.simple.v1%2Bjson"
WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
WRK_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
WRK_REQUESTS = re.compile(r"(\d+) requests in")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class BenchError(Exception):
    """A server did not start or a URL did not answer 200: there is nothing to measure."""


@dataclass(frozen=True)
class Load:
    """What one URL sustained under load."""

    requests_per_sec: float
    p99_ms: float
    requests: int
    non_200: int
    socket_errors: int


@dataclass(frozen=True)
class Target:
    name: str
    url: str

    @property
    def path(self) -> str:
        return request_path(urlsplit(self.url))


@dataclass(frozen=True)
class Row:
    target: Target
    load: Load


class RawIni(configparser.ConfigParser):
    """Keys kept as written and values left raw: ``%(here)s`` is for PasteDeploy to expand, relative
    to the ini we write."""

    def __init__(self) -> None:
        super().__init__(interpolation=None)

    def optionxform(self, optionstr: str) -> str:
        return optionstr


# -- command line ------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=positive_int, default=10, help="seconds of load per URL (default 10)")
    parser.add_argument("--threads", type=positive_int, default=4, help="waitress threads per server (default 4)")
    parser.add_argument("--connections", type=positive_int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--url", help="database URL for myapp (default DATABASE_URL, else a fresh SQLite file)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--no-page-cache",
        action="store_true",
        help="set myapp.page_cache_seconds = 0: every request renders from the database",
    )
    parser.add_argument(
        "--loader", choices=("auto", "wrk", "python"), default="auto", help="load generator (default: wrk if installed)"
    )
    args = parser.parse_args(argv)
    if args.loader == "auto":
        args.loader = "wrk" if shutil.which("wrk") else "python"
    elif args.loader == "wrk" and not shutil.which("wrk"):
        parser.error("--loader wrk: wrk is not installed")
    return args


# -- ini files ---------------------------------------------------------------------


def production_ini() -> RawIni:
    ini = RawIni()
    if not ini.read(PRODUCTION_INI):
        raise BenchError(f"{PRODUCTION_INI} not found")
    return ini


def app_settings(database_url: str, page_cache: bool = True) -> dict[str, str]:
    """production.ini's [app:main] on another database, over plain HTTP."""
    settings = dict(production_ini()["app:main"])
    settings["sqlalchemy.url"] = database_url.replace("%", "%%")  # PasteDeploy interpolates values
    settings["myapp.secure_cookies"] = "false"
    if not page_cache:
        settings["myapp.page_cache_seconds"] = "0"
    return settings


def write_ini(path: Path, app: dict[str, str], port: int, threads: int) -> Path:
    """production.ini with another [app:main] and its own port and thread count: both servers keep
    production's waitress, logging and alembic settings, so they differ only in their app."""
    ini = production_ini()
    ini.remove_section("app:main")
    ini["app:main"] = app
    ini["server:main"].update(listen=f"{HOST}:{port}", threads=str(threads))
    with path.open("w") as file:
        ini.write(file)
    return path


# -- servers -----------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports the OS considers free; the sockets stay open together so the ports differ."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def server_env(**extra: str) -> dict[str, str]:
    # The database URL is in the ini; an inherited DATABASE_URL would override it.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return {**env, "MYAPP_SECRET": secrets.token_urlsafe(32), "PYTHONUNBUFFERED": "1", **extra}


def init_database(ini: Path, env: dict[str, str]) -> None:
    command = [str(BIN / "myapp-initdb"), str(ini), "--demo"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=INITDB_TIMEOUT, check=False)
    if done.returncode != 0:
        raise BenchError(f"myapp-initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")


@contextmanager
def serve(ini: Path, port: int, env: dict[str, str]) -> Iterator[str]:
    """``pserve ini`` for the duration of the block; yields its base URL once it accepts connections."""
    log = ini.with_suffix(".log")
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "pserve"), str(ini)], stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_listening(process, port, log)
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)


def wait_until_listening(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"pserve {log.stem} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"pserve {log.stem} did not listen on {HOST}:{port} in {timeout:.0f} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- HTTP --------------------------------------------------------------------------


def request_path(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def connect(parts: SplitResult) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=REQUEST_TIMEOUT)


def get(url: str) -> tuple[int, str]:
    """Status and body, redirects not followed: a redirect is not the page we mean to measure."""
    parts = urlsplit(url)
    connection = connect(parts)
    try:
        connection.request("GET", request_path(parts))
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"GET {url} failed: {exc!r}") from exc
    finally:
        connection.close()


def get_ok(url: str) -> str:
    status, body = get(url)
    if status != 200:
        raise BenchError(f"GET {url} answered {status}, not 200")
    return body


def warm_up(url: str) -> None:
    """Fill the caches (templates, connection pool, SQLite pages) before measuring."""
    for _ in range(WARMUP_REQUESTS):
        get_ok(url)


def wheel_url(base: str, project: str) -> str:
    """The first wheel the project's simple page links to."""
    match = WHEEL_LINK.search(get_ok(f"{base}/simple/{project}/"))
    if match is None:
        raise BenchError(f"{base}/simple/{project}/ links to no wheel")
    return base + match.group(1)


def project_url(base: str) -> str:
    """A real demo project: the first one /projects/ links to."""
    match = PROJECT_LINK.search(get_ok(f"{base}/projects/"))
    if match is None:
        raise BenchError(f"{base}/projects/ links to no project: was the demo data loaded?")
    return base + match.group(1)


# -- load: wrk ---------------------------------------------------------------------


def wrk_load(url: str, connections: int, duration: int) -> Load:
    # wrk wants at least as many connections as threads.
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed on {url} ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> Load:
    rps, p99, requests = WRK_RPS.search(output), WRK_P99.search(output), WRK_REQUESTS.search(output)
    if rps is None or p99 is None or requests is None:
        raise BenchError(f"unexpected wrk output:\n{output}")
    non_2xx = WRK_NON_2XX.search(output)
    socket_errors = WRK_SOCKET_ERRORS.search(output)
    return Load(
        requests_per_sec=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * WRK_UNIT_MS[p99.group(2)],
        requests=int(requests.group(1)),
        non_200=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
    )


# -- load: pure Python fallback ----------------------------------------------------


@dataclass
class Tally:
    """One connection's results; each thread writes only its own."""

    latencies: list[float] = field(default_factory=list)
    non_200: int = 0
    socket_errors: int = 0


def hammer(parts: SplitResult, deadline: float, tally: Tally) -> None:
    """GETs back to back on one keep-alive connection until the deadline or the request cap."""
    path = request_path(parts)
    connection: http.client.HTTPConnection | None = None
    for _ in range(MAX_REQUESTS_PER_CONNECTION):
        if time.monotonic() >= deadline:
            break
        connection = connection or connect(parts)
        start = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()  # drained, or the connection cannot be reused
        except (OSError, http.client.HTTPException):
            tally.socket_errors += 1
            connection.close()
            connection = None
            continue
        tally.latencies.append(time.perf_counter() - start)
        if response.status != 200:
            tally.non_200 += 1
    if connection is not None:
        connection.close()


def python_load(url: str, connections: int, duration: int) -> Load:
    tallies = [Tally() for _ in range(connections)]
    deadline = time.monotonic() + duration
    parts = urlsplit(url)
    # Daemon threads: one stuck past the join deadline cannot keep the bench alive.
    threads = [threading.Thread(target=hammer, args=(parts, deadline, tally), daemon=True) for tally in tallies]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    join_deadline = deadline + REQUEST_TIMEOUT + 5
    for thread in threads:
        thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for tally in tallies for latency in tally.latencies)
    return Load(
        requests_per_sec=round(len(latencies) / elapsed, 2),
        p99_ms=round(percentile(latencies, 99) * 1000, 3),
        requests=len(latencies),
        non_200=sum(tally.non_200 for tally in tallies),
        socket_errors=sum(tally.socket_errors for tally in tallies),
    )


def percentile(ordered: list[float], percent: int) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = -(-percent * len(ordered) // 100)  # ceil in integers: no float rounding at exact ranks
    return ordered[max(rank, 1) - 1]


def measure(url: str, args: argparse.Namespace) -> Load:
    load = wrk_load if args.loader == "wrk" else python_load
    return load(url, args.connections, args.duration)


# -- the run -----------------------------------------------------------------------


def database_url(args: argparse.Namespace, folder: Path) -> str:
    return args.url or os.environ.get("DATABASE_URL") or f"sqlite:///{folder / 'bench.sqlite'}"


def backend(url: str) -> str:
    """The database's kind only: the URL may hold a password."""
    return urlsplit(url).scheme.split("+")[0]


def run(args: argparse.Namespace) -> tuple[str, list[Row]]:
    """Start both servers, measure every target, stop the servers and remove the temp folder."""
    with ExitStack() as stack:  # unwinds in reverse: servers stopped before their folder goes
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="myapp-bench-")))
        url = database_url(args, folder)
        app_port, bare_port = free_ports(2)
        app_ini = write_ini(
            folder / "myapp.ini", app_settings(url, page_cache=not args.no_page_cache), app_port, args.threads
        )
        bare_ini = write_ini(folder / "bare.ini", {"use": "call:hello:main"}, bare_port, args.threads)
        env = server_env()
        init_database(app_ini, env)
        bare = stack.enter_context(serve(bare_ini, bare_port, {**env, "PYTHONPATH": str(HERE)}))
        app = stack.enter_context(serve(app_ini, app_port, env))
        project = project_url(app)
        name = project.rstrip("/").rsplit("/", 1)[-1]
        targets = [  # bare Pyramid first: the ratios are to its figures
            Target("bare Pyramid", f"{bare}/"),
            Target("home", f"{app}/"),
            Target("project", project),
            Target("search", f"{app}/search?q=cache"),
            Target("simple index", f"{app}/simple/"),
            Target("simple html", f"{app}/simple/{name}/"),
            Target("simple json", f"{app}/simple/{name}/{SIMPLE_JSON}"),
            Target("download", wheel_url(app, name)),
        ]
        for target in targets:
            warm_up(target.url)
        rows = []
        for target in targets:
            print(f"  {target.name} {target.path} ...", file=sys.stderr, flush=True)
            rows.append(Row(target, measure(target.url, args)))
        return backend(url), rows


def ratio(row: Row, baseline: Row) -> float:
    return row.load.requests_per_sec / baseline.load.requests_per_sec if baseline.load.requests_per_sec else 0.0


def print_table(rows: list[Row]) -> None:
    baseline = rows[0]
    print(f"{'target':<13} {'url':<28} {'requests/s':>11} {'p99 ms':>9} {'ratio':>6} {'errors':>7}")
    for row in rows:
        load = row.load
        errors = load.non_200 + load.socket_errors
        print(
            f"{row.target.name:<13} {row.target.path:<28} {load.requests_per_sec:>11.1f} "
            f"{load.p99_ms:>9.2f} {ratio(row, baseline):>6.2f} {errors:>7}"
        )


def as_json(args: argparse.Namespace, database: str, rows: list[Row]) -> str:
    baseline = rows[0]
    settings = {key: getattr(args, key) for key in ("duration", "threads", "connections", "loader")}
    results: list[dict[str, Any]] = [
        {"name": row.target.name, "path": row.target.path, **asdict(row.load), "ratio": round(ratio(row, baseline), 4)}
        for row in rows
    ]
    return json.dumps({"settings": {**settings, "database": database}, "results": results}, indent=2)


def describe(args: argparse.Namespace, database: str) -> str:
    if args.loader == "wrk":
        loader = f"wrk -t{min(2, args.connections)} -c{args.connections} -d{args.duration}s"
    else:  # one process of Python threads: the client may be the bottleneck
        loader = f"Python http.client, {args.connections} connections, {args.duration} s"
    cache = "page cache off" if args.no_page_cache else "page cache on (production.ini)"
    return (
        f"waitress {args.threads} threads per server, {database} database, {cache}, load: {loader}, "
        f"{os.cpu_count()} CPUs"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM should unwind like Ctrl-C, so the servers and the temp folder are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        database, rows = run(args)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(describe(args, database))
    print_table(rows)
    home = next(row for row in rows if row.target.name == "home")
    print(f"home page ratio to bare Pyramid: {ratio(home, rows[0]):.2f} (target >= {TARGET_RATIO:.2f})")
    if args.json:
        print(as_json(args, database, rows))
    failed = [row.target.path for row in rows if row.load.non_200]
    if failed:
        print(f"bench: non-200 answers under load from {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
