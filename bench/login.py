"""How long a sign-in takes, for a known user with a wrong password, an
unknown user, and a right password: the first two should cost the same (one
argon2id verification each), so timing does not tell which names exist.

    .venv/bin/python bench/login.py [--rounds 30]

In process (WebTest) on a fresh SQLite file; every attempt comes from its own
client address and known users are spread out, so the throttle never answers
instead of the password check.
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
from myapp.accounts import services  # noqa: E402
from myapp.data import DbSession  # noqa: E402
from myapp.data.migrations import upgrade_to_head  # noqa: E402
from myapp.scripts import managed_session  # noqa: E402

PASSWORD = "violet kettle harbour 93"


def attempt(app: webtest.TestApp, username: str, password: str, address: str) -> float:
    page = app.get("/account/login", extra_environ={"REMOTE_ADDR": address})
    form = page.forms[[f.action for f in page.forms.values()].index("/account/login")]
    form["username"], form["password"] = username, password
    started = time.perf_counter()
    form.submit(status="*", expect_errors=True, extra_environ={"REMOTE_ADDR": address})
    elapsed = time.perf_counter() - started
    app.reset()
    return elapsed * 1000


def run(rounds: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="myapp-login-bench-"))
    url = f"sqlite:///{folder / 'bench.sqlite'}"
    settings = {
        "sqlalchemy.url": url,
        "myapp.secret": "bench-" + "x" * 40,
        "myapp.files_dir": str(folder),
        "myapp.mail_folder": str(folder / "mail"),
        "myapp.secure_cookies": "false",
    }
    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "localhost"})
    upgrade_to_head(DbSession.engine)  # type: ignore[arg-type]
    with managed_session() as db:
        for i in range(rounds):
            services.create_user(db, username=f"user{i}", email=f"user{i}@example.org", password=PASSWORD)
    times: dict[str, list[float]] = {"known user, wrong password": [], "unknown user": [], "right password": []}
    for i in range(rounds):
        times["known user, wrong password"].append(attempt(app, f"user{i}", "not it at all", f"10.0.{i}.1"))
        times["unknown user"].append(attempt(app, f"nobody{i}", "not it at all", f"10.0.{i}.2"))
        times["right password"].append(attempt(app, f"user{i}", PASSWORD, f"10.0.{i}.3"))
    return times


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"{'attempt':28} {'median ms':>10} {'p95 ms':>8}")
    for label, values in run(args.rounds).items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{label:28} {statistics.median(values):10.1f} {p95:8.1f}")


if __name__ == "__main__":
    main_()
