"""``pshell development.ini``: a shell with a session, the models and a transaction.

``[pshell]`` in the ini files names ``setup`` (what the shell holds) and
``default_shell = myapp``, the runner below: Pyramid's own runner prints the
docstring of every variable, pages of them; this one prints what is ready in
a few lines.
"""

from __future__ import annotations

import code
from typing import Any

import transaction
from sqlalchemy import func, select

from myapp import models
from myapp.data import DbSession, safe_url

BANNER = """\
myapp shell, database {url}
  dbsession   a session in the open transaction tm, e.g.
              dbsession.scalars(select(Package).limit(3)).all()
  models      every model, each also by name: Package, Release, User, ...
  select, func, request, registry, app
Nothing is written until tm.commit(); tm.abort() drops your changes. Ctrl-D leaves."""


def setup(env: dict[str, Any]) -> None:
    request = env["request"]
    # Not the explicit manager of a web request: after tm.commit() or tm.abort()
    # the next statement begins a new transaction instead of failing.
    request.tm = transaction.TransactionManager()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    env["models"] = models
    env["select"] = select
    env["func"] = func
    for name in models.__all__:
        env[name] = getattr(models, name)


def python_shell(env: dict[str, Any], help: str) -> None:
    """The ``myapp`` pshell runner (an entry point in setup.py): the plain
    Python shell with ``BANNER`` instead of Pyramid's ``help``."""
    url = safe_url(DbSession.url) if DbSession.url is not None else "(none)"
    code.interact(banner=BANNER.format(url=url), local=env, exitmsg="")
