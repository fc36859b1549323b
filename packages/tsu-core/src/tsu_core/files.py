"""Files written whole or not at all, and their SHA-256: the checkpoint standard of the stack.

`atomic_write` writes to a temporary name beside the target, flushes it to disk and renames it
over the target, so a reader sees the old file or the new one, never half of one (optionally
keeping the old one under another name); a write that fails (a full disk) removes its temporary
file, so the next write has the space it had.
`remove_leftovers` clears the temporary files of a process killed mid-write. `sha256` is the
checksum that checkpoints record and verify on load, so a flipped byte or a truncated file is
caught instead of resumed from.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    path: str | Path, write: Callable[[str], object], previous: str | Path | None = None
) -> None:
    """Create or replace `path` with what `write(temporary_name)` writes, atomically.

    The temporary file is `.<name>.<random>.tmp` in the same directory (a rename within one
    file system is atomic); it is removed if `write`, the flush or the rename fails. With
    `previous`, the file being replaced is renamed to it just before the new one takes its
    place (a crash between the two renames leaves the old file there and none at `path`).
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def remove_leftovers(path: str | Path) -> list[Path]:
    """Delete the temporary files that `atomic_write(path, ...)` left behind when its process
    was killed mid-write; returns them."""
    path = Path(path)
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")
    leftovers = [Path(name) for name in sorted(glob.glob(pattern))]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
