"""Checkpoints verified on load: a flipped byte in the newest step falls back to the previous
intact step with one warning, all damaged is one `CheckpointError`, steps without a manifest
are unverified (older than every manifest) or cut off (newer than one)."""

from __future__ import annotations

import logging

import jax.numpy as jnp
import numpy as np
import pytest

from xut_flow.checkpoints import MANIFEST, CheckpointError, Checkpoints


def _state(value: float):
    return {"weight": jnp.full((64, 64), value, jnp.float32), "bias": jnp.arange(8.0) + value}


def _largest_file(step_directory):
    """The largest of the files holding the arrays' bytes (Orbax's OCDBT data files)."""
    return max(step_directory.rglob("ocdbt.process_*/d/*"), key=lambda path: path.stat().st_size)


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def saved(tmp_path):
    """Steps 1, 2, 3 (state filled with 1.0, 2.0, 3.0) saved and closed."""
    checkpoints = Checkpoints(tmp_path / "checkpoints", keep_steps=3)
    for step in (1, 2, 3):
        directory = checkpoints.save(step, _state(float(step)))
        assert (directory / MANIFEST).is_file()
    checkpoints.close()
    return tmp_path / "checkpoints"


def _restore(directory):
    checkpoints = Checkpoints(directory, keep_steps=3)
    try:
        return checkpoints.restore_latest(_state(0.0))
    finally:
        checkpoints.close()


def test_intact_newest_step_is_restored(saved, caplog):
    step, state = _restore(saved)
    assert step == 3
    np.testing.assert_array_equal(state["weight"], np.full((64, 64), 3.0))
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_flipped_byte_in_newest_step_falls_back_to_previous(saved, caplog):
    _flip_byte(_largest_file(saved / "steps" / "3"))
    step, state = _restore(saved)
    assert step == 2
    np.testing.assert_array_equal(state["bias"], np.arange(8.0) + 2.0)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "steps/3" in message and "differs from its SHA-256" in message
    assert "resuming from step steps/2" in message and "\n" not in message


def test_all_steps_damaged_is_one_line_error(saved):
    for step in (1, 2, 3):
        _flip_byte(_largest_file(saved / "steps" / str(step)))
    with pytest.raises(CheckpointError) as error:
        _restore(saved)
    message = str(error.value)
    assert "no intact checkpoint" in message and "\n" not in message
    assert all(f"steps/{step}" in message for step in (1, 2, 3))


def test_step_without_manifest_newer_than_one_with_is_skipped(saved, caplog):
    (saved / "steps" / "3" / MANIFEST).unlink()  # a save cut off before its manifest
    step, _ = _restore(saved)
    assert step == 2
    assert "steps/3: no manifest" in caplog.text


def test_steps_saved_before_manifests_load_with_a_warning(saved, caplog):
    for step in (1, 2, 3):
        (saved / "steps" / str(step) / MANIFEST).unlink()
    step, _ = _restore(saved)
    assert step == 3
    assert "not verified" in caplog.text
