"""Reading an upstream simple page (PEP 691 JSON or PEP 503 HTML) into
validated ``ParsedFile`` values. Nothing here trusts the page:

* the project's name must be what we asked for (PEP 503 normalized);
* a filename must parse as a wheel or an sdist (``packaging.utils``) of
  *that* project, with a valid version (other files, legacy versions and
  eggs are left out: pip and uv install wheels and sdists);
* a file needs a sha256 (we verify the bytes against it); other hashes alone
  are not enough;
* URLs are resolved against the page and must be http(s) on an allowed file
  host (``javascript:``, ``file:``, ``data:`` and other hosts are left out);
* sizes are whole non-negative numbers, times ISO 8601, texts bounded.

A file that fails a check is left out and counted in ``ParsedPage.rejected``
(with the first reasons, for the operator); a page that fails as a whole
(not JSON, wrong API version, the wrong project) raises ``PageError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# PEP 691: JSON preferred, HTML accepted (the old text/html too).
ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"
MAX_FILENAME = 255
MAX_URL = 2048
MAX_REQUIRES_PYTHON = 255
MAX_REASON = 1000
MAX_REASONS_KEPT = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PageError(ValueError):
    """The page as a whole is not a simple page for the project asked for."""


@dataclass(frozen=True)
class ParsedFile:
    filename: str
    version: str
    packagetype: str  # bdist_wheel or sdist
    url: str
    sha256: str
    size: int | None = None
    requires_python: str | None = None
    upload_time: datetime | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    core_metadata: bool = False
    core_metadata_sha256: str | None = None


@dataclass
class ParsedPage:
    name: str  # normalized
    files: list[ParsedFile] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS_KEPT:
            self.reasons.append(reason[:300])


@dataclass(frozen=True)
class Candidate:
    """One file entry as the page gave it, before the checks."""

    href: Any
    hashes: Any
    requires_python: Any = None
    yanked: Any = False
    core_metadata: Any = False
    size: Any = None
    upload_time: Any = None
    filename: Any = None


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == JSON_TYPE


def parse_page(
    body: bytes, content_type: str | None, page_url: str, name: str, file_hosts: frozenset[str]
) -> ParsedPage:
    """The page's files that pass every check, for normalized ``name``."""
    if is_json(content_type):
        candidates = _json_candidates(body, name)
    else:
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind not in ("text/html", HTML_TYPE, ""):
            raise PageError(f"not a simple page: Content-Type {kind[:100]!r}")
        candidates = _html_candidates(body)
    page = ParsedPage(name)
    seen: set[str] = set()
    for candidate in candidates:
        try:
            parsed = _check(candidate, page_url, name, file_hosts)
        except ValueError as exc:
            page.reject(str(exc))
            continue
        if parsed.filename in seen:
            page.reject(f"{parsed.filename}: listed twice")
            continue
        seen.add(parsed.filename)
        page.files.append(parsed)
    return page


# -- PEP 691 JSON -------------------------------------------------------------------------


def _json_candidates(body: bytes, name: str) -> list[Candidate]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PageError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PageError("not a JSON object")
    meta = doc.get("meta")
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise PageError(f"unsupported api-version {str(version)[:20]!r}")
    given = doc.get("name")
    if not isinstance(given, str) or canonicalize_name(given) != name:
        raise PageError(f"the page is for {str(given)[:100]!r}, not {name!r}")
    files = doc.get("files")
    if not isinstance(files, list):
        raise PageError("no files list")
    out = []
    for entry in files:
        if not isinstance(entry, dict):
            continue
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))
        out.append(
            Candidate(
                href=entry.get("url"),
                hashes=entry.get("hashes") if isinstance(entry.get("hashes"), dict) else {},
                requires_python=entry.get("requires-python"),
                yanked=entry.get("yanked", False),
                core_metadata=metadata,
                size=entry.get("size"),
                upload_time=entry.get("upload-time"),
                filename=entry.get("filename"),
            )
        )
    return out


# -- PEP 503 HTML -------------------------------------------------------------------------


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.api_version: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "meta":
            values = dict(attrs)
            if values.get("name") == "pypi:repository-version":
                self.api_version = values.get("content") or ""


