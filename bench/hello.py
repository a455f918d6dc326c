"""The baseline for bench.py: bare Pyramid, one view, no database, no templates, no tweens of its own."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

from myapp.logs import summarize_queue_warnings


def hello(request: Request) -> Response:
    return Response("Hello World!")


def main(global_config: dict[str, Any] | None = None, **settings: Any) -> Router:
    """The WSGI application; the bench's ini loads it with ``use = call:hello:main``."""
    summarize_queue_warnings()  # as myapp's main() does: the same server and logging, only the app differs
    with Configurator(settings=settings) as config:
        config.add_route("hello", "/")
        config.add_view(hello, route_name="hello")
        return config.make_wsgi_app()
