"""A proxied file's first download followed as it grows (myapp.upstream.growing):
a follower gets each chunk as the leader writes it, the last only after the
leader's verdict, and is cut short when the fetch is not verified."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from myapp.upstream.growing import Abandoned, Fetches, Growing

CHUNK = 4


def _leader(path: Path, growing: Growing, parts: list[bytes], steps: list[threading.Event]) -> threading.Thread:
    """Writes one part per step, saying how far it got after each."""

    def run() -> None:
        written = 0
        with path.open("ab") as out:
            for part, step in zip(parts, steps, strict=True):
                step.wait(timeout=10)
                out.write(part)
                out.flush()
                written += len(part)
                growing.advance(written)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _opened(path: Path) -> tuple[Growing, BinaryIO]:
    """A fetch's empty temporary file, and a follower's handle on it."""
    path.write_bytes(b"")
    growing = Growing(path)
    source = growing.open()
    assert source is not None
    return growing, source


def test_a_follower_gets_each_chunk_as_it_is_written_and_the_last_after_the_verdict(tmp_path):
    path = tmp_path / "upload-x"
    growing, source = _opened(path)
    parts = [b"aaaa", b"bbbb", b"cc"]
    steps = [threading.Event() for _ in parts]
    leader = _leader(path, growing, parts, steps)
    body = growing.follow(source, CHUNK, patience=10)

    steps[0].set()
    steps[1].set()
    assert next(body) == b"aaaa"  # sent while the file still grows: "bbbb" is held back
    steps[2].set()
    leader.join(timeout=10)
    assert next(body) == b"bbbb"  # "cc" is the last chunk so far: held until the verdict
    growing.settle(True)
    assert list(body) == [b"cc"]


def test_a_fetch_not_verified_cuts_the_follower_short(tmp_path):
    path = tmp_path / "upload-y"
    growing, source = _opened(path)
    steps = [threading.Event(), threading.Event()]
    for step in steps:
        step.set()
    _leader(path, growing, [b"good", b"bad!"], steps).join(timeout=10)
    growing.settle(False)
    received = []
    with pytest.raises(Abandoned):
        for chunk in growing.follow(source, CHUNK, patience=10):
            received.append(chunk)
    assert b"".join(received) != b"goodbad!"  # never the whole file


def test_a_stalled_fetch_and_a_settled_or_missing_file_are_not_followed(tmp_path):
    path = tmp_path / "upload-z"
    growing, source = _opened(path)
    with pytest.raises(Abandoned, match="nothing came"):
        next(growing.follow(source, CHUNK, patience=0.05))
    growing.settle(True)
    assert growing.open() is None  # done: the caller serves the stored file
    assert Growing(tmp_path / "gone").open() is None


def test_the_process_keeps_each_fetch_until_its_leader_ends_it(tmp_path):
    fetches = Fetches()
    first = fetches.start(7, tmp_path / "a")
    assert fetches.get(7) is first and fetches.get(8) is None
    second = fetches.start(7, tmp_path / "b")  # a later fetch of the same file (the first one failed)
    fetches.end(7, first)  # the first leader's late cleanup leaves the second alone
    assert fetches.get(7) is second
    fetches.end(7, second)
    assert fetches.get(7) is None
