"""What the package's small NNX models share: setting a variable, applying a model to an array
in batches, and weights as safetensors (flat names, a JSON description in the metadata)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def assign(variable: nnx.Variable, value: jax.Array) -> None:
    """Set a variable's value (flax >= 0.12 `set_value`, older `.value =`)."""
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value


def in_batches(function: Callable[[jax.Array], jax.Array], array: np.ndarray, batch_size: int):
    """`function` (jitted once) applied to float32 batches of `array` (N, ...), concatenated."""
    compiled = jax.jit(function)
    parts = [
        np.asarray(compiled(jnp.asarray(array[start : start + batch_size], jnp.float32)))
        for start in range(0, len(array), batch_size)
    ]
    return np.concatenate(parts)


def save_module(module: nnx.Module, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Weights of `module` as safetensors, each `metadata` value (what rebuilds the module) as
    JSON; written to a temporary file and renamed, so a crash never leaves a partial file."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {
        ".".join(str(part) for part in key): np.asarray(value)
        for key, value in nnx.to_flat_state(nnx.state(module))
    }
    temporary = path.with_suffix(path.suffix + ".tmp")
    encoded = {key: json.dumps(value) for key, value in metadata.items()}
    save_file(flat, str(temporary), metadata=encoded)
    os.replace(temporary, path)
    return path


def load_module(path: str | Path, build: Callable[[dict[str, Any]], nnx.Module]) -> Any:
    """A module saved by `save_module`: `build(metadata)` makes it, the weights fill it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata = {key: json.loads(value) for key, value in handle.metadata().items()}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    module = build(metadata)
    state = nnx.state(module)
    for key, variable in nnx.to_flat_state(state):
        assign(variable, jnp.asarray(tensors[".".join(str(part) for part in key)]))
    nnx.update(module, state)
    return module
