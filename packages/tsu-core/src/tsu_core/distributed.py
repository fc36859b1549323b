"""Data-parallel training across processes with `torch.distributed` (torchrun): the gradient
average every rank applies before its optimiser step.

torch is imported when a function is called, never when this module is imported (tsu-core
depends on numpy only); the model packages that train with torch call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def average_gradients(parameters: Iterable[Any], zero_missing: bool = False) -> None:
    r"""Replace each parameter's gradient by its mean over the processes of the default group:

    $$g \leftarrow \frac{1}{W} \sum_{r=1}^{W} g_r$$

    one all-reduce (sum) per parameter, then a division by the world size W, in place.

    Arguments:
        parameters: torch parameters (e.g. `model.parameters()`), in the same order on every
            rank.
        zero_missing: a parameter without a gradient takes zeros and joins the all-reduce (so
            that every rank issues the same collectives even when one rank's loss did not
            reach it); otherwise it is left without a gradient and skipped (every rank must
            then agree on which parameters have gradients).
    """
    import torch
    from torch import distributed

    world_size = distributed.get_world_size()
    for parameter in parameters:
        if parameter.grad is None:
            if not zero_missing:
                continue
            parameter.grad = torch.zeros_like(parameter)
        distributed.all_reduce(parameter.grad)
        parameter.grad /= world_size
