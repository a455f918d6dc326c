"""Every model, imported in one place so that ``Base.metadata`` is complete
(Alembic's autogenerate and pshell read it from here)."""

from myapp.data.meta import Base
from myapp.packaging.models import Classifier, Package, Release, ReleaseFile, package_classifiers

__all__ = ["Base", "Classifier", "Package", "Release", "ReleaseFile", "package_classifiers"]
