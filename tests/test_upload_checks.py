"""What an upload's file must be, checked from the file itself, on SQLite and
PostgreSQL: the stored metadata comes from the wheel's METADATA or the sdist's
PKG-INFO (any Metadata-Version ``packaging`` knows), archives are read with
bounded work (bombs are refused at once), sdists are real gzip tars with one
``{name}-{version}/`` folder and no links, and the index's own metadata rules
hold (no local versions, known classifiers, ASCII names)."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
import zipfile

import pytest
import webtest
from packaging.version import Version
from sqlalchemy import select

from myapp.config import configure
from myapp.packaging import archives, services
from myapp.packaging.models import Classifier
from myapp.packaging.validation import InvalidUpload, parse
from tests.accounts import PASSWORD, make_user
from tests.test_upload import WHEEL, stored_files, upload

SDIST = "tiny_thing-1.0.tar.gz"
HEAD = "Metadata-Version: {mv}\nName: {name}\nVersion: {version}\n"


def metadata(
    extra: str = "", *, mv: str = "2.1", name: str = "Tiny-Thing", version: str = "1.0", summary: str = "A tiny thing"
) -> str:
    """Core metadata text; ``summary`` as the test upload form says it, unless given."""
    head = HEAD.format(mv=mv, name=name, version=version) + (f"Summary: {summary}\n" if summary else "")
    return head + extra


def make_wheel(text: str, *, dist: str = "tiny_thing", version: str = "1.0", members: int = 0) -> bytes:
    info = f"{dist}-{version}.dist-info"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{info}/METADATA", text.encode())
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        for n in range(members):
            zf.writestr(f"{dist}/m{n}.py", "")
        zf.writestr(f"{info}/RECORD", "")
    return buf.getvalue()


def member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_sdist(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def good_sdist(text: str | None = None, root: str = "tiny_thing-1.0") -> bytes:
    return make_sdist(
        member(f"{root}/PKG-INFO", (text or metadata(mv="2.2")).encode()),
        member(f"{root}/tiny_thing/__init__.py", b""),
    )


@pytest.fixture
def uploader(dbsession):
    return make_user(dbsession, "uploader")


def refused(testapp, files_dir, dbsession, filename: str, data: bytes, reason: str, **fields: str) -> None:
    """A 400 whose reason says why, and nothing written."""
    before = stored_files(files_dir)
    res = upload(testapp, "uploader", PASSWORD, filename, data, **fields)
    assert res.status_int == 400 and reason in res.status, res.status
    assert services.find_package(dbsession, "tiny-thing") is None
    assert stored_files(files_dir) == before


# -- the file is the truth ---------------------------------------------------------------

FULL = (
    metadata(
        "Author: Ada\n"
        "Author-email: ada@example.org\n"
        "Maintainer: Grace\n"
        "Keywords: tiny,thing\n"
        "License-Expression: MIT\n"
        "License-File: LICENSE\n"
        "Requires-Python: >=3.9\n"
        "Requires-Dist: requests>=2\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: Intended Audience :: Developers\n"
        "Project-URL: Source, https://example.org/src\n"
        "Description-Content-Type: text/markdown\n",
        mv="2.5",
        summary="From the file",
    )
    + "\n# Tiny\n\nThe long description.\n"
)


@pytest.mark.parametrize("metadata_version", ["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"])
def test_every_metadata_version_packaging_knows_is_accepted(testapp, dbsession, uploader, metadata_version):
    """What the form says the version is does not matter (flit always says 2.3)."""
    data = make_wheel(metadata(mv=metadata_version))
    res = upload(testapp, "uploader", PASSWORD, WHEEL, data, metadata_version="2.3", classifiers=None)
    assert res.status_int == 200, res.status


def test_what_is_stored_comes_from_the_file(testapp, dbsession, files_dir, uploader):
    data = make_wheel(FULL)
    fields = {"metadata_version": "2.3", "summary": None, "classifiers": "Framework :: Django"}
    res = upload(testapp, "uploader", PASSWORD, WHEEL, data, **fields)
    assert res.status_int == 200, res.status
    package = services.find_package(dbsession, "tiny-thing")
    assert (package.summary, package.author, package.author_email, package.maintainer) == (
        "From the file",
        "Ada",
        "ada@example.org",
        "Grace",
    )
    assert package.keywords == "tiny, thing" and package.requires_python == ">=3.9"
    assert package.description.startswith("# Tiny") and package.description_content_type == "text/markdown"
    assert "<p>The long description.</p>" in package.description_html
    assert package.project_urls == {"Source": "https://example.org/src"}
    assert [c.classifier for c in package.classifiers] == [
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
    ]
    release = services.find_release(dbsession, package, "1.0")
    assert release.summary == "From the file" and release.requires_python == ">=3.9"
    file = services.find_file(dbsession, WHEEL)
    assert file.requires_python == ">=3.9"
    assert (files_dir / (file.storage_path + ".metadata")).read_bytes() == FULL.encode()


def test_an_sdist_is_read_from_its_pkg_info(testapp, dbsession, uploader):
    text = metadata("Requires-Python: >=3.10\nDynamic: Requires-Dist\n", mv="2.2", summary="From PKG-INFO")
    res = upload(testapp, "uploader", PASSWORD, SDIST, good_sdist(text), summary=None, classifiers=None)
    assert res.status_int == 200, res.status
    package = services.find_package(dbsession, "tiny-thing")
    assert package.summary == "From PKG-INFO" and package.requires_python == ">=3.10"
    assert services.find_file(dbsession, SDIST).metadata_sha256 is None  # PEP 658 serves wheels' metadata only
    # A legacy sdist's folder spells the name as the project does.
    legacy = good_sdist(metadata(version="1.1", mv="2.1"), root="Tiny-Thing-1.1")
    res = upload(testapp, "uploader", PASSWORD, "tiny_thing-1.1.tar.gz", legacy, version="1.1", summary=None)
    assert res.status_int == 200, res.status


@pytest.mark.parametrize(
    ("text", "fields", "reason"),
    [
        (metadata(mv="9.9"), {}, "Invalid distribution metadata: '9.9' is not a valid metadata version"),
        (metadata("Requires-Python: not a specifier\n"), {}, "is invalid for 'requires-python'"),
        (metadata("Classifier: Made Up :: Thing\n"), {}, "'Made Up :: Thing' is not a valid classifier"),
        (metadata("Classifier: Framework :: Django CMS :: 4.2\n"), {}, "has been deprecated"),
        (metadata(summary="a\x00b"), {"summary": None}, "holds a NUL"),
        (metadata(summary="x" * 600), {"summary": None}, "Summary is too long: at most 512"),
        (metadata(name="Other-Thing"), {}, "METADATA names another project or version"),
        (metadata(version="1.1"), {}, "METADATA names another project or version"),
        (metadata(summary="In the file"), {"summary": "In the form"}, "form's summary does not match"),
        (metadata("Requires-Python: >=3.9\n"), {"requires_python": ">=3.8"}, "requires_python does not match"),
        (metadata("Requires-Python: >=3.9\n") + "X-Unknown: 1\n", {}, "unrecognized field"),
    ],
)
def test_metadata_the_index_refuses(testapp, dbsession, files_dir, uploader, text, fields, reason):
    refused(testapp, files_dir, dbsession, WHEEL, make_wheel(text), reason, **fields)


def test_local_versions_are_refused_unless_the_site_allows_them(testapp, settings, dbsession, files_dir, uploader):
    name = "tiny_thing-1.0+evil-py3-none-any.whl"
    data = make_wheel(metadata(version="1.0+evil"), version="1.0+evil")
    refused(
        testapp, files_dir, dbsession, name, data, "Local versions like '1.0+evil' are not allowed", version="1.0+evil"
    )
    local = webtest.TestApp(
        configure({**settings, "myapp.allow_local_versions": "true"}).make_wsgi_app(),
        extra_environ={"HTTP_HOST": "localhost"},
    )
    assert upload(local, "uploader", PASSWORD, name, data, version="1.0+evil").status_int == 200


def test_names_are_ascii(testapp, dbsession, files_dir, uploader):
    """The Kelvin sign lower-cases to "k": it used to pass as a spelling of "kelvin-thing"."""
    kelvin = "\u212aelvin-Thing"
    data = make_wheel(metadata(name=kelvin), dist="kelvin_thing")
    res = upload(testapp, "uploader", PASSWORD, "kelvin_thing-1.0-py3-none-any.whl", data, name=kelvin)
    assert res.status_int == 400 and "Invalid or missing project name" in res.status
    res = upload(testapp, "uploader", PASSWORD, "kelvin_thing-1.0-py3-none-any.whl", data, name="Kelvin-Thing")
    assert res.status_int == 400 and "is invalid for 'name'" in res.status
    assert services.find_package(dbsession, "kelvin-thing") is None


def test_classifiers_no_project_uses_are_dropped(testapp, dbsession, uploader):
    first = make_wheel(metadata("Classifier: Framework :: Flask\nClassifier: Typing :: Typed\n"))
    assert upload(testapp, "uploader", PASSWORD, WHEEL, first, classifiers=None).status_int == 200
    second = make_wheel(metadata("Classifier: Typing :: Typed\n", version="2.0"), version="2.0")
    name = "tiny_thing-2.0-py3-none-any.whl"
    assert upload(testapp, "uploader", PASSWORD, name, second, version="2.0", classifiers=None).status_int == 200
    names = set(dbsession.scalars(select(Classifier.classifier)))
    assert "Typing :: Typed" in names and "Framework :: Flask" not in names
    assert [c.classifier for c in services.find_package(dbsession, "tiny-thing").classifiers] == ["Typing :: Typed"]


# -- sdists ------------------------------------------------------------------------------

ROOT = "tiny_thing-1.0"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "Invalid sdist"),
        (b"\x7fELF\x02\x01\x01" + bytes(200), "Invalid sdist: not a gzip-compressed tar"),
        (b"<!doctype html><html><body>hello</body></html>", "Invalid sdist: not a gzip-compressed tar"),
        (gzip.compress(b"not a tar at all" * 100), "Invalid sdist"),
        (make_sdist(), "Invalid sdist"),
        (make_sdist(member(f"{ROOT}/setup.py", b"")), "no PKG-INFO"),
        (good_sdist(root="other-1.0"), "top-level folder 'other-1.0'"),
        (good_sdist(root="tiny_thing-2.0"), "top-level folder"),
        (good_sdist(metadata(name="Other", mv="2.2")), "PKG-INFO names another project"),
        (
            make_sdist(member(f"{ROOT}/PKG-INFO", metadata().encode()), member("second-1.0/x.py", b"")),
            "exactly one top-level folder",
        ),
        (make_sdist(member(f"{ROOT}/PKG-INFO", metadata().encode()), member("/etc/passwd", b"")), "unsafe path"),
        (make_sdist(member(f"{ROOT}/PKG-INFO", metadata().encode()), member(f"{ROOT}/../x", b"")), "unsafe path"),
        (
            make_sdist(
                member(f"{ROOT}/PKG-INFO", metadata().encode()),
                member(f"{ROOT}/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
            ),
            "is a link or a special file",
        ),
        (
            make_sdist(
                member(f"{ROOT}/PKG-INFO", metadata().encode()),
                member(f"{ROOT}/hard", type=tarfile.LNKTYPE, linkname=f"{ROOT}/PKG-INFO"),
            ),
            "is a link or a special file",
        ),
    ],
    ids=[
        "empty",
        "elf",
        "html",
        "gzip-not-tar",
        "empty-tar",
        "no-pkg-info",
        "other-root",
        "other-version-root",
        "pkg-info-other-name",
        "two-roots",
        "absolute",
        "dotdot",
        "symlink",
        "hardlink",
    ],
)
def test_an_sdist_must_be_a_safe_gzip_tar_of_its_release(testapp, dbsession, files_dir, uploader, data, reason):
    refused(testapp, files_dir, dbsession, SDIST, data, reason)


# -- bounded reading -----------------------------------------------------------------------


def zip_bomb(unpacked: int) -> bytes:
    """A wheel whose METADATA is ``unpacked`` bytes of blanks after its headers."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("tiny_thing-1.0.dist-info/METADATA", "w", force_zip64=True) as out,
    ):
        out.write(metadata().encode() + b"Description: ")
        block = b" " * (1024 * 1024)
        for _ in range(unpacked // len(block)):
            out.write(block)
    return buf.getvalue()


def gzip_bomb(unpacked: int) -> bytes:
    """An sdist with one member of ``unpacked`` zero bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tf:
        tf.addfile(member(f"{ROOT}/PKG-INFO", metadata().encode())[0], io.BytesIO(metadata().encode()))
        info = tarfile.TarInfo(f"{ROOT}/zeros")
        info.size = unpacked
        tf.addfile(info, io.BytesIO(bytes(unpacked)))
    return buf.getvalue()


def peak_growth(call) -> int:  # type: ignore[no-untyped-def]
    """Bytes allocated at the peak of ``call()``, over what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_is_refused_with_little_memory(testapp, dbsession, files_dir, uploader, tmp_path):
    bomb = zip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 200_000
    path = tmp_path / WHEEL
    path.write_bytes(bomb)

    def read() -> None:
        with pytest.raises(archives.ArchiveRefused, match="unpacks to more than 100 times its size"):
            archives.wheel_metadata(path)

    assert peak_growth(read) < 5 * 1024 * 1024
    refused(testapp, files_dir, dbsession, WHEEL, bomb, "Invalid wheel")


def test_caps_on_members_and_metadata_size(tmp_path):
    path = tmp_path / WHEEL
    path.write_bytes(make_wheel(metadata(), members=30))
    with pytest.raises(archives.ArchiveRefused, match="more than 20 files"):
        archives.wheel_metadata(path, archives.Limits(members=20))
    assert archives.wheel_metadata(path, archives.Limits(members=40)).startswith(b"Metadata-Version")
    path.write_bytes(make_wheel(metadata() + "\n" + "x" * 5000))
    with pytest.raises(archives.ArchiveRefused, match="METADATA is larger than 4096 bytes"):
        archives.wheel_metadata(path, archives.Limits(metadata_bytes=4096))
    sdist = tmp_path / SDIST
    sdist.write_bytes(make_sdist(*(member(f"{ROOT}/m{n}", b"") for n in range(30))))
    with pytest.raises(archives.ArchiveRefused, match="more than 20 files"):
        archives.sdist_metadata(sdist, "tiny-thing", Version("1.0"), archives.Limits(members=20))


def test_a_gzip_bomb_sdist_is_refused_with_little_memory(testapp, dbsession, files_dir, uploader, tmp_path):
    bomb = gzip_bomb(64 * 1024 * 1024)
    path = tmp_path / SDIST
    path.write_bytes(bomb)

    def read() -> None:
        with pytest.raises(archives.ArchiveRefused, match="unpacks to more than"):
            archives.sdist_metadata(path, "tiny-thing", Version("1.0"))

    assert peak_growth(read) < 5 * 1024 * 1024
    refused(testapp, files_dir, dbsession, SDIST, bomb, "Invalid sdist: it unpacks to more than")


def test_a_zip_whose_metadata_lies_about_its_size_is_refused(tmp_path):
    """The central directory says 10 bytes; the data inflates to far more: the CRC check stops it."""
    text = metadata() + "\n" + "x" * 100_000
    data = bytearray(make_wheel(text))
    text_size = len(text)
    lie = (10).to_bytes(4, "little")
    data[:] = data.replace(text_size.to_bytes(4, "little"), lie)
    path = tmp_path / WHEEL
    path.write_bytes(bytes(data))
    with pytest.raises(archives.ArchiveRefused, match="Invalid wheel"):
        archives.wheel_metadata(path)


def test_parse_is_packagings_validator():
    assert parse(metadata(mv="2.5").encode())[0].metadata_version == "2.5"
    with pytest.raises(InvalidUpload, match="is invalid for 'requires-python'"):
        parse(metadata("Requires-Python: >=x\n", mv="1.2").encode())
    with pytest.raises(InvalidUpload, match=r"introduced in metadata version 1\.2"):
        parse(metadata("Requires-Python: >=3\n", mv="1.0").encode())


def test_a_wheel_with_an_escaping_path_is_refused(testapp, dbsession, files_dir, uploader):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny_thing-1.0.dist-info/METADATA", metadata())
        zf.writestr("../../etc/cron.d/evil", "")
    refused(testapp, files_dir, dbsession, WHEEL, buf.getvalue(), "Invalid wheel: unsafe path '../../etc/cron.d/evil'")
