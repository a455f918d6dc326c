"""Requests per second of myapp's pages against a bare Pyramid app, both on waitress.

    .venv/bin/python bench/bench.py [--duration 10] [--rounds 1] [--threads 4] [--connections 16] [--url URL]
        [--no-page-cache] [--only TEXT] [--data PATH] [--projects django,requests] [--json]

Both apps run as ``pserve`` subprocesses on 127.0.0.1 from copies of production.ini that keep its
waitress, logging and alembic settings, so the app is the only difference between them. myapp's copy
points at a fresh SQLite file in a temp folder (or at --url / DATABASE_URL) that ``myapp-initdb --demo``
fills; the bare app is bench/hello.py. The load comes from ``wrk`` when it is installed, else from
threads running http.client (--loader picks one). The exit code is 0 whatever the figures are, and 1
if a server does not start or a URL does not answer 200 (in the warm-up or under load).

Two more myapp servers share that database, so every figure comes from one run: one with the page
cache off (what a signed-in visitor, a private index or the first view after a change gets) and one
private (``myapp.read_access = authenticated``). Real projects (django and requests by default) are
imported from PyPI JSON documents (--data, default ../shared/data/pypi-top-100) with ``myapp-import``.
The same paths are measured anonymously, signed in (a session cookie from the login form) and, on the
private server, with an API token as basic auth; the goals at the end compare them.
"""

from __future__ import annotations

import argparse
import base64
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

HERE = Path(__file__).resolve().parent
PRODUCTION_INI = HERE.parent / "production.ini"
BIN = Path(sys.executable).parent  # the venv's console scripts sit beside its python
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
INITDB_TIMEOUT = 300.0
WARMUP_REQUESTS = 20
MAX_REQUESTS_PER_CONNECTION = 1_000_000  # the Python loader stops at this or at the deadline
DATA = HERE.parent.parent / "shared" / "data" / "pypi-top-100"
REAL_PROJECTS = ("django", "requests")
BENCH_USER, BENCH_EMAIL = "bench-user", "bench-user@example.org"
BENCH_PASSWORD = "violet kettle harbour 93"  # a throwaway account on a throwaway database
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PROJECT_LINK = re.compile(r'href="(/project/[^/"?#]+/)"')
SIMPLE_LINK = re.compile(r'href="/simple/([^/"?#]+)/"')
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
    headers: tuple[tuple[str, str], ...] = ()  # credentials: a session cookie, basic auth
    signs_in: bool = False  # measured with the session cookie of a fresh sign-in

    @property
    def path(self) -> str:
        return request_path(urlsplit(self.url))


@dataclass(frozen=True)
class Row:
    target: Target
    load: Load  # the median round's
    rounds: tuple[Load, ...] = ()  # every round's, in order


@dataclass(frozen=True)
class Goal:
    """The issue's goals: ``name`` sustains at least ``at_least`` of what ``of`` does."""

    name: str
    of: str
    at_least: float


GOALS = (
    Goal("home", "bare Pyramid", 0.60),
    Goal("real project, no cache", "bare Pyramid", 0.15),
    Goal("real project, signed in", "real project, no cache", 0.80),
    Goal("home, signed in", "home, no cache", 0.80),
    Goal("json, private token", "json, no cache", 0.80),
    Goal("simple, private token", "simple, no cache", 0.80),
)


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
    parser.add_argument(
        "--data", type=Path, default=DATA, help=f"PyPI JSON documents of the real projects (default {DATA})"
    )
    parser.add_argument(
        "--projects",
        default=",".join(REAL_PROJECTS),
        help="real projects to import from --data; the first is measured (default: django,requests)",
    )
    parser.add_argument("--only", help="measure only the targets whose name contains this text")
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="measure every target this many times, interleaved, and keep each one's median (default 1): "
        "on a shared machine, load from elsewhere then spreads over all targets instead of a few",
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


def app_settings(database_url: str, page_cache: bool = True, private: bool = False) -> dict[str, str]:
    """production.ini's [app:main] on another database, over plain HTTP."""
    settings = dict(production_ini()["app:main"])
    settings["sqlalchemy.url"] = database_url.replace("%", "%%")  # PasteDeploy interpolates values
    settings["myapp.secure_cookies"] = "false"
    if not page_cache:
        settings["myapp.page_cache_seconds"] = "0"
    if private:
        settings["myapp.read_access"] = "authenticated"
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


def run_script(command: list[str], env: dict[str, str], stdin: str | None = None) -> None:
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=INITDB_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"{Path(command[0]).name} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def init_database(ini: Path, env: dict[str, str]) -> None:
    run_script([str(BIN / "myapp-initdb"), str(ini), "--demo"], env)


