"""Project names and version ordering, as PyPI does them."""

from __future__ import annotations

import functools
import re

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# PEP 508 / core metadata: what a project name may look like at all. ASCII only: without
# re.ASCII, IGNORECASE lets the Kelvin sign (U+212A) match "k".
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)


# What a distribution file's name may contain; anything else cannot exist.
_VALID_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}", re.ASCII)


def is_valid_name(name: str) -> bool:
    return _VALID_NAME.fullmatch(name) is not None and len(name) <= 200


def is_valid_filename(filename: str) -> bool:
    return _VALID_FILENAME.fullmatch(filename) is not None


def normalize(name: str) -> str:
    """PEP 503 normalized form: lower case, runs of ``-_.`` become one ``-``."""
    return canonicalize_name(name)


def _num(n: int) -> str:
    # Length-prefixed decimal: sorts as text exactly as the numbers do.
    digits = str(n)
    return f"{len(digits):02d}{digits}"


# Both cached: an import meets the same few thousand versions ("1.0.0") again and again.
@functools.lru_cache(maxsize=4096)
def is_prerelease(version: str) -> bool:
    """True for a/b/rc/dev versions; a version that is not PEP 440 counts as one."""
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return True


@functools.lru_cache(maxsize=4096)
def version_sort_key(version: str) -> str:
    """A string that sorts (byte-wise) in PEP 440 order.

    Stored in ``releases.sort_key`` so the database can answer "latest" and
    order release history with a plain ``ORDER BY``. Each part is encoded so
    that no encoding is a prefix of another, which makes text order equal
    tuple order. Versions that are not PEP 440 sort before every valid one.
    Local versions (``+abc``), which an upload may only bring where
    ``myapp.allow_local_versions`` is set (``validation.py``), sort after their
    public version but are otherwise only roughly ordered.
    """
    try:
        v = Version(version)
    except InvalidVersion:
        return "0" + version
    release = list(v.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    parts = ["1", _num(v.epoch), "".join("." + _num(n) for n in release), "!"]
    # Ordering within one release: dev < pre(a<b<rc) < final < post.
    if v.pre is None and v.post is None and v.dev is not None:
        parts.append("0")  # 1.0.dev1 sorts before 1.0a1
    elif v.pre is None:
        parts.append("2")
    else:
        letter, n = v.pre
        parts.append("1" + {"a": "a", "b": "b", "rc": "c"}[letter] + _num(n))
    parts.append("0" if v.post is None else "1" + _num(v.post))
    parts.append("2" if v.dev is None else "1" + _num(v.dev))
    parts.append("0" if v.local is None else "1" + v.local)
    return "".join(parts)
