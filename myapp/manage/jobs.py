"""The job queue as administrators see it: what waits, what failed and why,
and a button to try a failed job again."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from myapp.data.jobs import JobState
from myapp.data.jobs.queue import counts_by_state, retry_failed, unfinished_and_failed
from myapp.security import Permission


@view_config(route_name="admin.jobs", renderer="myapp:templates/manage/jobs.jinja2", permission=Permission.ADMIN)
def jobs(request: Request) -> dict[str, Any]:
    db = request.dbsession
    counts = counts_by_state(db)
    return {"jobs": unfinished_and_failed(db), "counts": {state: counts.get(state, 0) for state in JobState}}


@view_config(route_name="admin.job_retry", permission=Permission.ADMIN, require_methods=["POST"])
def retry(request: Request) -> HTTPSeeOther:
    try:
        job_id = int(request.matchdict["job_id"])
    except ValueError:
        raise HTTPNotFound("No such job.") from None
    if not retry_failed(request.dbsession, job_id):
        raise HTTPNotFound("No failed job with that number (it may have been retried already).")
    request.session.flash(f"Job {job_id} will run again shortly.", "jobs")
    return HTTPSeeOther(location=request.route_path("admin.jobs"))
