"""An upload's core metadata, read from the file itself and checked.

The file is the truth: what the index stores and serves about a release comes
from the wheel's METADATA or the sdist's PKG-INFO, never from the upload
form, whose fields only have to agree with it. The ``packaging`` library
parses and validates the metadata for every Metadata-Version it knows
(``Metadata.from_email(..., validate=True)``), so a new version of the
standard needs a new ``packaging``, not a change here. On top of what
``packaging`` checks, an index has rules of its own, as PyPI does: names are
ASCII (PEP 508), classifiers are known trove classifiers, local versions are
refused unless the site hosts local builds, and every value fits its column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.metadata import InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pyramid.settings import asbool
from trove_classifiers import classifiers as known_classifiers
from trove_classifiers import deprecated_classifiers

from myapp.packaging import archives
from myapp.packaging.models import Package
from myapp.packaging.names import is_valid_name, normalize
from myapp.web.storable import is_storable

# The project's fields an upload sets: core metadata attributes that are
# also ``Package`` columns of the same name.
PACKAGE_FIELDS = (
    "summary",
    "description",
    "description_content_type",
    "home_page",
    "license",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "keywords",
    "requires_python",
)
# Core metadata kept per release (``Release`` columns of these names), as
# the file writes them (``parse_email``'s raw values; ``packaging`` has
# checked them), for the JSON API and the project page.
RELEASE_LISTS = ("requires_dist", "provides_extra", "license_files", "dynamic", "platform")
MAX_URL_LABEL, MAX_URL = 100, 1000
LOCAL_VERSIONS_SETTING = "myapp.allow_local_versions"


class InvalidUpload(ValueError):
    """The uploaded file or its metadata is refused; the message says why."""


@dataclass(frozen=True)
class ValidMetadata:
    """Checked metadata of one uploaded file, ready to be stored."""

    raw: bytes  # METADATA or PKG-INFO as in the file (a wheel's is served beside it, PEP 658)
    metadata: Metadata
    name: str  # as the file spells it: the display name of a new project
    version: Version
    fields: dict[str, str | None] = field(default_factory=dict)  # Package column -> value
    project_urls: dict[str, str] = field(default_factory=dict)
    classifiers: list[str] = field(default_factory=list)
    release_fields: dict[str, Any] = field(default_factory=dict)  # Release column -> value


def read_upload(
    path: Path, filetype: str, name: str, version: Version, form: Any, settings: dict[str, Any]
) -> ValidMetadata:
    """Read, parse and check the uploaded file's metadata against the index's
    rules and the upload form (its ``name``, ``version`` and other fields)."""
    limits = archives.Limits.from_settings(settings)
    try:
        if filetype == "bdist_wheel":
            raw = archives.wheel_metadata(path, limits)
        else:
            raw = archives.sdist_metadata(path, name, version, limits)
    except archives.ArchiveRefused as exc:
        raise InvalidUpload(str(exc)) from None
    metadata, written = parse(raw)
    _check_identity(metadata, name, version, filetype)
    if metadata.version.local is not None and not asbool(settings.get(LOCAL_VERSIONS_SETTING, False)):
        raise InvalidUpload(f"Local versions like {str(metadata.version)[:50]!r} are not allowed on this index.")
    valid = ValidMetadata(
        raw=raw,
        metadata=metadata,
        name=metadata.name,
        version=metadata.version,
        fields=_package_fields(metadata),
        project_urls=_project_urls(metadata),
        classifiers=check_classifiers(metadata.classifiers or []),
        release_fields=_release_fields(written, metadata),
    )
    _check_agrees_with_form(valid, form)
    return valid


def parse(raw: bytes) -> tuple[Metadata, RawMetadata]:
    """``packaging``'s parser and validator (its first complaint is the reason
    given), and the fields as the file writes them."""
    try:
        metadata = Metadata.from_email(raw, validate=True)
    except ExceptionGroup as group:
        raise InvalidUpload(f"Invalid distribution metadata: {_first(group)}.") from None
    except InvalidMetadata as exc:
        raise InvalidUpload(f"Invalid distribution metadata: {exc}.") from None
    written = parse_email(raw)[0]
    if not all(is_storable(text) for text in _texts(written)):
        raise InvalidUpload("Invalid distribution metadata: it holds a NUL or an invalid character.")
    return metadata, written


def _first(group: BaseExceptionGroup) -> str:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else str(first)


def _texts(fields: RawMetadata) -> list[str]:
    """Every piece of text in the metadata (lists and mappings flattened)."""
    out: list[str] = []
    for value in fields.values():
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            out.extend(text for pair in value.items() for text in pair)
        elif isinstance(value, list):
            out.extend(value)
    return out


def _check_identity(metadata: Metadata, name: str, version: Version, filetype: str) -> None:
    member = "METADATA" if filetype == "bdist_wheel" else "PKG-INFO"
    if not is_valid_name(metadata.name):  # packaging's check lets the Kelvin sign through as a "k"
        raise InvalidUpload(f"Invalid project name in {member}: names are ASCII letters, digits and ._- (PEP 508).")
    if normalize(metadata.name) != normalize(name) or metadata.version != version:
        raise InvalidUpload(f"The file's {member} names another project or version than the upload form.")


def _package_fields(metadata: Metadata) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for name in PACKAGE_FIELDS:
        value = getattr(metadata, name)
        if isinstance(value, list):
            value = ", ".join(value)  # Keywords: packaging splits them on commas
        text = str(value) if value else None
        limit = getattr(Package.__table__.c[name].type, "length", None)
        if text is not None and limit is not None and len(text) > limit:
            raise InvalidUpload(f"{name.replace('_', ' ').capitalize()} is too long: at most {limit} characters.")
        fields[name] = text
    return fields


def _release_fields(written: RawMetadata, metadata: Metadata) -> dict[str, Any]:
    """The release's own columns: lists as the file writes them (None when
    absent, as PyPI serves them), the SPDX expression as ``packaging``
    normalized it."""
    lists = {"platform": "platforms"}  # parse_email's key where it differs from the column
    fields: dict[str, Any] = {name: written.get(lists.get(name, name)) or None for name in RELEASE_LISTS}
    fields["license_expression"] = str(metadata.license_expression) if metadata.license_expression else None
    if metadata.download_url and len(metadata.download_url) > MAX_URL:
        raise InvalidUpload(f"Download-URL too long: at most {MAX_URL} characters.")
    fields["download_url"] = metadata.download_url or None
    return fields


def _project_urls(metadata: Metadata) -> dict[str, str]:
    urls = metadata.project_urls or {}
    for label, url in urls.items():
        if len(label) > MAX_URL_LABEL or len(url) > MAX_URL:
            raise InvalidUpload(f"Project-URL too long: labels are at most {MAX_URL_LABEL} characters.")
    return dict(urls)


def check_classifiers(names: list[str]) -> list[str]:
    """The classifiers, sorted, if every one is a current trove classifier."""
    for name in names:
        if name in deprecated_classifiers:
            instead = ", ".join(deprecated_classifiers[name]) or "no replacement"
            raise InvalidUpload(f"Classifier {name!r} has been deprecated, use: {instead}.")
        if name not in known_classifiers:
            raise InvalidUpload(f"Classifier {name[:100]!r} is not a valid classifier (see trove-classifiers).")
    return sorted(set(names))


_SPACES = re.compile(r"\s+")


def _same_text(a: str, b: str | None) -> bool:
    return _SPACES.sub(" ", a).strip() == _SPACES.sub(" ", b or "").strip()


def _same_specifier(a: str, b: str | None) -> bool:
    try:
        return SpecifierSet(a) == SpecifierSet(b or "")
    except InvalidSpecifier:
        return False


def _check_agrees_with_form(valid: ValidMetadata, form: Any) -> None:
    """The form may repeat the file's fields, but not contradict them.

    ``metadata_version`` is not compared: flit sends "2.3" whatever its file
    says, and the stored version comes from the file anyway.
    """
    checks = {"summary": _same_text, "requires_python": _same_specifier}
    for name, same in checks.items():
        given = form.get(name, "").strip()
        if given and not same(given, valid.fields[name]):
            raise InvalidUpload(f"The form's {name} does not match the file's metadata.")
