"""A release's dependencies (its files' Requires-Dist) as the project page
lists them: grouped by the extra that asks for them, each linked to its
project when this index hosts it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from sqlalchemy import select
from sqlalchemy.orm import Session

from myapp.packaging.models import Package
from myapp.packaging.names import normalize

# A marker that only names an extra (``extra == "socks"``): the dependency goes
# under that extra. Any other marker is shown as it is written.
_ONLY_EXTRA = re.compile(r"""^extra\s*==\s*["']([^"']+)["']$""")


@dataclass(frozen=True)
class Dependency:
    name: str  # as written
    project: str  # normalized: the project page's name, if hosted here
    specifier: str
    marker: str | None  # the condition, less a plain extra (that is its group)


def grouped(requires_dist: list[str] | None) -> list[tuple[str | None, list[Dependency]]]:
    """(extra or None, its dependencies), the ones always needed first.
    Stored Requires-Dist was checked by ``packaging`` at upload; an imported
    one that does not parse is left out rather than shown wrong."""
    groups: dict[str | None, list[Dependency]] = {}
    for text in requires_dist or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        marker = str(requirement.marker) if requirement.marker else None
        extra = _ONLY_EXTRA.match(marker or "")
        name = requirement.name + (f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else "")
        dependency = Dependency(
            name, normalize(requirement.name), str(requirement.specifier), None if extra else marker
        )
        groups.setdefault(extra.group(1) if extra else None, []).append(dependency)
    return sorted(groups.items(), key=lambda group: (group[0] is not None, group[0] or ""))


def hosted(db: Session, groups: list[tuple[str | None, list[Dependency]]]) -> set[str]:
    """The dependencies' projects this index hosts: one statement for all
    (none when there are no dependencies)."""
    names = {d.project for _, dependencies in groups for d in dependencies}
    if not names:
        return set()
    return set(db.scalars(select(Package.name).where(Package.name.in_(names))))
