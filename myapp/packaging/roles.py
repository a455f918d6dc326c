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
    # populate_existing: the role as it is now (after lock_project_roles), not as first loaded.
    stmt = select(Role).where(Role.user_id == user.id, Role.package_id == package.id)
    return db.scalar(stmt.execution_options(populate_existing=True))


def _owners(db: Session, package: Package) -> int:
    stmt = select(func.count()).where(Role.package_id == package.id, Role.role == RoleName.OWNER)
    return db.scalar(stmt) or 0


def lock_project_roles(db: Session, package_id: int) -> None:
    """Hold the project's row until the transaction ends, so that two changes
    to its roles take turns: otherwise two owners removing each other each
    count two owners, and both go (PostgreSQL; SQLite's write lock already
    serializes them, and SQLAlchemy leaves FOR UPDATE out there)."""
    db.execute(select(Package.id).where(Package.id == package_id).with_for_update())


def set_role(db: Session, package: Package, user: User, role: RoleName) -> Role:
    """Give ``user`` this role on the project (adding or changing it)."""
    lock_project_roles(db, package.id)
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
    lock_project_roles(db, package.id)
    current = role_of(db, user, package)
    if current is None:
        return
    if current.role == RoleName.OWNER and _owners(db, package) <= 1:
        raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
    db.delete(current)
    bump_serial(db, package)
    db.flush()
