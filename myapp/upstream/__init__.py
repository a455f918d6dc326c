"""The pull-through proxy of a public index (``myapp.upstream``).

Above ``packaging`` in the layers: packaging never imports this package; its
simple, JSON and project views offer hooks (registry entries) that this
package's ``includeme`` fills when ``myapp.upstream`` is set. Unset, nothing
here is registered and the index is as before.

* ``settings``: the settings; ``client``: the careful HTTP client;
  ``parse``: upstream pages in, validated; ``store``: into the tables
  (``models``); ``fetch``: single-flight fetching, freshness, the job;
  ``policy``: the cooldown's one decision; ``pages``: our pages of proxied
  projects; ``views``: the owner's switch and the admin page; ``urls``:
  where proxied files live on this index (the files part serves them).
* The files part: ``files``: the download view (packaging's ``/packages/``
  route asks it for names not hosted here); ``filefetch``: a first download,
  fetched once, streamed, verified, stored; ``filecache``: its queries, claims and batched download times;
  ``eviction``: the byte budget and quarantine (a periodic job);
  ``filestore``: the few file-store operations it uses.
"""

from __future__ import annotations

from pyramid.config import Configurator

from myapp.accounts.policy import BASIC_AUTH_ROUTES
from myapp.packaging.context import MISSING_PROJECT_VIEWS
from myapp.packaging.simple import HOSTED_EXTRA, INDEX_LISTING, IndexListing
from myapp.packaging.storage.audit import REFERENCES
from myapp.upstream import files, metadata, pages, services, urls, views
from myapp.upstream.fetch import PROXY_KEY, REFRESH_KIND, Proxy, refresh_job
from myapp.upstream.filefetch import FileFetcher
from myapp.upstream.references import UpstreamFileReferences
from myapp.upstream.settings import REGISTRY_KEY, read_settings
from myapp.web.views import HEALTH_REPORTS


def includeme(config: Configurator) -> None:
    upstream = read_settings(config.get_settings())
    config.registry[REGISTRY_KEY] = upstream
    if upstream is None:
        return
    config.registry[PROXY_KEY] = Proxy(upstream)
    # Cached proxied files share the store: claimed, so that no orphan sweep removes them.
    config.registry.setdefault(REFERENCES, []).append(UpstreamFileReferences())
    # PEP 658 metadata first: its paths also match the download route after it.
    config.add_route(metadata.ROUTE, metadata.PATTERN)
    config.add_view(metadata.metadata_view, route_name=metadata.ROUTE, require_methods=["GET", "HEAD"])
    # The files part's download view answers here (see urls.py for the layout).
    config.add_route(urls.ROUTE, urls.PATTERN)
    # Tool routes: pip and uv send basic auth to them on a private index.
    config.registry.setdefault(BASIC_AUTH_ROUTES, set()).update({metadata.ROUTE, urls.ROUTE})
    views.add_views(config)
    config.registry.setdefault(MISSING_PROJECT_VIEWS, {}).update(
        {
            "simple.project": pages.simple_view,
            "json.project": pages.json_view,
            "json.release": pages.json_view,
            "project": pages.project_view,
            "release": pages.release_view,
        }
    )
    config.registry[HOSTED_EXTRA] = pages.hosted_extra
    config.registry[INDEX_LISTING] = IndexListing(
        services.LISTING_HTML, services.LISTING_JSON, lambda request: services.listing_version(request.dbsession)
    )
    config.registry.setdefault(HEALTH_REPORTS, {})["upstream"] = views.health_report
    config.add_job_handler(REFRESH_KIND, refresh_job)
    # The files part: downloads at /packages/... (packaging's route asks files.download).
    downloads = files.downloads_batch(config.registry, config.get_settings())  # written at exit too
    files.add_files(config, FileFetcher(upstream, config.registry[PROXY_KEY].client, downloads))