def import_projects(ini: Path, env: dict[str, str], data: Path, names: list[str]) -> list[str]:
    """Import the real projects whose documents are in ``data``; returns their names."""
    documents = [data / f"{name}.json" for name in names if (data / f"{name}.json").is_file()]
    if documents:
        run_script([str(BIN / "myapp-import"), str(ini), *map(str, documents), "--no-progress"], env)
    else:
        print(f"  no documents for {', '.join(names)} in {data}: the demo project stands in", file=sys.stderr)
    return [path.stem for path in documents]


def add_account(ini: Path, env: dict[str, str]) -> str:
    """A verified user (myapp-adduser) and an API token of theirs; returns the token."""
    command = [str(BIN / "myapp-adduser"), str(ini), "--username", BENCH_USER, "--email", BENCH_EMAIL]
    run_script([*command, "--password-stdin"], env, stdin=BENCH_PASSWORD + "\n")
    # The token is made the way the manage page makes one, through the services, not the page:
    # that page asks for the password again (sudo), which is not what is measured here.
    code = (
        "import sys\n"
        "import myapp.models  # noqa: F401  (every table, for the foreign keys)\n"
        "from myapp.accounts import services\n"
        "from myapp.scripts import load_settings, managed_session\n"
        "load_settings(sys.argv[1])\n"
        "with managed_session() as db:\n"
        "    print(services.create_token(db, services.find_user(db, sys.argv[2]), 'bench')[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ini), BENCH_USER],
        capture_output=True,
        text=True,
        env=env,
        timeout=INITDB_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"making an API token failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


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


@dataclass(frozen=True)
class Reply:
    status: int
    cookies: list[str]  # the Set-Cookie headers
    text: str


def send(url: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = (), body: str | None = None) -> Reply:
    """The response, redirects not followed: a redirect is not the page we mean to measure."""
    parts = urlsplit(url)
    connection = connect(parts)
    try:
        connection.request(method, request_path(parts), body=body, headers=dict(headers))
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return Reply(response.status, response.headers.get_all("Set-Cookie") or [], text)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"{method} {url} failed: {exc!r}") from exc
    finally:
        connection.close()


def get(url: str, headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, str]:
    reply = send(url, headers=headers)
    return reply.status, reply.text


def get_ok(url: str, headers: tuple[tuple[str, str], ...] = ()) -> str:
    status, body = get(url, headers)
    if status != 200:
        raise BenchError(f"GET {url} answered {status}, not 200")
    return body


def warm_up(target: Target) -> None:
    """Fill the caches (templates, connection pool, SQLite pages) before measuring."""
    for _ in range(WARMUP_REQUESTS):
        get_ok(target.url, target.headers)


def session_cookie(reply: Reply) -> str:
    """``name=value`` of the session cookie a response sets."""
    for header in reply.cookies:
        pair = header.split(";", 1)[0]
        if "session=" in pair:
            return pair
    raise BenchError("the response set no session cookie")


def sign_in(base: str) -> tuple[tuple[str, str], ...]:
    """Headers of a signed-in browser: the session cookie the login form gives."""
    page = send(f"{base}/account/login")
    token = CSRF_FIELD.search(page.text)
    if page.status != 200 or token is None:
        raise BenchError(f"{base}/account/login answered {page.status} without a form")
    cookie = session_cookie(page)
    form = urlencode({"csrf_token": token.group(1), "username": BENCH_USER, "password": BENCH_PASSWORD})
    headers = (("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded"))
    done = send(f"{base}/account/login", "POST", headers, form)
    if done.status not in (302, 303):
        raise BenchError(f"signing in answered {done.status}, not a redirect")
    return (("Cookie", session_cookie(done)),)


