"""Atomic writes keep the old file or the new one, clean up after a failure, and checksums
change with a single flipped bit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tsu_core.files import atomic_write, remove_leftovers, sha256


def test_atomic_write_replaces_and_keeps_the_previous_file(tmp_path):
    target, previous = tmp_path / "state.bin", tmp_path / "state.prev.bin"
    atomic_write(target, lambda name: Path(name).write_bytes(b"first"), previous)
    assert target.read_bytes() == b"first" and not previous.exists()
    atomic_write(target, lambda name: Path(name).write_bytes(b"second"), previous)
    assert target.read_bytes() == b"second" and previous.read_bytes() == b"first"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.bin", "state.prev.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")

    def fill_the_disk(name: str) -> None:
        Path(name).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fill_the_disk, tmp_path / "state.prev.bin")
    assert [path.name for path in tmp_path.iterdir()] == ["state.bin"]
    assert target.read_bytes() == b"old"


def test_leftovers_of_a_killed_write_are_removed(tmp_path):
    target = tmp_path / "run[1]" / "state.bin"
    target.parent.mkdir()
    leftover = target.parent / ".state.bin.k2x9.tmp"
    others = [target.parent / ".other.bin.k2x9.tmp", target.parent / "state.bin"]
    for path in [leftover, *others]:
        path.write_bytes(b"x")
    assert remove_leftovers(target) == [leftover]
    assert not leftover.exists() and all(path.exists() for path in others)


def test_sha256_sees_one_flipped_bit(tmp_path):
    path = tmp_path / "data.bin"
    content = bytes(range(256)) * 5000  # more than one read chunk
    path.write_bytes(content)
    assert sha256(path) == hashlib.sha256(content).hexdigest()
    flipped = bytearray(content)
    flipped[1_000_000] ^= 1
    path.write_bytes(bytes(flipped))
    assert sha256(path) != hashlib.sha256(content).hexdigest()
