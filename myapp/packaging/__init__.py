"""The package index: projects, releases, files."""

import functools
from collections.abc import Callable

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.registry import Registry

from myapp.accounts.policy import BASIC_AUTH_ROUTES
from myapp.data import ReadProbe
from myapp.packaging import downloads, services, simple_cache
from myapp.packaging.context import FileContext, ProjectContext
from myapp.packaging.storage import cache_dir, make_store
from myapp.packaging.storage.accel import ACCEL_SETTING
from myapp.packaging.storage.audit import (
    ORPHAN_SWEEP_EVERY_SECONDS,
    ORPHAN_SWEEP_KIND,
    REFERENCES,
    ReleaseFileReferences,
    named_by_rows,
    sweep_incoming,
    sweep_orphans,
)
from myapp.packaging.upload import DEFAULT_MAX_BYTES
from myapp.web.cache import PAGE_CACHE_VERSION
from myapp.web.views import HEALTH_CHECKS

# What pip, uv and scripts call: on a private index they are asked for basic auth.
SWEEP_KIND = "uploads.sweep"
SWEEP_EVERY_SECONDS = 15 * 60
TOOL_ROUTES = ("file", "packages.file", "simple.index", "simple.project", "json.project", "json.release", "legacy")


def includeme(config: Configurator) -> None:
    config.add_route("home", "/")
    config.add_route("projects", "/projects/")
    config.add_route("search", "/search")
    config.add_route("project", "/project/{name}/", factory=ProjectContext)
    # Before "release": a version cannot be called "releases" (not PEP 440).
    config.add_route("project_releases", "/project/{name}/releases/", factory=ProjectContext)
    config.add_route("release", "/project/{name}/{version}/", factory=ProjectContext)
    config.add_route("file", "/files/{filename}", factory=FileContext)
    # The same files in PyPI's layout (/packages/<sha256 in three parts>/<filename>), which
    # mirrors such as bandersnatch require; the proxy serves its own files here too (a hook).
    config.add_route("packages.file", "/packages/{h1}/{h2}/{rest}/{filename}", factory=FileContext)
    config.add_route("user", "/user/{username}/")
    config.add_route("simple.index", "/simple/")
    config.add_route("simple.project", "/simple/{name}/", factory=ProjectContext)
    config.add_route("json.project", "/pypi/{name}/json", factory=ProjectContext)
    config.add_route("json.release", "/pypi/{name}/{version}/json", factory=ProjectContext)
    config.add_route("legacy", "/legacy/")
    settings = config.get_settings()
    # /health fails when the files folder could not take one more upload of the largest size.
    settings.setdefault("myapp.min_free_bytes", settings.get("myapp.max_upload_bytes", DEFAULT_MAX_BYTES))
    # This node's own folder (the saved /simple/ listing, temporary files): see storage/__init__.py.
    settings["myapp.cache_dir"] = str(cache_dir(settings))
    store = config.registry["file_store"] = make_store(settings)
    config.registry.setdefault(REFERENCES, []).append(ReleaseFileReferences())
    store.in_use = functools.partial(named_by_rows, config.registry)
    config.registry.setdefault(HEALTH_CHECKS, {})["files"] = lambda: store.health(settings)
    # What a killed process left mid-upload: swept now (one directory listing)
    # and every quarter of an hour by the job queue, for servers that run for weeks;
    # objects no row names (an abort or a deletion that could not reach the store), daily.
    store.sweep()
    config.add_periodic_job(SWEEP_KIND, sweep_incoming, seconds=SWEEP_EVERY_SECONDS)
    config.add_periodic_job(ORPHAN_SWEEP_KIND, sweep_orphans, seconds=ORPHAN_SWEEP_EVERY_SECONDS)
    config.registry.setdefault(BASIC_AUTH_ROUTES, set()).update(TOOL_ROUTES)
    config.registry[PAGE_CACHE_VERSION] = _index_version(config.registry)
    simple_cache.install(config.registry, settings)
    downloads.install(config.registry, settings)
    if settings.get(ACCEL_SETTING, "") not in ("", "nginx", "apache"):
        raise ConfigurationError(f"{ACCEL_SETTING} must be nginx, apache or empty, not {settings[ACCEL_SETTING]!r}")


def _index_version(registry: Registry) -> Callable[[], int]:
    """For the page cache: every page may show any project, so the index's
    highest serial (one indexed read, made on a raw connection)."""
    probe = ReadProbe(services.INDEX_SERIAL_SQL)

    def version() -> int:
        return probe(registry["dbsession_factory"].kw["bind"]) or 0

    return version