def basic_auth(token: str) -> tuple[tuple[str, str], ...]:
    """Headers of pip or uv with an API token."""
    return (("Authorization", "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()),)


def wheel_url(base: str, project: str, headers: tuple[tuple[str, str], ...] = ()) -> str:
    """The first wheel the project's simple page links to."""
    match = WHEEL_LINK.search(get_ok(f"{base}/simple/{project}/", headers))
    if match is None:
        raise BenchError(f"{base}/simple/{project}/ links to no wheel")
    return base + match.group(1)


def first_project(base: str, headers: tuple[tuple[str, str], ...] = ()) -> str:
    """A demo project's name. With credentials (a private index, whose pages ask for a sign-in)
    the first name on /simple/, else the first project /projects/ links to."""
    if not headers:
        return project_url(base).rstrip("/").rsplit("/", 1)[-1]
    match = SIMPLE_LINK.search(get_ok(f"{base}/simple/", headers))
    if match is None:
        raise BenchError(f"{base}/simple/ links to no project: was the demo data loaded?")
    return match.group(1)


def project_url(base: str) -> str:
    """A real demo project: the first one /projects/ links to."""
    match = PROJECT_LINK.search(get_ok(f"{base}/projects/"))
    if match is None:
        raise BenchError(f"{base}/projects/ links to no project: was the demo data loaded?")
    return base + match.group(1)


# -- load: wrk ---------------------------------------------------------------------


def wrk_load(target: Target, connections: int, duration: int) -> Load:
    url = target.url
    # wrk wants at least as many connections as threads.
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    for name, value in target.headers:
        command[1:1] = ["-H", f"{name}: {value}"]
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


def hammer(parts: SplitResult, headers: dict[str, str], deadline: float, tally: Tally) -> None:
    """GETs back to back on one keep-alive connection until the deadline or the request cap."""
    path = request_path(parts)
    connection: http.client.HTTPConnection | None = None
    for _ in range(MAX_REQUESTS_PER_CONNECTION):
        if time.monotonic() >= deadline:
            break
        connection = connection or connect(parts)
        start = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
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


def python_load(target: Target, connections: int, duration: int) -> Load:
    tallies = [Tally() for _ in range(connections)]
    deadline = time.monotonic() + duration
    parts = urlsplit(target.url)
    headers = dict(target.headers)
    # Daemon threads: one stuck past the join deadline cannot keep the bench alive.
    threads = [
        threading.Thread(target=hammer, args=(parts, headers, deadline, tally), daemon=True) for tally in tallies
    ]
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


def measure(target: Target, args: argparse.Namespace) -> Load:
    load = wrk_load if args.loader == "wrk" else python_load
    return load(target, args.connections, args.duration)


# -- the run -----------------------------------------------------------------------


def database_url(args: argparse.Namespace, folder: Path) -> str:
    return args.url or os.environ.get("DATABASE_URL") or f"sqlite:///{folder / 'bench.sqlite'}"


def backend(url: str) -> str:
    """The database's kind only: the URL may hold a password."""
    return urlsplit(url).scheme.split("+")[0]


def run(args: argparse.Namespace) -> tuple[str, list[Row]]:
    """Start the servers, measure every target, stop the servers and remove the temp folder."""
    with ExitStack() as stack:  # unwinds in reverse: servers stopped before their folder goes
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="myapp-bench-")))
        url = database_url(args, folder)
        app_port, nocache_port, private_port, bare_port = free_ports(4)
        cache = not args.no_page_cache
        app_ini = write_ini(folder / "myapp.ini", app_settings(url, page_cache=cache), app_port, args.threads)
        nocache_ini = write_ini(
            folder / "myapp-nocache.ini", app_settings(url, page_cache=False), nocache_port, args.threads
        )
        private_ini = write_ini(
            folder / "myapp-private.ini", app_settings(url, page_cache=cache, private=True), private_port, args.threads
        )
        bare_ini = write_ini(folder / "bare.ini", {"use": "call:hello:main"}, bare_port, args.threads)
        env = server_env()  # one secret for all: a session cookie from one server is good on the others
        init_database(app_ini, env)
        real = import_projects(app_ini, env, args.data, [n for n in args.projects.split(",") if n])
        token = add_account(app_ini, env)
        bare = stack.enter_context(serve(bare_ini, bare_port, {**env, "PYTHONPATH": str(HERE)}))
        app = stack.enter_context(serve(app_ini, app_port, env))
        nocache = stack.enter_context(serve(nocache_ini, nocache_port, env))
        private = stack.enter_context(serve(private_ini, private_port, env))
        project = project_url(app)
        name = project.rstrip("/").rsplit("/", 1)[-1]
        big = real[0] if real else name
        tool = basic_auth(token)
        targets = [  # bare Pyramid first: the ratios are to its figures
            Target("bare Pyramid", f"{bare}/"),
            Target("home", f"{app}/"),
            Target("project", project),
            Target("search", f"{app}/search?q=cache"),
            Target("simple index", f"{app}/simple/"),
            Target("simple html", f"{app}/simple/{name}/"),
            Target("simple json", f"{app}/simple/{name}/{SIMPLE_JSON}"),
            Target("download", wheel_url(app, name)),
            # What the page cache cannot help: the same paths rendered for anyone, for a
            # signed-in browser, and for a tool with a token on a private index.
            Target("home, no cache", f"{nocache}/"),
            Target("home, signed in", f"{nocache}/", signs_in=True),
            Target("real project, no cache", f"{nocache}/project/{big}/"),
            Target("real project, signed in", f"{nocache}/project/{big}/", signs_in=True),
            Target("json, no cache", f"{nocache}/pypi/{big}/json"),
            Target("json, private token", f"{private}/pypi/{big}/json", tool),
            Target("simple, no cache", f"{nocache}/simple/{big}/"),
            Target("simple, private token", f"{private}/simple/{big}/", tool),
        ]
        targets = [t for i, t in enumerate(targets) if i == 0 or not args.only or args.only in t.name]
        loads: list[list[Load]] = [[] for _ in targets]
        for round_ in range(1, args.rounds + 1):
            for target, measured in zip(targets, loads, strict=True):
                if target.signs_in:
                    # Signed in afresh each time: an older session cookie would be reissued on every response.
                    target = replace(target, headers=sign_in(nocache))
                warm_up(target)
                print(f"  round {round_}: {target.name} {target.path} ...", end="", file=sys.stderr, flush=True)
                measured.append(measure(target, args))
                print(f" {measured[-1].requests_per_sec:.0f}/s", file=sys.stderr, flush=True)
        rows = [
            Row(target, median_load(measured), tuple(measured)) for target, measured in zip(targets, loads, strict=True)
        ]
        return backend(url), rows


