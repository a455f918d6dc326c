"""The site's shell: layout, page cache, health check, error pages, static
files. Domain packages build on it; it imports none of them."""

from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED

from myapp.web.filters import FILTERS


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    settings.setdefault(
        "jinja2.filters", "\n".join(f"{name} = myapp.web.filters.{func.__name__}" for name, func in FILTERS.items())
    )
    config.include("pyramid_jinja2")
    config.include("myapp.web.guard")
    config.include("myapp.web.cache")
    config.include("myapp.web.fragments")
    config.include("myapp.web.forms")  # multipart forms (uploads) parsed by `multipart`
    config.include("myapp.web.requests")  # request methods baked into one class
    config.add_jinja2_search_path("myapp:templates", name=".jinja2")
    # The login page needs its stylesheet even on a private index.
    config.add_static_view("static", "myapp:static", cache_max_age=3600, permission=NO_PERMISSION_REQUIRED)
    config.add_route("health", "/health")
    config.add_route("robots", "/robots.txt")
    config.add_route("favicon", "/favicon.ico")
