"""The proxy of a public index: a warm proxied ``/simple/<name>/`` against a
hosted one in the same server process, and what a cold one costs on top of
the upstream's own latency.

    .venv/bin/python bench/upstream.py [--backend sqlite|postgresql] [--projects 30] [--versions 40]

Two ``pserve`` processes on 127.0.0.1 (tests/conftest.py's LiveServer): an
upstream (this app) holding ``--projects`` projects of ``--versions``
releases, one wheel each, and a proxy with ``myapp.upstream`` pointing at it,
hosting one project of the same shape. Requests are made one after another
from this process over a kept-alive connection (JSON pages, as pip asks).

* warm: N requests of the hosted page, then of a proxied page already
  fetched (within the TTL): p50 and mean of each, and their ratio;
* cold: for each proxied project, the upstream's own answer timed directly
  (before and after; their mean is the upstream latency), and the proxy's
  first answer for it; the difference is what the proxy adds (goal: <= 30 ms).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer, fresh_database  # noqa: E402  (the servers the tests start)
from tests.upstream_helpers import JSON, ago, publish  # noqa: E402


def timed_get(conn: http.client.HTTPConnection, path: str) -> float:
    """Seconds for one GET (body read); the answer must be 200."""
    started = time.perf_counter()
    conn.request("GET", path, headers={"Accept": JSON})
    res = conn.getresponse()
    body = res.read()
    elapsed = time.perf_counter() - started
    if res.status != 200:
        raise SystemExit(f"{path}: {res.status} {body[:200]!r}")
    return elapsed


def shape(versions: int) -> dict[str, object]:
    return {f"1.{i}": ago(days=400 - i) for i in range(versions)}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--projects", type=int, default=30)
    parser.add_argument("--versions", type=int, default=40)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "upstream").mkdir()
        (folder / "proxy").mkdir()
        with (
            fresh_database(args.backend, folder / "upstream") as up_url,
            fresh_database(args.backend, folder / "proxy") as proxy_url,
        ):
            upstream = LiveServer(up_url, folder / "upstream", demo=False).start()
            try:
                names = [f"proxied-{i:03d}" for i in range(args.projects + 1)]
                for name in names:
                    publish(upstream, name, shape(args.versions))  # type: ignore[arg-type]
                settings = {"myapp.upstream": f"{upstream.base}/simple/", "myapp.upstream_ttl": "1h"}
                proxy = LiveServer(proxy_url, folder / "proxy", demo=False, settings=settings).start()
                try:
                    publish(proxy, "hosted-lib", shape(args.versions))  # type: ignore[arg-type]
                    report(upstream, proxy, names, args)
                finally:
                    proxy.stop()
            finally:
                upstream.stop()
    return 0


def report(upstream: LiveServer, proxy: LiveServer, names: list[str], args: argparse.Namespace) -> None:
    to_proxy = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    to_upstream = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=30)
    warm_name, cold_names = names[0], names[1:]
    for _ in range(50):  # warm-up: templates, connections, the first fetch of the warm name
        timed_get(to_proxy, "/simple/hosted-lib/")
        timed_get(to_proxy, f"/simple/{warm_name}/")
        timed_get(to_upstream, f"/simple/{cold_names[0]}/")
    hosted = [timed_get(to_proxy, "/simple/hosted-lib/") for _ in range(args.requests)]
    proxied = [timed_get(to_proxy, f"/simple/{warm_name}/") for _ in range(args.requests)]
    print(f"backend {args.backend}; {args.versions} versions (one wheel each) per project; JSON pages")
    print(f"warm, {args.requests} sequential requests each, one proxy process:")
    for label, times in (("hosted ", hosted), ("proxied", proxied)):
        print(f"  {label}  p50 {ms(statistics.median(times))}  mean {ms(statistics.fmean(times))}")
    print(f"  proxied/hosted mean ratio {statistics.fmean(proxied) / statistics.fmean(hosted):.2f}")
    overheads = []
    for name in cold_names:
        before = timed_get(to_upstream, f"/simple/{name}/")
        cold = timed_get(to_proxy, f"/simple/{name}/")
        after = timed_get(to_upstream, f"/simple/{name}/")
        latency = (before + after) / 2
        overheads.append((cold - latency, cold, latency))
    added = sorted(o for o, _, _ in overheads)
    print(f"cold, {len(cold_names)} projects never fetched before:")
    print(f"  upstream latency (direct) median {ms(statistics.median(lat for _, _, lat in overheads))}")
    print(f"  proxy's first answer      median {ms(statistics.median(c for _, c, _ in overheads))}")
    print(
        f"  added by the proxy: median {ms(statistics.median(added))}, "
        f"p90 {ms(added[int(len(added) * 0.9) - 1])}, max {ms(added[-1])}"
    )


if __name__ == "__main__":
    sys.exit(main())
