"""Who maintains what: owners and maintainers of each project.

A project keeps at least one owner (``LastOwnerError``); every change bumps
the project's serial, since its page lists its maintainers.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from myapp.accounts.models import User
from myapp.packaging.models import Package, Role, RoleName
from myapp.packaging.services import bump_serial


class LastOwnerError(ValueError):
    """A project must keep at least one owner."""


def maintainers(db: Session, package: Package) -> list[Role]:
    """The project's roles with their users, owners first, then by name."""
    stmt = (
        select(Role)
        .join(Role.user)
        .where(Role.package_id == package.id)
        .options(contains_eager(Role.user))
        .order_by(Role.role != RoleName.OWNER, func.lower(User.username))
    )
    return list(db.scalars(stmt))


def projects_of(db: Session, user: User) -> list[Role]:
    """The user's roles with their projects, by project name."""
    stmt = (
        select(Role)
        .join(Role.package)
        .where(Role.user_id == user.id)
        .options(contains_eager(Role.package).defer(Package.description, raiseload=True))
        .order_by(Package.name)
    )
    return list(db.scalars(stmt))


def role_of(db: Session, user: User, package: Package) -> Role | None:
    return db.scalar(select(Role).where(Role.user_id == user.id, Role.package_id == package.id))


def _owners(db: Session, package: Package) -> int:
    stmt = select(func.count()).where(Role.package_id == package.id, Role.role == RoleName.OWNER)
    return db.scalar(stmt) or 0


def set_role(db: Session, package: Package, user: User, role: RoleName) -> Role:
    """Give ``user`` this role on the project (adding or changing it)."""
    current = role_of(db, user, package)
    if current is None:
        current = Role(user_id=user.id, package_id=package.id, role=role)
        db.add(current)
    elif current.role != role:
        if current.role == RoleName.OWNER and _owners(db, package) <= 1:
            raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
        current.role = role
    bump_serial(db, package)  # the project page lists its maintainers
    db.flush()
    return current


def remove_role(db: Session, package: Package, user: User) -> None:
    current = role_of(db, user, package)
    if current is None:
        return
    if current.role == RoleName.OWNER and _owners(db, package) <= 1:
        raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
    db.delete(current)
    bump_serial(db, package)
    db.flush()
