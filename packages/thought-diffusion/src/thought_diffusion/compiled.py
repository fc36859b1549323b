"""A compiled forward pass for generation (opt-in): `torch.compile`, with CUDA graphs in
mode 'reduce-overhead'.

Generation calls the model once per decoding step on a few hundred tokens, so on a GPU each
call costs its kernel launches, not its FLOPs. Compiling fuses the elementwise work, and CUDA
graphs replay a whole call with one launch. Shapes are static within a mode (the whole
sequence, or one block against a prefix of each length), so each shape is captured once.

    compile_for_generation(model, "reduce-overhead")
    tokens, counts = generate(model, prompt, config, key)
"""

from __future__ import annotations

from typing import Any

import torch

from thought_diffusion.model import ThoughtDiffusionLM

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_for_generation(model: ThoughtDiffusionLM, mode: str = "reduce-overhead") -> None:
    """Replace `model.forward` (in place) by a compiled one whose outputs are ordinary tensors.

    CUDA-graph outputs live in a pool the next replay overwrites; generation keeps the prefix
    keys and values across calls, so every output is copied out of the pool (a few small copies
    per call, against hundreds of launches saved). Undo with `del model.forward`.

    Arguments:
        model: the model, in eval mode, on its device.
        mode: a `torch.compile` mode (one of `MODES`).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    compiled = torch.compile(model.forward, mode=mode)
    graphs = mode in ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs

    def forward(*args: Any, **kwargs: Any) -> Any:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        logits, hidden, cache = compiled(*args, **kwargs)
        if not graphs:
            return logits, hidden, cache
        copied = None if cache is None else [(k.clone(), v.clone()) for k, v in cache]
        return logits.clone(), None if hidden is None else hidden.clone(), copied

    model.forward = forward
