"""People's pages about the proxy: the owner's switch "also serve upstream
versions" for a hosted name, and the operators' page ``/admin/upstream``
(state, errors, cooldown exemptions, early releases). Both change only after
the password is confirmed again (sudo, ``confirm=True``) and write the journal."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from sqlalchemy.orm import Session

from myapp.data.meta import utcnow
from myapp.packaging.context import ProjectContext, project_or_404
from myapp.packaging.models import JournalEntry
from myapp.packaging.names import is_valid_name
from myapp.security import FORM_METHODS, Permission
from myapp.upstream import services
from myapp.upstream.fetch import PROXY_KEY, Proxy
from myapp.upstream.models import UpstreamPolicy, UpstreamRelease

MAX_REASON = 1000


def _journal(db: Session, name: str, action: str, request: Request, version: str | None = None) -> None:
    """An entry by name: a proxied name has no project row for ``journal.add_entry``."""
    user = request.identity.user if request.identity else None
    db.add(JournalEntry(package_name=name, version=version, action=action, username=user.username if user else None))


def policy_row(db: Session, name: str) -> UpstreamPolicy:
    row = services.find_policy(db, name)
    if row is None:
        row = UpstreamPolicy(name=name, also_serve_upstream=False, cooldown_exempt=False)
        db.add(row)
    return row


def manage(context: ProjectContext, request: Request) -> Any:
    """A hosted project's owner: list the upstream's files of the same name beside ours?"""
    package = project_or_404(request)
    db = request.dbsession
    row = services.find_policy(db, package.name)
    if request.method == "POST":
        serve = request.POST.get("serve") == "on"
        if serve != bool(row and row.also_serve_upstream):
            row = policy_row(db, package.name)
            row.also_serve_upstream = serve
            row.updated_by = request.identity.user.username
            row.updated_at = utcnow()
            _journal(db, package.name, f"also serve upstream versions: {'on' if serve else 'off'}", request)
        return HTTPSeeOther(location=request.route_path("upstream.manage", name=package.name))
    proxy: Proxy = request.registry[PROXY_KEY]
    return {
        "package": package,
        "serving": bool(row and row.also_serve_upstream),
        "upstream_url": proxy.settings.project_url(package.name),
    }


def admin(request: Request) -> Any:
    db = request.dbsession
    proxy: Proxy = request.registry[PROXY_KEY]
    error = None
    if request.method == "POST":
        error = _admin_action(request, db)
        if error is None:
            return HTTPSeeOther(location=request.route_path("upstream.admin"))
        request.response.status = 400
    return {
        "error": error,
        "settings": proxy.settings,
        "report": health_report(request),
        "errors": services.recent_errors(db),
        "exemptions": services.exemptions(db),
        "releases": services.releases(db),
    }


def _admin_action(request: Request, db: Session) -> str | None:
    form = request.POST
    action = form.get("action", "")
    raw = form.get("name", "").strip()
    if not is_valid_name(raw):
        return "Give a project name."
    name = canonicalize_name(raw)
    if action in ("exempt", "unexempt"):
        row = policy_row(db, name)
        row.cooldown_exempt = action == "exempt"
        row.updated_by = request.identity.user.username
        row.updated_at = utcnow()
        _journal(db, name, f"cooldown exemption: {'on' if row.cooldown_exempt else 'off'}", request)
        return None
    if action == "release":
        reason = form.get("reason", "").strip()[:MAX_REASON]
        try:
            version = str(Version(form.get("version", "").strip()))
        except InvalidVersion:
            return "Give the version to release, as the upstream spells it."
        if not reason:
            return "Say why this version is released before its time (it goes in the journal)."
        if services.find_release(db, name, version) is not None:
            return f"{name} {version} is released already."
        db.add(UpstreamRelease(name=name, version=version, released_by=request.identity.user.username, reason=reason))
        _journal(db, name, f"released from the cooldown: {reason}", request, version=version)
        return None
    return "That is not something this page can do."


def add_views(config: Configurator) -> None:
    """Registered here, not by the scan: the routes exist only with an upstream."""
    config.add_route("upstream.admin", "/admin/upstream")
    config.add_route("upstream.manage", "/manage/project/{name}/upstream", factory=ProjectContext)
    common = {"require_methods": FORM_METHODS, "confirm": True}
    config.add_view(
        manage,
        route_name="upstream.manage",
        renderer="myapp:templates/upstream/manage.jinja2",
        permission=Permission.MANAGE,
        **common,
    )
    config.add_view(
        admin,
        route_name="upstream.admin",
        renderer="myapp:templates/upstream/admin.jinja2",
        permission=Permission.ADMIN,
        **common,
    )


REPORT_SECONDS = 10.0  # /health is asked every few seconds; its counts walk the tables


def health_report(request: Request) -> dict[str, Any]:
    """For /health and the admin page: is the upstream answering, what is
    cached, how well. The database's part is worked out at most every
    ``REPORT_SECONDS`` per process (it counts every proxied project and file)."""
    proxy: Proxy = request.registry[PROXY_KEY]
    kept = proxy.stats.report
    if kept is None or time.monotonic() - kept[0] > REPORT_SECONDS:
        kept = (time.monotonic(), _database_report(request.dbsession, proxy))
        proxy.stats.report = kept
    return {
        "url": proxy.settings.url,
        **kept[1],
        "cache_budget_bytes": proxy.settings.cache_bytes,
        "this_process": proxy.stats.as_dict(),
        "ttl_seconds": int(proxy.settings.ttl / timedelta(seconds=1)),
    }


def _database_report(db: Session, proxy: Proxy) -> dict[str, Any]:
    last = services.last_attempt(db)
    reachable = None if last is None else last[1]
    return {
        "reachable": "unknown" if reachable is None else ("ok" if reachable else "failing"),
        "last_checked": last[0].isoformat() if last else None,
        **services.totals(db, proxy.settings, utcnow()),
    }
