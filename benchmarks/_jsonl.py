"""The JSON lines every benchmark prints: one object per measurement, with `what`, `config`,
`device`, `value` and `unit` (README.md), and the device descriptions they carry.

Scripts import it as a sibling module (`from _jsonl import emit_jax`): Python puts a script's
own folder on the import path.
"""

from __future__ import annotations

import json
from typing import Any


def emit(what: str, config: dict[str, Any], value: float | None, unit: str, device: str) -> dict:
    """Print one JSON line (keys what, config, device, value, unit) and return it.

    Arguments:
        what: the quantity measured.
        config: what was measured on: sizes, dtypes, backend.
        value: the measurement (numpy and JAX scalars are written as floats; None as null).
        unit: its unit ("s", "ms", "ratio", ...).
        device: where it ran, as `jax_device` or `torch_device` describe it.
    """
    record = {
        "what": what,
        "config": config,
        "device": device,
        "value": value if isinstance(value, int | float | None) else float(value),
        "unit": unit,
    }
    print(json.dumps(record), flush=True)
    return record


def emit_jax(what: str, config: dict[str, Any], value: float, unit: str) -> dict:
    """`emit` a measurement taken on JAX's first device (the value as a float)."""
    return emit(what, config, float(value), unit, jax_device())


def emit_torch(
    what: str, config: dict[str, Any], value: float, unit: str, device: Any = None
) -> dict:
    """`emit` a measurement taken with torch on `device` (None: the GPU if there is one)."""
    return emit(what, config, value, unit, torch_device(device))


def jax_device() -> str:
    """JAX's first device as "platform:kind", e.g. "gpu:NVIDIA H100 80GB HBM3" or "cpu:cpu"."""
    import jax

    device = jax.devices()[0]
    return f"{device.platform}:{getattr(device, 'device_kind', device.platform)}"


def torch_device(device: Any = None) -> str:
    """A torch device as its GPU's name, or "cpu (N threads)"; None: the GPU if there is one."""
    import torch

    if torch.cuda.is_available() if device is None else torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
