"""Device names as the protocol spells them: "cpu", "cuda:0", "cuda:1", ...

JAX calls an NVIDIA GPU's platform "gpu" and torch calls it "cuda". `Capabilities.devices` and
the line a command starts with (`announce`) use torch's spelling whichever framework samples, so
that a user reads one name for one GPU. The host's CPU is one device, "cpu", however many
devices JAX simulates on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def device_name(device: Any) -> str:
    """The protocol's name of a JAX device or a torch device.

    Arguments:
        device: a `jax.Device` (its `platform` and `id`) or a `torch.device` (its `type` and
            `index`).

    Returns:
        "cpu" for the host, "cuda:N" for GPU N, "<platform>:N" for any other accelerator
        (a torch device without an index keeps its bare type, "cuda").
    """
    platform = getattr(device, "platform", None)
    if platform is not None:
        kind, index = ("cuda" if platform == "gpu" else platform), device.id
    else:
        kind, index = device.type, device.index
    if kind == "cpu":
        return "cpu"
    return kind if index is None else f"{kind}:{index}"


def device_names(devices: Iterable[Any]) -> tuple[str, ...]:
    """The protocol's names of `devices`, in order, each once (the value of
    `Capabilities.devices`)."""
    return tuple(dict.fromkeys(device_name(device) for device in devices))
