"""How long the password-reset form takes to answer for an existing account
and for addresses and usernames no account uses: the answers must not tell
them apart (same status, same body, the same time within noise).

    .venv/bin/python bench/reset.py [--rounds 200] [--url DATABASE_URL]

In process (WebTest) on a fresh SQLite file (or a fresh, empty database at
--url, migrated here); each request comes from its own client address and asks
about its own login, so the throttles never answer instead. The kinds of
request take turns, so a slow patch of the machine hits them alike. Queued
jobs are left unrun: the worker's time is not the visitor's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import webtest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from myapp import main  # noqa: E402
from myapp.accounts import passwords, services  # noqa: E402
from myapp.data import DbSession  # noqa: E402
from myapp.data.migrations import upgrade_to_head  # noqa: E402
from myapp.scripts import managed_session  # noqa: E402

KINDS = ("existing account (email)", "unknown email", "unknown username")


def ask(app: webtest.TestApp, login: str, address: str) -> tuple[float, int, str]:
    page = app.get("/account/forgot-password", extra_environ={"REMOTE_ADDR": address})
    form = page.forms[[f.action for f in page.forms.values()].index("/account/forgot-password")]
    form["username"] = login
    started = time.perf_counter()
    res = form.submit(status="*", expect_errors=True, extra_environ={"REMOTE_ADDR": address})
    elapsed = (time.perf_counter() - started) * 1000
    body = res.text.replace(form["csrf_token"].value, "")  # the session's own token
    app.reset()
    return elapsed, res.status_int, body


def run(rounds: int, url: str | None) -> tuple[dict[str, list[float]], set[tuple[int, str]]]:
    folder = Path(tempfile.mkdtemp(prefix="myapp-reset-bench-"))
    settings = {
        "sqlalchemy.url": url or f"sqlite:///{folder / 'bench.sqlite'}",
        "myapp.secret": "bench-" + "x" * 40,
        "myapp.files_dir": str(folder),
        "myapp.mail_folder": str(folder / "mail"),
        "myapp.secure_cookies": "false",
        "myapp.check_schema": "false",
    }
    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "localhost"})
    upgrade_to_head(DbSession.engine)  # type: ignore[arg-type]
    passwords.hasher = passwords.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # set-up only
    with managed_session() as db:
        for i in range(rounds):
            services.create_user(db, username=f"user{i}", email=f"user{i}@example.org", password="x" * 16)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    answers: set[tuple[int, str]] = set()
    for i in range(rounds):
        logins = (f"user{i}@example.org", f"nobody{i}@example.org", f"nobody{i}")
        order = range(3) if i % 2 else reversed(range(3))
        for k in order:
            elapsed, status, body = ask(app, logins[k], f"10.{k}.{i // 250}.{i % 250}")
            times[KINDS[k]].append(elapsed)
            answers.add((status, body))
    return times, answers


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--url", help="an empty database to use instead of a fresh SQLite file")
    args = parser.parse_args()
    times, answers = run(args.rounds, args.url)
    print(f"{'request':28} {'median ms':>10} {'p95 ms':>8}")
    for label, values in times.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{label:28} {statistics.median(values):10.2f} {p95:8.2f}")
    print(f"distinct answers (status and body): {len(answers)}, status {sorted({s for s, _ in answers})}")


if __name__ == "__main__":
    main_()
