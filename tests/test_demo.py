"""The demo data agrees with itself: what a visitor sees first should not contradict itself."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package, Release

# The License classifier each license's text stands for.
CLASSIFIER_OF = {
    "MIT": "License :: OSI Approved :: MIT License",
    "Apache-2.0": "License :: OSI Approved :: Apache Software License",
}


def test_every_demo_license_agrees_with_its_classifier(dbsession: Session, tmp_path: Path):
    load_demo(dbsession, tmp_path)
    packages = dbsession.scalars(select(Package).options(selectinload(Package.classifiers))).all()
    assert len(packages) == 36
    for package in packages:
        said = [c.classifier for c in package.classifiers if c.classifier.startswith("License ::")]
        assert said == [CLASSIFIER_OF[package.license]], f"{package.name}: license {package.license!r} beside {said}"
    # Both licenses occur, so the check above compares more than one pair.
    assert set(Counter(p.license for p in packages)) == set(CLASSIFIER_OF)


def test_demo_releases_carry_dependencies_and_license_that_their_files_say(dbsession: Session, tmp_path: Path):
    load_demo(dbsession, tmp_path)
    releases = dbsession.scalars(select(Release).options(selectinload(Release.files), selectinload(Release.package)))
    hosted = 0
    for release in releases:
        assert release.license_expression == release.package.license
        assert release.provides_extra == ["test"] and release.requires_dist[-1] == "pytest>=8 ; extra == 'test'"
        hosted += len(release.requires_dist) == 2
        wheel = next(f for f in release.files if f.packagetype == "bdist_wheel")
        said = Metadata.from_email((tmp_path / f"{wheel.storage_path}.metadata").read_bytes(), validate=True)
        assert [str(r) for r in said.requires_dist] == [str(Requirement(r)) for r in release.requires_dist]
        assert said.license_expression == release.license_expression
    assert hosted > 0  # most depend on another demo project
