"""Sudo mode: sensitive actions ask for the password (and a second-factor
code) again when the last confirmation is older than a few minutes.

A view opts in with ``@view_config(..., confirm=True)`` (every request to
it), or ``confirm=predicate`` (only the requests ``predicate(request)``
picks, e.g. the deleting POSTs of a page that also yanks). Unconfirmed, a
GET or POST is answered with a 303 to ``/account/confirm?next=...`` and is
not carried out; after confirming, the user comes back to the page (for a
POST: the page the form was on) and submits again. A form cannot be replayed
for them: its body would have to be kept, and it was posted unconfirmed.

The time of the last confirmation lives in the signed session cookie, next
to the signed-in user's id, so it dies with the session (sign-out, a password
change elsewhere). Signing in counts as a confirmation. A request that is not
made by a signed-in session (HTTP basic auth, an API token) is never
confirmed: a stolen token cannot pass for someone who typed the password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from myapp.accounts.models import User
from myapp.accounts.policy import SESSION_KEY, safe_next

CONFIRMED_KEY = "confirmed"  # session: {"uid": user id, "at": epoch seconds} of the last confirmation
SECONDS_SETTING = "myapp.sudo_seconds"
DEFAULT_SECONDS = 600


def _now() -> float:
    return time.time()


def signed_in_session(request: Request) -> bool:
    """The request's user is the one its signed-in session names (not basic auth)."""
    identity = request.identity
    auth = request.session.get(SESSION_KEY)
    return (
        identity is not None
        and identity.token is None
        and isinstance(auth, dict)
        and auth.get("uid") == identity.user.id
    )


def mark_confirmed(request: Request, user: User) -> None:
    """The user has just given their password (and code): call after ``remember``."""
    request.session[CONFIRMED_KEY] = {"uid": user.id, "at": _now()}


def is_confirmed(request: Request) -> bool:
    if not signed_in_session(request):
        return False
    mark = request.session.get(CONFIRMED_KEY)
    if not isinstance(mark, dict) or mark.get("uid") != request.identity.user.id:
        return False
    at = mark.get("at")
    if not isinstance(at, (int, float)):
        return False
    return 0 <= _now() - at < request.registry.settings[SECONDS_SETTING]


def _return_to(request: Request, fallback: str) -> str:
    """Where to come back after confirming: this page for a GET; for a POST,
    the page its form was on (the Referer, if it is on this site), else ``fallback``."""
    if request.method in ("GET", "HEAD"):
        return request.path_qs
    referer = urlsplit(request.referer or "")
    if referer.netloc == request.host:
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), fallback)
    return fallback


def confirm(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver for ``confirm=True`` or ``confirm=predicate``."""
    option = info.options.get("confirm")
    if not option:
        return view
    needs: Callable[[Request], bool] = option if callable(option) else lambda request: True
    # A POST-only view (a form on another page) sends the user back to their account.
    methods = info.options.get("require_methods") or ("GET",)
    post_only = "GET" not in methods

    def wrapped(context: Any, request: Request) -> Any:
        if needs(request) and not is_confirmed(request):
            fallback = request.route_path("account") if post_only else request.path
            target = _return_to(request, fallback)
            return HTTPSeeOther(location=request.route_path("account.confirm", _query={"next": target}))
        return view(context, request)

    return wrapped


confirm.options = ("confirm",)  # type: ignore[attr-defined]


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    settings[SECONDS_SETTING] = float(settings.get(SECONDS_SETTING, DEFAULT_SECONDS))
    config.add_route("account.confirm", "/account/confirm")
    config.add_view_deriver(confirm)
