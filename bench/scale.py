"""The site at a million projects: import speed, then p50/p95 of the pages
that must stay fast, on SQLite and PostgreSQL, page cache off, one waitress
process.

    .venv/bin/python bench/scale.py [--projects 1000000] [--backend sqlite|postgresql|both]
    .venv/bin/python bench/scale.py --projects 886000 --one-release --import-only

It writes N synthetic PyPI JSON documents as one NDJSON file (names built
from a vocabulary of real project-name words, summaries, version histories
of one to a hundred releases, and one project with 2,000 releases),
imports them with ``myapp-import`` (timed; run a second time to time a
no-op re-import), starts ``pserve`` on a fresh database, and times requests
one after another from this process over a kept-alive connection.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

from tests.conftest import LiveServer, fresh_database  # noqa: E402  (the same server the tests start)

WORDS = """
http client server async web api rest json yaml toml xml html css sql orm db redis kafka aws azure google cloud
storage queue cache log logging test testing mock fixture lint format type typing schema valid validator
parser parse config settings cli command shell terminal color rich text string date time timezone crypto
hash auth oauth jwt token session cookie user admin django flask pyramid fastapi starlette tornado celery
task job worker scheduler cron pipeline data dataframe pandas numpy array matrix math stat plot chart graph
image video audio pdf excel csv zip archive file path fs sync ftp ssh email mail smtp socket network dns
proxy tls ssl cert docker k8s kube deploy build package wheel pip env dotenv secret vault metrics trace
monitor alert health event stream pubsub grpc proto thrift graphql query search index elastic mongo postgres
mysql sqlite model train learn neural tensor torch vision text nlp token embed vector geo map gis time
series finance money currency locale i18n translate slug url uri router template render jinja markdown rst
doc docs sphinx plugin hook extension util utils tools kit core lib base common helper fast tiny simple
""".split()  # noqa: SIM905  (a word list reads better as text)
PREFIXES = ["", "", "", "", "py", "python-", "django-", "flask-", "pytest-", "aws-", "google-cloud-", "azure-"]
TOPICS = ["developers", "data teams", "web apps", "scripts", "the cloud", "tests", "services", "notebooks"]
CLASSIFIERS = [
    "Programming Language :: Python :: 3",
    "Framework :: Django",
    "Framework :: Flask",
    "Framework :: Pyramid",
    "License :: OSI Approved :: MIT License",
    "License :: OSI Approved :: Apache Software License",
    "Operating System :: OS Independent",
    "Topic :: Internet :: WWW/HTTP",
    "Topic :: Software Development :: Libraries",
    "Development Status :: 5 - Production/Stable",
]
BIG = "big-history"  # the project with 2,000 releases
SHA = "0" * 64


def project_names(count: int, rng: random.Random) -> Iterator[str]:
    seen: set[str] = set()
    while len(seen) < count:
        words = rng.sample(WORDS, rng.choice([1, 2, 2, 2, 3, 3]))
        name = rng.choice(PREFIXES) + "-".join(words)
        if len(seen) % 3 == 0:  # many real names are one made-up word, or carry a number
            name += rng.choice(["", "2", "3", "x", "-ng", "-lite", "-py", f"{rng.randint(1, 999)}"])
        if name not in seen:
            seen.add(name)
            yield name


def release_count(rng: random.Random, one_release: bool) -> int:
    """About three releases a project on average, a long tail to a hundred."""
    if one_release:
        return 1
    roll = rng.random()
    return 1 if roll < 0.6 else rng.randint(2, 5) if roll < 0.92 else rng.randint(6, 20) if roll < 0.995 else 100


def document(name: str, releases: int, rng: random.Random) -> dict:
    words = name.replace("-", " ")
    versions = {}
    for i in range(releases):
        version = f"{i // 100}.{(i // 10) % 10}.{i % 10}"
        stem = name.replace("-", "_")
        versions[version] = [
            {
                "filename": f"{stem}-{version}.tar.gz",
                "packagetype": "sdist",
                "python_version": "source",
                "size": 1000 + i,
                "digests": {"sha256": SHA},
                "upload_time_iso_8601": f"20{10 + i % 15:02d}-0{1 + i % 9}-1{i % 9}T00:00:00Z",
                "url": f"https://files.example.org/{stem}-{version}.tar.gz",
            }
        ]
    adjective = rng.choice(["fast", "small", "friendly", "typed", "modern"])
    summary = f"A {adjective} {words} library for {rng.choice(TOPICS)}"
    return {
        "info": {
            "name": name,
            "version": list(versions)[-1] if versions else None,
            "summary": summary,
            "description": f"# {name}\n\n{summary}.\n\n## Install\n\n    pip install {name}\n",
            "description_content_type": "text/markdown",
            "classifiers": rng.sample(CLASSIFIERS, 3),
            "license": "MIT",
        },
        "releases": versions,
    }


def write_documents(path: Path, count: int, one_release: bool, seed: int = 1, files: bool = False) -> list[str]:
    """One NDJSON file at ``path``, or (``files``) a folder there with one ``.json`` file each."""
    rng = random.Random(seed)
    names = [*project_names(count - 1, rng), BIG]
    documents = (
        json.dumps(document(name, 2000 if name == BIG else release_count(rng, one_release), rng), separators=(",", ":"))
        for name in names
    )
    if files:
        for i, (name, text) in enumerate(zip(names, documents, strict=True)):
            folder = path / f"{i // 10000:03d}"  # not a million entries in one folder
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(text)
        return names
    with gzip.open(path, "wt", compresslevel=1) as out:
        for text in documents:
            out.write(text + "\n")
    return names


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout.strip()


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def latencies(port: int, paths: list[str], rounds: int) -> tuple[float, float, list[tuple[float, str]]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for i in range(rounds):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        conn.request("GET", path, headers={"Host": "localhost"})
        res = conn.getresponse()
        res.read()
        times.append(((time.perf_counter() - started) * 1000, path))
        if res.status != 200:
            raise SystemExit(f"GET {path}: {res.status}")
    conn.close()
    times.sort()
    ms = [t for t, _ in times]
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1], times[-10:][::-1]


def suggested_first(port: int, meant: dict[str, str]) -> str:
    """How often the name a typo misspells is what search offers first: the
    first suggestion, or the first result when the typo still finds some."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    right, misses = 0, []
    for typo, name in meant.items():
        conn.request("GET", f"/search?{urlencode({'q': typo, 'format': 'json'})}", headers={"Host": "localhost"})
        found = json.load(conn.getresponse())
        first = found["suggestions"][:1] or [r["name"] for r in found["results"][:1]]
        if first and first[0].lower() == name:
            right += 1
        else:
            misses.append(f"{typo} -> {first[0] if first else '(nothing)'}")
    conn.close()
    return f"the name meant first: {right} of {len(meant)}" + (f" (not: {', '.join(misses)})" if misses else "")


