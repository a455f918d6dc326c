"""``myapp-worker CONFIG [--drain]``: run the job queue (mail, clean-ups).

Without ``--drain`` it runs until SIGTERM or SIGINT, finishing the job in
hand before it exits: run it under a process manager (systemd, see the
README), one or more per node. With ``--drain`` it runs every job that is
due now, and those that become due while it runs, then exits: status 0 when
none failed for good (a job that failed and will be tried again later
counts as fine: the queue will deliver it), 1 when one did (cron notices).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from pyramid.config import Configurator

from myapp.config import configure
from myapp.data.jobs import Outcome, Worker
from myapp.scripts import OPTIONS, command, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myapp-worker", description=__doc__.split("\n\n")[0], parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. production.ini")
    parser.add_argument("--drain", action="store_true", help="run every job due now, then exit")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at an empty queue (1)")
    return parser.parse_args(argv)


def registry_for(settings: dict[str, Any]) -> Any:
    """The application's registry (handlers, mailer, templates), without a web server."""
    config: Configurator = configure({**settings, "myapp.worker_thread": "false"})
    config.commit()
    return config.registry


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        print(f"myapp-worker: {signal.Signals(signum).name}, stopping after the current job", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


@command("myapp-worker")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    worker = Worker(registry_for(load_settings(args.config_uri)))
    if args.drain:
        outcomes = worker.drain()
        summary = ", ".join(f"{outcomes[o]} {o}" for o in Outcome) if outcomes else "nothing was due"
        print(f"myapp-worker: {summary}")
        return 1 if outcomes[Outcome.FAILED] else 0
    worker.run(stop_on_signals(), poll=args.poll)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
