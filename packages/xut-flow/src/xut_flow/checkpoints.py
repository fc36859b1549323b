"""Orbax checkpoints of a training run, each step verified on load by a SHA-256 manifest.

A run keeps two Orbax managers under `checkpoints/`: `steps/` (the last few) and `epochs/`
(all). Orbax has no checksum of its own: a flipped byte in an array file restores silently as a
wrong number, and a damaged file gives a raw Orbax traceback. So after Orbax has written a step,
`sha256.json` beside its files records the SHA-256 of every one of them (written atomically with
`tsu_core.files`), and `restore_latest` checks the newest step against it before restoring.

A step that fails its check, has lost its manifest, or that Orbax cannot read is skipped, and
the newest intact step is restored instead, with one warning naming what was skipped; when no
step is intact, `CheckpointError` says so in one line. Steps written before manifests existed
(older than every step that has one) restore with a warning that they are not verified; a step
without a manifest that is newer than one with a manifest was cut off between Orbax's write and
the manifest's, and counts as unverifiable.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import jax

from tsu_core.files import atomic_write, remove_leftovers, sha256

logger = logging.getLogger(__name__)

MANIFEST = "sha256.json"


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be restored: each is damaged, unverifiable or unreadable."""


class Candidate(NamedTuple):
    """One saved step: its number and the directory Orbax wrote it to."""

    step: int
    directory: Path


def write_manifest(step_directory: Path) -> Path:
    """Record the SHA-256 of every file under a step's directory in its `sha256.json`."""
    files = {
        path.relative_to(step_directory).as_posix(): sha256(path)
        for path in sorted(step_directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST and not path.name.startswith(f".{MANIFEST}.")
    }
    target = step_directory / MANIFEST
    atomic_write(target, lambda name: Path(name).write_text(json.dumps({"files": files})))
    return target


def manifest_problem(step_directory: Path) -> str | None:
    """What is wrong with a step's files against its manifest (None: all match).

    A missing, altered or added file is a problem, and so is an unreadable manifest.
    """
    try:
        recorded: dict[str, str] = json.loads((step_directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its manifest is unreadable ({type(error).__name__})"
    present = {
        path.relative_to(step_directory).as_posix()
        for path in step_directory.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    for name, digest in sorted(recorded.items()):
        if name not in present:
            return f"{name} is missing"
        if sha256(step_directory / name) != digest:
            return f"{name} differs from its SHA-256 recorded at save"
    added = sorted(present - set(recorded))
    if added:
        return f"{added[0]} was not part of the save"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    return f"{type(error).__name__}: {line[:200]}" if line else type(error).__name__


class Checkpoints:
    """The two Orbax managers of a run: `steps/` (keep the last k) and `epochs/` (keep all).

    The saved item is the flat list of (params, opt_state) leaves, so restoring needs only a
    freshly initialised state of the same structure. Saves are synchronous, so that the
    manifest written after one hashes the files Orbax has finished writing.
    """

    def __init__(self, directory: str | Path, keep_steps: int) -> None:
        # Imported here so that the model, loss and jitted step work without Orbax installed.
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.steps = ocp.CheckpointManager(
            self.directory / "steps",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_steps, create=True, enable_async_checkpointing=False
            ),
        )
        self.epochs = ocp.CheckpointManager(
            self.directory / "epochs",
            options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False),
        )
        for candidate in self._candidates():
            remove_leftovers(candidate.directory / MANIFEST)

    @staticmethod
    def _item(state: Any) -> dict[str, Any]:
        return {f"{index:06d}": leaf for index, leaf in enumerate(jax.tree.leaves(state))}

    def _manager(self, directory: Path) -> Any:
        return self.epochs if directory.parent.name == "epochs" else self.steps

    def _candidates(self) -> list[Candidate]:
        """Every saved step, newest first (a step in `steps/` before the same one in
        `epochs/`)."""
        found = [
            Candidate(step, self.directory / kind / str(step))
            for kind, manager in (("steps", self.steps), ("epochs", self.epochs))
            for step in manager.all_steps()
        ]
        return sorted(found, key=lambda c: (c.step, c.directory.parent.name == "steps"))[::-1]

    def save(self, step: int, state: Any, *, epoch_end: bool = False) -> Path | None:
        """Save `state` as `step` (in `epochs/` at an epoch end) and its manifest; returns the
        step's directory, or None when that step was already saved there."""
        kind, manager = ("epochs", self.epochs) if epoch_end else ("steps", self.steps)
        if manager.latest_step() == step:
            return None
        manager.save(step, args=self._ocp.args.StandardSave(self._item(state)))
        manager.wait_until_finished()
        directory = self.directory / kind / str(step)
        if jax.process_index() == 0:
            write_manifest(directory)
        return directory

    def latest(self) -> int | None:
        """The newest saved step, intact or not (None: nothing saved)."""
        candidates = self._candidates()
        return candidates[0].step if candidates else None

    def restore(self, step_directory: Path, template: Any) -> Any:
        """The state saved in `step_directory`, with `template`'s structure, dtypes and
        shardings (not verified: `restore_latest` verifies)."""
        leaves, treedef = jax.tree.flatten(template)
        abstract = {
            f"{index:06d}": jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
            for index, leaf in enumerate(leaves)
        }
        manager = self._manager(step_directory)
        restored = manager.restore(
            int(step_directory.name), args=self._ocp.args.StandardRestore(abstract)
        )
        return jax.tree.unflatten(treedef, [restored[f"{i:06d}"] for i in range(len(leaves))])

    def restore_latest(self, template: Any) -> tuple[int, Any] | None:
        """(step, state) of the newest intact checkpoint; None when nothing was saved.

        Damaged, unverifiable and unreadable steps newer than it are skipped and named in one
        warning.

        Raises:
            CheckpointError: checkpoints exist but none can be restored (naming each).
        """
        candidates = self._candidates()
        if not candidates:
            return None
        verified = [(c.directory / MANIFEST).is_file() for c in candidates]
        skipped: list[str] = []
        for index, candidate in enumerate(candidates):
            where = f"{candidate.directory.parent.name}/{candidate.step}"
            if verified[index]:
                problem = manifest_problem(candidate.directory)
            elif any(verified[index + 1 :]):
                problem = "no manifest (its save was cut off)"
            else:
                problem = None
            if problem is None:
                try:
                    state = self.restore(candidate.directory, template)
                except Exception as error:  # Orbax raises many types for a damaged step.
                    problem = f"Orbax cannot read it ({_first_line(error)})"
            if problem is not None:
                skipped.append(f"step {where}: {problem}")
                continue
            if skipped:
                logger.warning(
                    "%s: skipped damaged checkpoints (%s); resuming from step %s instead",
                    self.directory,
                    "; ".join(skipped),
                    where,
                )
            if not verified[index]:
                logger.warning(
                    "%s: step %s was saved before checkpoints had manifests; not verified",
                    self.directory,
                    where,
                )
            return candidate.step, state
        raise CheckpointError(
            f"{self.directory}: no intact checkpoint ({'; '.join(skipped)}); train again into "
            "another directory, or restore these from a copy"
        )

    def close(self) -> None:
        for manager in (self.steps, self.epochs):
            manager.wait_until_finished()
            manager.close()