NO_CACHE = {"myapp.page_cache_seconds": "0"}


@contextmanager
def server_on(backend: str, folder: Path) -> Iterator[LiveServer]:
    with fresh_database(backend, folder) as url:
        yield LiveServer(url, folder, demo=False, settings=NO_CACHE)


def run(backend: str, args: argparse.Namespace, data: Path, names: list[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"myapp-scale-{backend}-"))
    if args.url:  # an existing, already imported database: time its pages only
        measure(backend, args, LiveServer(args.url, folder, demo=False, migrate=False, settings=NO_CACHE), names)
        return
    with server_on(backend, folder) as server:
        server.initdb()
        env = server.env
        command = [str(BIN / "myapp-import"), str(server.ini), str(data), "--no-progress"]
        imported, out = timed([*command, "--defer-rendering"], env)
        print(f"[{backend}] import: {imported:.1f} s, peak RSS of a child {peak_rss_mb():.0f} MB\n    {out}")
        again, out = timed(command, env)
        print(f"[{backend}] re-import: {again:.1f} s ({imported / again:.1f}x faster)\n    {out}")
        if not args.import_only:
            measure(backend, args, server, names)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def measure(backend: str, args: argparse.Namespace, server: LiveServer, names: list[str]) -> None:
    rng = random.Random(7)
    sample = rng.sample(names, 200)
    queries = [
        *(n.replace("-", " ") for n in sample[:40]),
        *(n.split("-")[0] for n in sample[40:80]),
        "http client",
        "web framework",
        "json parser",
        "aws storage",
        "django",
        "pytest",
        "requsts",
        "async http",
        "data",
        "google cloud storage",
    ]
    # Misspelt names, which find nothing and so ask for "did you mean": two adjacent
    # letters swapped, or the last one doubled; each with the name it misspells.
    meant = {
        **{
            n[:i] + n[i + 1] + n[i] + n[i + 2 :]: n for n, i in ((n, rng.randrange(len(n) - 1)) for n in sample[80:100])
        },
        **{n + n[-1]: n for n in sample[100:110]},
    }
    typos = [
        *meant,
        "djangoo",
        "numpyy",
        "tensorflwo",
        "google-cloud-storag",
        "flask-sqlalchemi",
        "data-pipline-tool",
        "asyncio-htpp",
        "pytset",
    ]
    targets = {
        "search": [f"/search?{urlencode({'q': q})}" for q in queries],
        "search, misspelt (did you mean)": [f"/search?{urlencode({'q': q})}" for q in typos],
        "project": [f"/project/{n}/" for n in sample],
        f"project ({BIG}, 2,000 releases)": [f"/project/{BIG}/"],
        "home": ["/"],
        "deep browse page": [f"/projects/?{urlencode({'after': n})}" for n in sorted(sample)[-50:]],
    }
    with server:
        for label, paths in targets.items():
            if args.only and args.only not in label:
                continue
            latencies(server.port, paths, max(20, len(paths)))  # warm up: each page once (its first view)
            p50, p95, slowest = latencies(server.port, paths, args.rounds)
            print(f"[{backend}] {label:38} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
            if args.slowest:
                for ms, path in slowest:
                    print(f"        {ms:7.1f} ms  {path}")
            if label.startswith("search, misspelt"):
                print(f"[{backend}] {'':38} {suggested_first(server.port, meant)}")
        if args.only and args.only not in "/simple/":
            return
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        for kind, accept in (("HTML", "text/html"), ("JSON", "application/vnd.pypi.simple.v1+json")):
            for state in ("cold", "warm"):  # warm: the copy the cold request saved
                started = time.perf_counter()
                conn.request("GET", "/simple/", headers={"Host": "localhost", "Accept": accept})
                size = len(conn.getresponse().read())
                seconds = time.perf_counter() - started
                print(f"[{backend}] /simple/ {kind} {state}: {seconds:.2f} s ({size / 1e6:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=200, help="requests per target")
    parser.add_argument("--one-release", action="store_true", help="every project has one release (import test)")
    parser.add_argument("--import-only", action="store_true")
    parser.add_argument("--files", action="store_true", help="one .json file per document, not one NDJSON file")
    parser.add_argument("--keep", action="store_true", help="keep the databases' folders")
    parser.add_argument("--data", type=Path, help="where the documents are written, and kept (reused if there)")
    parser.add_argument("--url", help="time the pages of this already imported database (one --backend)")
    parser.add_argument("--only", help="time only the targets whose label contains this")
    parser.add_argument("--slowest", action="store_true", help="list each target's ten slowest requests")
    args = parser.parse_args()
    os.environ.setdefault("CI", "")
    if args.url and args.backend == "both":
        parser.error("--url needs --backend sqlite or postgresql")
    data = args.data or Path(tempfile.mkdtemp(prefix="myapp-scale-data-")) / (
        "projects" if args.files else "projects.ndjson.gz"
    )
    started = time.perf_counter()
    if args.url or (args.data and args.data.exists()):
        names = [*project_names(args.projects - 1, random.Random(1)), BIG]  # the names only: the same seed
    else:
        names = write_documents(data, args.projects, args.one_release, files=args.files)
        print(f"{args.projects:,} documents written in {time.perf_counter() - started:.0f} s")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args, data, names)
    if not args.data:
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