def median_load(loads: list[Load]) -> Load:
    """The round with the median requests/s, with every round's requests and errors."""
    middle = sorted(loads, key=lambda load: load.requests_per_sec)[(len(loads) - 1) // 2]
    return replace(
        middle,
        requests=sum(load.requests for load in loads),
        non_200=sum(load.non_200 for load in loads),
        socket_errors=sum(load.socket_errors for load in loads),
    )


def ratio(row: Row, baseline: Row) -> float:
    """The median over rounds of each round's ratio: two targets measured in
    the same round share that moment's load from elsewhere on the machine."""
    pairs = list(zip(row.rounds, baseline.rounds, strict=True)) or [(row.load, baseline.load)]
    ratios = sorted(a.requests_per_sec / b.requests_per_sec if b.requests_per_sec else 0.0 for a, b in pairs)
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def goal_ratios(rows: list[Row]) -> list[tuple[Goal, float]]:
    """Each goal whose two targets were measured, with its ratio."""
    by_name = {row.target.name: row for row in rows}
    return [
        (goal, ratio(by_name[goal.name], by_name[goal.of])) for goal in GOALS if {goal.name, goal.of} <= set(by_name)
    ]


def print_table(rows: list[Row]) -> None:
    baseline = rows[0]
    print(f"{'target':<24} {'url':<34} {'requests/s':>11} {'p99 ms':>9} {'ratio':>6} {'errors':>7}")
    for row in rows:
        load = row.load
        errors = load.non_200 + load.socket_errors
        path = row.target.path if len(row.target.path) <= 34 else row.target.path[:33] + "…"
        print(
            f"{row.target.name:<24} {path:<34} {load.requests_per_sec:>11.1f} "
            f"{load.p99_ms:>9.2f} {ratio(row, baseline):>6.2f} {errors:>7}"
        )


def print_goals(rows: list[Row]) -> None:
    print(f"\n{'goal':<52} {'ratio':>6} {'target':>8}  met")
    for goal, value in goal_ratios(rows):
        met = "yes" if value >= goal.at_least else "NO"
        print(f"{goal.name + ' / ' + goal.of:<52} {value:>6.2f} {'>= ' + format(goal.at_least, '.2f'):>8}  {met}")


def as_json(args: argparse.Namespace, database: str, rows: list[Row]) -> str:
    baseline = rows[0]
    settings = {key: getattr(args, key) for key in ("duration", "rounds", "threads", "connections", "loader")}
    results: list[dict[str, Any]] = [
        {"name": row.target.name, "path": row.target.path, **asdict(row.load), "ratio": round(ratio(row, baseline), 4)}
        for row in rows
    ]
    goals = [
        {"name": goal.name, "of": goal.of, "ratio": round(value, 4), "at_least": goal.at_least}
        for goal, value in goal_ratios(rows)
    ]
    return json.dumps({"settings": {**settings, "database": database}, "results": results, "goals": goals}, indent=2)


def describe(args: argparse.Namespace, database: str) -> str:
    if args.loader == "wrk":
        loader = f"wrk -t{min(2, args.connections)} -c{args.connections} -d{args.duration}s"
    else:  # one process of Python threads: the client may be the bottleneck
        loader = f"Python http.client, {args.connections} connections, {args.duration} s"
    cache = "page cache off" if args.no_page_cache else "page cache on (production.ini)"
    rounds = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    return (
        f"waitress {args.threads} threads per server, {database} database, {cache}, load: {loader}{rounds}, "
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
    print_goals(rows)
    if args.json:
        print(as_json(args, database, rows))
    failed = [row.target.path for row in rows if row.load.non_200]
    if failed:
        print(f"bench: non-200 answers under load from {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
