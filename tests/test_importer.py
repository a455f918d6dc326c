"""Importing PyPI JSON documents: validated, idempotent, never half-written."""

from __future__ import annotations

import copy
import gzip
import json
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from myapp.packaging.importer import ClassifierCache, DocumentError, import_document, parse_document
from myapp.packaging.models import Classifier, Package, Release, ReleaseFile, package_classifiers
from myapp.packaging.rendering import RENDERER
from myapp.packaging.search.ranking import search_projects
from myapp.packaging.services import latest_release, release_history
from tests.conftest import BIN, SHARED_DATA, LiveServer, fresh_database, missing
from tests.factories import make_package


def file_entry(filename: str, when: str = "2020-01-02T03:04:05", **extra: Any) -> dict[str, Any]:
    return {
        "filename": filename,
        "packagetype": "sdist" if filename.endswith(".tar.gz") else "bdist_wheel",
        "python_version": "source" if filename.endswith(".tar.gz") else "py3",
        "size": 1234,
        "digests": {"sha256": "ab" * 32, "md5": "00" * 16},
        "upload_time": when,
        "url": f"https://files.example.org/{filename}",
        **extra,
    }


def document(name: str = "Sample_Pkg") -> dict[str, Any]:
    return {
        "info": {
            "name": name,
            "version": "1.1",
            "summary": "A sample",
            "description": "Hello *world*",
            "description_content_type": "text/markdown",
            "home_page": "https://example.org",
            "license": "MIT",
            "author": "Someone",
            "keywords": "a,b",
            "classifiers": ["Topic :: Z", "Topic :: A"],
            "project_urls": {"Source": "https://example.org/src"},
            "requires_python": ">=3.8",
        },
        "releases": {
            "1.0": [file_entry("sample_pkg-1.0.tar.gz", "2020-01-01T00:00:00")],
            "1.1": [
                file_entry("sample_pkg-1.1.tar.gz", "2020-02-01T00:00:00"),
                file_entry("sample_pkg-1.1-py3-none-any.whl", "2020-02-01T00:05:00", requires_python=">=3.8"),
            ],
            "2.0b1": [file_entry("sample_pkg-2.0b1.tar.gz", "2020-03-01T00:00:00")],
            "0.1": [],
        },
    }


def documents(prefix: str, count: int) -> list[dict[str, Any]]:
    """Projects that can be stored side by side: their file names differ."""
    docs = [document(f"{prefix}-{i}") for i in range(count)]
    for i, doc in enumerate(docs):
        doc["releases"] = {
            v: [dict(f, filename=f["filename"].replace("sample_pkg", f"{prefix}_{i}")) for f in files]
            for v, files in doc["releases"].items()
        }
    return docs


