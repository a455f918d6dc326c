"""Multipart forms (myapp.web.forms): what twine sends is read as before, and
a hostile form is a 400 from the request guard, never a 500 or a row."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest

from myapp.packaging import services
from myapp.packaging.demo import _wheel
from myapp.web.forms import LIMITS, TEXT_LIMIT, read_multipart
from tests.accounts import PASSWORD, make_user
from tests.test_accounts import basic
from tests.test_upload import WHEEL, upload

UNREADABLE = "The form cannot be read."


def _body(parts: list[tuple[str, str | bytes, str | None]], boundary: str) -> bytes:
    """A multipart body: (name, value, filename or None) per part."""
    out = io.BytesIO()
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        out.write(value if isinstance(value, bytes) else value.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def _post(testapp, body: bytes, boundary: str, *, status: int | str = "*"):
    headers = {**basic("uploader", PASSWORD), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return testapp.post("/legacy/", body, headers=headers, status=status, expect_errors=True)


def _upload_parts(data: bytes, **extra: str) -> list[tuple[str, str | bytes, str | None]]:
    fields = {":action": "file_upload", "protocol_version": "1", "name": "Tiny-Thing", "version": "1.0"}
    fields |= {"filetype": "bdist_wheel", "sha256_digest": hashlib.sha256(data).hexdigest(), **extra}
    return [(k, v, None) for k, v in fields.items()] + [("content", data, WHEEL)]


def test_a_form_reads_as_webob_read_it():
    boundary = uuid.uuid4().hex
    body = _body([("a", "1", None), ("c", "x", None), ("c", "ÿ é", None), ("f", b"\x00bytes", "f.bin")], boundary)
    form = read_multipart(io.BytesIO(body), f"multipart/form-data; boundary={boundary}")
    assert form["a"] == "1" and form.getall("c") == ["x", "ÿ é"]
    assert form["f"].filename == "f.bin" and form["f"].file.read() == b"\x00bytes"


def test_an_upload_built_by_hand_is_stored(testapp, dbsession):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    boundary = uuid.uuid4().hex
    res = _post(testapp, _body(_upload_parts(data, classifiers="Programming Language :: Python"), boundary), boundary)
    assert res.status_int == 200, res.text
    assert services.find_file(dbsession, WHEEL) is not None


@pytest.mark.parametrize(
    "breakage",
    ["no closing boundary", "cut in a part", "bad header", "another boundary", "invalid UTF-8", "no boundary"],
)
def test_a_broken_form_is_400_and_writes_nothing(testapp, dbsession, breakage):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    boundary = uuid.uuid4().hex
    body = _body(_upload_parts(data), boundary)
    if breakage == "no closing boundary":
        body = body[: body.rindex(f"--{boundary}--".encode())]
    elif breakage == "cut in a part":
        body = body[: len(body) // 2]
    elif breakage == "bad header":
        body = body.replace(b'Content-Disposition: form-data; name="name"', b"Content-Disposition form-data", 1)
    elif breakage == "another boundary":
        body = body.replace(boundary.encode(), b"x" * 32)
    elif breakage == "invalid UTF-8":
        body = body.replace(b"Tiny-Thing", b"Tiny-\xff\xfe", 1)
    headers = {**basic("uploader", PASSWORD), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if breakage == "no boundary":
        headers["Content-Type"] = "multipart/form-data"
    res = testapp.post("/legacy/", body, headers=headers, expect_errors=True)
    assert res.status_int == 400, (res.status, res.text[:200])
    assert services.find_package(dbsession, "tiny-thing") is None


def test_too_many_parts_is_400(testapp, dbsession):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    boundary = uuid.uuid4().hex
    many = [("classifiers", "Programming Language :: Python", None)] * LIMITS["part_limit"]
    res = _post(testapp, _body(_upload_parts(data) + many, boundary), boundary)
    assert res.status_int == 400 and UNREADABLE in res.text
    assert services.find_package(dbsession, "tiny-thing") is None


def test_a_text_field_over_its_limit_is_400(testapp, dbsession):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    boundary = uuid.uuid4().hex
    res = _post(testapp, _body(_upload_parts(data, description="x" * (TEXT_LIMIT + 1)), boundary), boundary)
    assert res.status_int == 400 and UNREADABLE in res.text


def test_in_memory_parts_together_are_bounded(testapp, dbsession):
    # Each part under the spool limit (kept in memory), together over the memory limit.
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    boundary = uuid.uuid4().hex
    part = "y" * (LIMITS["spool_limit"] - 1)
    count = LIMITS["memory_limit"] // len(part) + 1
    res = _post(testapp, _body(_upload_parts(data) + [("keywords", part, None)] * count, boundary), boundary)
    assert res.status_int == 400 and UNREADABLE in res.text


def test_hundreds_of_classifiers_are_one_form(testapp, dbsession):
    make_user(dbsession, "uploader")
    data = _wheel("Tiny-Thing", "1.0", "x")
    res = upload(testapp, "uploader", PASSWORD, WHEEL, data, classifiers=None)
    assert res.status_int == 200
    boundary = uuid.uuid4().hex
    data = _wheel("Tiny-Thing", "1.1", "x")
    parts = _upload_parts(data, version="1.1")
    parts = [(n, v, f) for n, v, f in parts if n != "content"]
    parts += [("classifiers", "Programming Language :: Python", None)] * 500
    parts.append(("content", data, "tiny_thing-1.1-py3-none-any.whl"))
    res = _post(testapp, _body(parts, boundary), boundary)
    assert res.status_int == 200, res.text
