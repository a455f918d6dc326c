"""``pshell development.ini``: a shell with a session, the models and a transaction.

>>> dbsession.scalars(select(Package).limit(3)).all()
>>> tm.commit()   # writes stay pending until you commit
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from myapp import models


def setup(env: dict[str, Any]) -> None:
    request = env["request"]
    # A transaction that pshell keeps open; commit with tm.commit(), undo with tm.abort().
    request.tm.begin()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    env["models"] = models
    env["select"] = select
    env["func"] = func
    for name in models.__all__:
        env[name] = getattr(models, name)