def _html_candidates(body: bytes) -> list[Candidate]:
    parser = _Anchors()
    try:
        parser.feed(body.decode("utf-8", errors="replace"))
        parser.close()
    except AssertionError as exc:  # html.parser's own complaint about broken markup
        raise PageError(f"unreadable HTML: {exc}") from None
    if parser.api_version is not None and parser.api_version.split(".")[0] != "1":
        raise PageError(f"unsupported repository-version {parser.api_version[:20]!r}")
    out = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        _, fragment = urldefrag(href)
        algorithm, _, digest = fragment.partition("=")
        metadata: Any = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        out.append(
            Candidate(
                href=href,
                hashes={algorithm: digest} if algorithm else {},
                requires_python=attrs.get("data-requires-python"),
                yanked=(attrs["data-yanked"] or True) if "data-yanked" in attrs else False,
                core_metadata=_html_metadata(metadata)
                if "data-core-metadata" in attrs or "data-dist-info-metadata" in attrs
                else False,
            )
        )
    return out


def _html_metadata(value: str | None) -> Any:
    """``data-core-metadata="true"`` or ``"sha256=..."`` as PEP 691 writes it."""
    if value is None or value.strip().lower() == "true" or value == "":
        return True
    algorithm, _, digest = value.partition("=")
    return {algorithm.strip().lower(): digest.strip()}


# -- the checks ---------------------------------------------------------------------------


def _check(c: Candidate, page_url: str, name: str, file_hosts: frozenset[str]) -> ParsedFile:
    if not isinstance(c.href, str) or not c.href or len(c.href) > MAX_URL:
        raise ValueError("a file without a usable URL")
    url, _ = urldefrag(urljoin(page_url, c.href.strip()))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{c.href[:100]!r}: not an http(s) URL")
    if parts.hostname.lower() not in file_hosts:
        raise ValueError(f"{c.href[:100]!r}: not on an allowed file host")
    filename = unquote(parts.path.rsplit("/", 1)[-1])
    if c.filename is not None and c.filename != filename:
        raise ValueError(f"{str(c.filename)[:100]!r}: not the file its URL names")
    version, packagetype = _parse_filename(filename, name)
    sha256 = c.hashes.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValueError(f"{filename}: no sha256")
    yanked, reason = _yank(c.yanked)
    metadata, metadata_sha256 = _metadata(c.core_metadata)
    return ParsedFile(
        filename=filename,
        version=version,
        packagetype=packagetype,
        url=url,
        sha256=sha256.lower(),
        size=_size(c.size, filename),
        requires_python=_requires_python(c.requires_python, filename),
        upload_time=_time(c.upload_time, filename),
        yanked=yanked,
        yanked_reason=reason,
        core_metadata=metadata and packagetype == "bdist_wheel",
        core_metadata_sha256=metadata_sha256 if packagetype == "bdist_wheel" else None,
    )


def _parse_filename(filename: str, name: str) -> tuple[str, str]:
    if len(filename) > MAX_FILENAME or not filename.isascii() or "/" in filename or "\\" in filename:
        raise ValueError(f"{filename[:100]!r}: not a valid file name")
    try:
        if filename.endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(filename)
            kind = "bdist_wheel"
        else:
            project, version = parse_sdist_filename(filename)
            kind = "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise ValueError(f"{filename[:100]!r}: {exc}") from None
    if project != name:
        raise ValueError(f"{filename}: a file of {project!r}, not {name!r}")
    text = str(version)
    if len(text) > 100:
        raise ValueError(f"{filename[:100]!r}: version too long")
    return text, kind


def _size(value: Any, filename: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**50:
        raise ValueError(f"{filename}: size {str(value)[:30]!r} is not a byte count")
    return value


def _requires_python(value: Any, filename: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_REQUIRES_PYTHON:
        raise ValueError(f"{filename}: unusable requires-python")
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        # pip and uv skip such a specifier too; keeping the file with no
        # constraint would be wrong, so it goes.
        raise ValueError(f"{filename}: invalid requires-python {value[:60]!r}") from None
    return value


def _time(value: Any, filename: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{filename}: unusable upload-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(f"{filename}: upload-time {value!r} is not ISO 8601") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _yank(value: Any) -> tuple[bool, str | None]:
    if value is True:
        return True, None
    if isinstance(value, str) and value:
        return True, value[:MAX_REASON]
    return False, None


def _metadata(value: Any) -> tuple[bool, str | None]:
    if value is True:
        return True, None
    if isinstance(value, dict):
        digest = value.get("sha256")
        if isinstance(digest, str) and _SHA256.fullmatch(digest.lower()):
            return True, digest.lower()
        return bool(value), None
    return False, None