def run_import(db: Session, doc: Any):  # type: ignore[no-untyped-def]
    return import_document(db, parse_document(doc), ClassifierCache(db))


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare before and after."""
    db.expire_all()
    tables = {"packages": Package, "releases": Release, "files": ReleaseFile, "classifiers": Classifier}
    snap = {name: [tuple(r) for r in db.execute(select(model.__table__)).all()] for name, model in tables.items()}
    snap["links"] = sorted(tuple(r) for r in db.execute(select(package_classifiers)).all())
    return {k: sorted(v, key=repr) for k, v in snap.items()}


def test_import_creates_everything(dbsession):
    stats = run_import(dbsession, document())
    assert (stats.new_projects, stats.new_releases, stats.new_files) == (1, 4, 4)
    package = dbsession.scalar(select(Package))
    assert package.name == "sample-pkg" and package.display_name == "Sample_Pkg"
    assert [c.classifier for c in package.classifiers] == ["Topic :: A", "Topic :: Z"]
    assert package.project_urls == {"Source": "https://example.org/src"}
    history = release_history(dbsession, package)
    assert [r.version for r in history] == ["2.0b1", "1.1", "1.0", "0.1"]
    assert latest_release(history).version == "1.1"  # 2.0b1 is a pre-release
    assert package.created.isoformat() == "2020-01-01T00:00:00+00:00"
    assert package.updated.isoformat() == "2020-03-01T00:00:00+00:00"
    r11 = next(r for r in history if r.version == "1.1")
    assert r11.summary == "A sample" and r11.requires_python == ">=3.8"


def test_import_twice_changes_nothing(dbsession):
    run_import(dbsession, document())
    before = snapshot(dbsession)
    stats = run_import(dbsession, document())
    assert (stats.new_projects, stats.updated_projects, stats.new_releases, stats.new_files) == (0, 0, 0, 0)
    assert snapshot(dbsession) == before


def test_reimport_applies_real_changes(dbsession):
    run_import(dbsession, document())
    doc = document()
    doc["info"]["summary"] = "A better sample"
    doc["info"]["classifiers"] = ["Topic :: A", "Topic :: New"]
    doc["releases"]["1.0"][0]["yanked"] = True
    doc["releases"]["1.2"] = [file_entry("sample_pkg-1.2.tar.gz", "2021-01-01T00:00:00")]
    stats = run_import(dbsession, doc)
    assert (stats.updated_projects, stats.new_releases, stats.new_files) == (1, 1, 1)
    package = dbsession.scalar(select(Package))
    dbsession.refresh(package)
    assert package.summary == "A better sample"
    assert [c.classifier for c in package.classifiers] == ["Topic :: A", "Topic :: New"]
    assert dbsession.scalar(select(Release.yanked).where(Release.version == "1.0")) is True
    assert package.updated.year == 2021


def _bad(mutate) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(document())
    mutate(doc)
    return doc


BAD_DOCUMENTS = {
    "not an object": [1, 2, 3],
    "no info": {"releases": {}},
    "releases not an object": _bad(lambda d: d.update(releases=[])),
    "bad name": _bad(lambda d: d["info"].update(name="-bad name-")),
    "NUL in summary": _bad(lambda d: d["info"].update(summary="a\x00b")),
    "summary too long": _bad(lambda d: d["info"].update(summary="x" * 600)),
    "bad sha256": _bad(lambda d: d["releases"]["1.0"][0]["digests"].update(sha256="nothex")),
    "negative size": _bad(lambda d: d["releases"]["1.0"][0].update(size=-1)),
    "bad time": _bad(lambda d: d["releases"]["1.0"][0].update(upload_time="yesterday")),
    "path in filename": _bad(lambda d: d["releases"]["1.0"][0].update(filename="../../etc/passwd")),
    "javascript url": _bad(lambda d: d["releases"]["1.0"][0].update(url="javascript:alert(1)")),
    "duplicate file": _bad(lambda d: d["releases"]["1.1"].append(file_entry("sample_pkg-1.0.tar.gz"))),
    "file not an object": _bad(lambda d: d["releases"]["1.1"].append("nope")),
    "classifiers not a list": _bad(lambda d: d["info"].update(classifiers="Topic :: A")),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS)
def test_bad_documents_are_refused_with_a_reason_and_write_nothing(dbsession, case):
    before = snapshot(dbsession)
    with pytest.raises(DocumentError) as info:
        run_import(dbsession, BAD_DOCUMENTS[case])
    assert str(info.value)
    assert snapshot(dbsession) == before


def test_conflict_with_stored_data_rolls_back_the_whole_document(dbsession):
    """A file name owned by another project: the database refuses, and none of
    the document (package, releases, new classifiers) stays behind."""
    make_package(dbsession, "other", versions=["1.0"])
    taken = dbsession.scalar(select(ReleaseFile.filename))
    doc = document()
    doc["info"]["classifiers"] = ["Topic :: Brand New"]
    doc["releases"]["1.1"].append(file_entry(taken))
    before = snapshot(dbsession)
    cache = ClassifierCache(dbsession)
    with pytest.raises(DocumentError, match="conflicts"):
        import_document(dbsession, parse_document(doc), cache)
    assert snapshot(dbsession) == before
    assert "Topic :: Brand New" not in cache.ids
    # the session is still usable: a good document imports after a bad one
    assert import_document(dbsession, parse_document(document("fine")), cache).new_projects == 1


def test_unknown_metadata_is_stored_as_missing(dbsession):
    doc = document()
    doc["info"].update(license="UNKNOWN", author="", home_page=None, project_urls=None)
    run_import(dbsession, doc)
    package = dbsession.scalar(select(Package))
    assert (package.license, package.author, package.home_page, package.project_urls) == (None, None, None, {})


# -- the command line, on a fresh database, against the real top-100 documents --


def test_cli_imports_real_pypi_documents(backend, tmp_path):
    if not SHARED_DATA.is_dir():
        missing(f"{SHARED_DATA} is not present")
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        first = server.run_cli(str(BIN / "myapp-import"), str(server.ini), str(SHARED_DATA), "--no-progress")
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith(
            "96 projects (96 new, 0 updated, 0 unchanged), 5547 releases read (5547 new), "
            "19160 files read (19160 new), 0 skipped, in "
        ), first.stdout
        second = server.run_cli(str(BIN / "myapp-import"), str(server.ini), str(SHARED_DATA), "--no-progress")
        assert second.returncode == 0, second.stderr
        # Every document's bytes were imported before: none is even parsed.
        assert "96 projects (0 new, 0 updated, 96 unchanged), 0 releases read (0 new), 0 files read" in second.stdout

        with server:
            import urllib.request

            with urllib.request.urlopen(server.base + "/project/requests/") as res:
                page = res.read().decode()
            assert 'requests <span class="version">2.18.4</span>' in page
            assert "Python HTTP for Humans." in page
            # 2.15.0 has no files: no date (it showed the project's first upload, 2011-02-14).
            with urllib.request.urlopen(server.base + "/project/requests/2.15.0/") as res:
                release = res.read().decode()
            assert "This release has no files." in release and "Released" not in release
            assert "2011-02-14" not in release
            # The bulk path stores info's Requires-Dist on its release: served, and listed by extra.
            with urllib.request.urlopen(server.base + "/pypi/requests/json") as res:
                info = json.load(res)["info"]
            assert info["requires_dist"][0] == "certifi (>=2017.4.17)" and len(info["requires_dist"]) == 9
            assert '<a href="/project/certifi/">certifi</a>' in page  # hosted here: linked
            assert "With <code>[security]</code>" in page
            with urllib.request.urlopen(server.base + "/") as res:
                home = res.read().decode()
            assert "<strong>96</strong> projects" in home
            assert "<strong>5,547</strong> releases" in home
            assert "<strong>19,160</strong> files" in home


def test_a_release_without_files_shows_no_date(testapp, dbsession):
    """The column holds a stand-in (the project's first upload), which no page shows."""
    run_import(dbsession, document())
    release = testapp.get("/project/sample-pkg/0.1/").html.select_one("main")
    assert "2020-01-01" not in release.text and "Released" not in release.text
    assert "This release has no files." in release.text
    history = testapp.get("/project/sample-pkg/").html.select(".releases li")
    dates = {li.select_one("a").text: li.select_one(".updated").text for li in history}
    assert dates == {"2.0b1": "2020-03-01", "1.1": "2020-02-01", "1.0": "2020-01-01", "0.1": "no files"}


def test_cli_reports_bad_documents_and_imports_the_rest(backend, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.json").write_text(json.dumps(document("good-one")))
    (docs / "broken.json").write_text("{ not json")
    (docs / "bad.json").write_text(json.dumps(BAD_DOCUMENTS["bad sha256"]))
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        done = server.run_cli(str(BIN / "myapp-import"), str(server.ini), str(docs), "--no-progress")
        assert done.returncode == 2
        assert "skipped" in done.stderr and "broken.json: not valid JSON" in done.stderr
        assert "bad.json: file 'sample_pkg-1.0.tar.gz': digests.sha256" in done.stderr
        assert done.stdout.startswith(
            "1 projects (1 new, 0 updated, 0 unchanged), 4 releases read (4 new), 4 files read (4 new), 2 skipped"
        )


def test_cli_streams_ndjson_gzip_and_stdin_and_a_bad_line_spares_its_batch(backend, tmp_path):
    good = documents("streamed", 5)
    lines = [json.dumps(d) for d in good[:3]]
    lines.insert(1, json.dumps(BAD_DOCUMENTS["bad sha256"]))
    lines.insert(2, "{ not json")
    lines.append(json.dumps(good[0]))  # the same project twice in one batch: applied twice, changes nothing
    (tmp_path / "dump.ndjson").write_text("\n".join(lines) + "\n\n")
    with gzip.open(tmp_path / "more.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(good[3]) + "\n")
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        command = [str(BIN / "myapp-import"), str(server.ini), "--no-progress"]
        done = server.run_cli(*command, str(tmp_path / "dump.ndjson"), str(tmp_path / "more.jsonl.gz"))
        assert done.returncode == 2, done.stderr
        assert f"skipped {tmp_path / 'dump.ndjson'}:2: file 'sample_pkg-1.0.tar.gz': digests.sha256" in done.stderr
        assert f"skipped {tmp_path / 'dump.ndjson'}:3: not valid JSON" in done.stderr
        assert done.stdout.startswith("5 projects (4 new, 0 updated, 0 unchanged)"), done.stdout
        piped = server.run_cli(*command, "-", input=json.dumps(good[4]) + "\n")
        assert piped.returncode == 0 and piped.stdout.startswith("1 projects (1 new"), piped.stdout
        again = server.run_cli(*command, str(tmp_path / "dump.ndjson"), "-", input=json.dumps(good[4]))
        assert again.stdout.startswith("5 projects (0 new, 0 updated, 5 unchanged), 0 releases read"), again.stdout
        with server:
            import urllib.request

            with urllib.request.urlopen(server.base + "/search?q=streamed&format=json") as res:
                assert json.load(res)["total"] == 5
            with urllib.request.urlopen(server.base + "/project/streamed-0/") as res:
                assert "Hello <em>world</em>" in res.read().decode()  # rendered by the import's workers


def test_cli_a_document_the_database_refuses_is_skipped_and_its_batch_still_lands(backend, tmp_path):
    first = document("first-project")
    thief = document("second-project")  # claims a file name the first project already has
    others = documents("bystander", 3)
    (tmp_path / "first.ndjson").write_text(json.dumps(first) + "\n")
    (tmp_path / "batch.ndjson").write_text("\n".join(json.dumps(d) for d in [others[0], thief, *others[1:]]))
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        command = [str(BIN / "myapp-import"), str(server.ini), "--no-progress"]
        assert server.run_cli(*command, str(tmp_path / "first.ndjson")).returncode == 0
        done = server.run_cli(*command, str(tmp_path / "batch.ndjson"))
        assert done.returncode == 2, done.stderr
        assert f"skipped {tmp_path / 'batch.ndjson'}:2: conflicts with data already stored" in done.stderr
        assert done.stdout.startswith("3 projects (3 new, 0 updated, 0 unchanged)"), done.stdout
        engine = create_engine(url)
        with engine.connect() as db:
            names = set(db.scalars(text("SELECT name FROM packages")))
            stats = db.execute(text("SELECT projects, releases, files FROM index_stats")).one()
            real = db.execute(
                text("SELECT (SELECT count(*) FROM releases), (SELECT count(*) FROM release_files)")
            ).one()
            words = dict(db.execute(text("SELECT word, projects FROM name_words")).tuples().all())
        with Session(engine) as db:  # the search index holds what the bulk write and the fallback wrote
            assert search_projects(db, "bystander").page.total == 3
            assert search_projects(db, "first project").page.items[0].package.name == "first-project"
            assert search_projects(db, "bystandr").suggestions == ["bystander-0", "bystander-1", "bystander-2"]
        engine.dispose()
        assert names == {"first-project", "bystander-0", "bystander-1", "bystander-2"}
        assert tuple(stats) == (4, *real)  # the counts kept by the bulk write match the rows
        assert words == {"first": 1, "project": 1, "bystander": 3, "0": 1, "1": 1, "2": 1}  # and the names' words


@pytest.mark.postgresql_only
def test_cli_vacuums_and_analyzes_postgresql_after_an_import_that_grows_the_tables(backend, tmp_path):
    """What autovacuum would do soon, done before the import returns: the
    planner knows the new rows, and index-only scans need not visit them."""
    docs = documents("grown", 11)
    (tmp_path / "ten.ndjson").write_text("\n".join(json.dumps(d) for d in docs[:10]))
    (tmp_path / "one.ndjson").write_text(json.dumps(docs[10]))
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        command = [str(BIN / "myapp-import"), str(server.ini), "--no-progress"]
        engine = create_engine(url)

        def maintained() -> dict[str, tuple[int, int]]:
            with engine.connect() as db:
                sql = "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables"
                return {name: (vacuums, analyses) for name, vacuums, analyses in db.execute(text(sql))}

        before = maintained()
        assert server.run_cli(*command, str(tmp_path / "ten.ndjson")).returncode == 0
        grown = maintained()
        assert server.run_cli(*command, str(tmp_path / "one.ndjson")).returncode == 0
        after_one = maintained()
        engine.dispose()
    for name in ("packages", "releases", "release_files", "package_classifiers", "name_words"):
        vacuums, analyses = before[name]  # migration 0007 analyzes name_words once
        assert grown[name] == (vacuums + 1, analyses + 1), name  # ten projects into none
    assert after_one == grown  # one more into ten: left to autovacuum


def test_cli_defer_rendering_leaves_it_to_the_first_view(backend, tmp_path):
    (tmp_path / "doc.json").write_text(json.dumps(document()))
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path, demo=False)
        assert server.initdb().returncode == 0
        command = [str(BIN / "myapp-import"), str(server.ini), "--no-progress", "--defer-rendering"]
        assert server.run_cli(*command, str(tmp_path / "doc.json")).returncode == 0
        engine = create_engine(url)
        with engine.connect() as db:
            assert db.scalar(text("SELECT description_html FROM packages")) is None
        with server:
            import urllib.request

            with urllib.request.urlopen(server.base + "/project/sample-pkg/") as res:
                assert "Hello <em>world</em>" in res.read().decode()
            # Stored after the response, in a transaction of its own: on a loaded
            # machine (parallel tests) that can take seconds.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with engine.connect() as db:
                    stored = db.execute(text("SELECT description_html, description_renderer FROM packages")).one()
                if stored[0]:
                    break
                time.sleep(0.1)
        assert "Hello <em>world</em>" in stored[0] and stored[1] == RENDERER
        engine.dispose()


def test_all_real_versions_sort_as_packaging_does():
    if not SHARED_DATA.is_dir():
        missing(f"{SHARED_DATA} is not present")
    from packaging.version import InvalidVersion, Version

    from myapp.packaging.names import version_sort_key

    versions: set[str] = set()
    for path in SHARED_DATA.glob("*.json"):
        versions.update(json.loads(path.read_text())["releases"])
    valid = []
    for v in versions:
        try:
            valid.append((Version(v), v))
        except InvalidVersion:
            assert version_sort_key(v) < version_sort_key("0")  # legacy versions sort first
    assert len(valid) > 2000
    by_packaging = [parsed for parsed, _ in sorted(valid)]
    by_key = [parsed for parsed, _ in sorted(valid, key=lambda pv: version_sort_key(pv[1]))]
    assert by_key == by_packaging


def test_real_documents_count():
    """Counts straight from the documents, so the CLI test's figures are not magic."""
    if not SHARED_DATA.is_dir():
        missing(f"{SHARED_DATA} is not present")
    docs = [json.loads(p.read_text()) for p in sorted(SHARED_DATA.glob("*.json"))]
    assert len(docs) == 96
    assert sum(len(d["releases"]) for d in docs) == 5547
    assert sum(len(f) for d in docs for f in d["releases"].values()) == 19160


def test_bulk_rows_convert_datetimes_as_the_orm_does_whatever_the_zone(dbsession):
    """RowConverter remembers a few datetimes it converted: equal instants in
    other zones must still come out as the ORM stores them (naive UTC)."""
    from datetime import UTC, datetime, timedelta, timezone

    from myapp.data.bulk import RowConverter

    dialect = dbsession.get_bind().dialect
    convert = RowConverter(Package.__table__, ["created", "updated"], dialect)
    column_type = Package.__table__.c.created.type.dialect_impl(dialect)
    orm = column_type.bind_processor(dialect) or (lambda value: value)
    utc = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    cest = utc.astimezone(timezone(timedelta(hours=2)))
    later = utc + timedelta(microseconds=1)
    assert convert((utc, cest)) == (orm(utc), orm(utc))
    assert convert((cest, later)) == (orm(utc), orm(later)) != (orm(utc), orm(utc))


def test_the_info_versions_core_metadata_lands_on_its_release(dbsession):
    doc = document()
    doc["info"] |= {
        "requires_dist": ["requests>=2", "pysocks ; extra == 'socks'"],
        "provides_extra": ["socks"],
        "license_expression": "MIT",
        "license_files": ["LICENSE"],
        "dynamic": None,
        "platform": "any",
        "download_url": "https://example.org/dl",
    }
    run_import(dbsession, doc)
    releases = {r.version: r for r in dbsession.scalars(select(Release))}
    r11 = releases["1.1"]
    assert r11.requires_dist == ["requests>=2", "pysocks ; extra == 'socks'"] and r11.provides_extra == ["socks"]
    assert (r11.license_expression, r11.license_files, r11.dynamic) == ("MIT", ["LICENSE"], None)
    assert (r11.platform, r11.download_url) == (["any"], "https://example.org/dl")
    assert releases["1.0"].requires_dist is None  # the document says nothing of other releases
    before = snapshot(dbsession)
    run_import(dbsession, doc)
    assert snapshot(dbsession) == before  # the same again: nothing changes

    doc["info"]["version"] = "1.0"  # a document of another day, its info of 1.0: 1.1's is kept
    doc["info"]["requires_dist"] = ["httpx"]
    run_import(dbsession, doc)
    dbsession.expire_all()
    releases = {r.version: r for r in dbsession.scalars(select(Release))}
    assert releases["1.0"].requires_dist == ["httpx"]
    assert releases["1.1"].requires_dist == ["requests>=2", "pysocks ; extra == 'socks'"]


def test_a_bad_requires_dist_is_refused(dbsession):
    for bad in ("requests", [1], ["a\x00b"]):
        doc = document()
        doc["info"]["requires_dist"] = bad
        with pytest.raises(DocumentError):
            parse_document(doc)
