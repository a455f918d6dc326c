"""The demo data agrees with itself: what a visitor sees first should not contradict itself."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package

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
