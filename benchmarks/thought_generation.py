"""Generation speed (tokens/s) of three decoding modes and their quality cost.

Modes, all on the same trained thought model (batch 1, a prompt from the validation text):

- `one_per_step`: LLaDA low-confidence remasking with one token committed per step
  (steps = length, the whole sequence re-encoded every step);
- `threshold`: Fast-dLLM confidence-aware parallel decoding (every token above `--threshold`);
- `block_cached`: the same, block by block (`--block-length`) with the prefix's keys and values
  cached per block.

Quality: the generated text's perplexity under the autoregressive model trained by
`thought_perplexity.py` (lower is better; the AR model's own validation perplexity is the
reference). Token draws go through the tsu-core categorical primitive of TSU_BACKEND.

    python benchmarks/thought_generation.py --out out/td      # after thought_perplexity.py
    python benchmarks/thought_generation.py --quick           # CPU, untrained tiny model
    python benchmarks/thought_generation.py --out out/td --compile none,reduce-overhead

`--compile` takes a comma-separated list of variants, run one after the other on the same
model and prompt: `none` (eager) or a `torch.compile` mode (`reduce-overhead`: CUDA graphs).
`--stack` gives the model a full thought stack (random thoughts), so the cost of the thought
path's cross-attention is part of the figure.

Prints JSON lines: {"what", "config", "device", "value", "unit"}; per mode and variant the
tokens per second and the milliseconds per model call (the whole step: model, draw, commit),
and per variant the milliseconds of the model's forward pass alone on the whole sequence (what
one step of `one_per_step` costs without the draw and the loop: the rest is overhead).
`--trace DIR` also writes a torch.profiler table of one generation per mode and variant, headed
by its wall time and the device's busy time (their gap is time the GPU waits for the host).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from _jsonl import emit_torch

import tsu_core
from thought_diffusion import (
    GenerationConfig,
    ThoughtDiffusionLM,
    ThoughtStack,
    compile_for_generation,
    generate,
    preset,
    read_text,
)
from thought_diffusion.checkpoint import load_checkpoint
from thought_diffusion.compiled import MODES as COMPILE_MODES
from thought_diffusion.diffusion import autoregressive_loss
from thought_diffusion.tokenizer import ByteTokenizer, tokenizer_from_json


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def full_stack(model: ThoughtDiffusionLM, device: str) -> ThoughtStack:
    """A stack with every slot held by a random thought (the thought path's largest cost)."""
    config = model.config
    stack = ThoughtStack.empty(1, config).to(device)
    generator = torch.Generator(device).manual_seed(0)
    shape = (1, config.thought_height, config.thought_width, config.thought_channels)
    for _ in range(config.stack_size):
        thought = torch.randn(shape, generator=generator, device=device)
        stack = stack.push(thought, torch.zeros(1, device=device))
    return stack


def decoding_modes(arguments: argparse.Namespace) -> dict[str, GenerationConfig]:
    """The modes named by --modes."""
    common = dict(length=arguments.length, temperature=arguments.temperature)
    threshold = dict(mode="threshold", threshold=arguments.threshold)
    modes = {
        "one_per_step": GenerationConfig(mode="low_confidence", **common),
        "threshold": GenerationConfig(**threshold, **common),
        "block_cached": GenerationConfig(
            **threshold, block_length=arguments.block_length, cache=True, **common
        ),
    }
    return {name: modes[name] for name in arguments.modes.split(",")}


def measure(
    model: ThoughtDiffusionLM,
    prompt: list[int],
    config: GenerationConfig,
    stack: ThoughtStack | None,
    repeats: int,
) -> tuple[float, float, list[torch.Tensor]]:
    """Median seconds and model calls of `repeats` generations (after a warm-up), and outputs."""
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=torch.cuda.is_available())
    with autocast:
        generate(model, prompt, config, 0, stack)  # warm-up: compiles, captures graphs
    seconds, calls, outputs = [], [], []
    for repeat in range(repeats):
        synchronize()
        started = time.perf_counter()
        with autocast:
            tokens, counts = generate(model, prompt, config, 1 + repeat, stack)
        synchronize()
        seconds.append(time.perf_counter() - started)
        calls.append(counts["model_calls"])
        outputs.append(tokens)
    return statistics.median(seconds), statistics.median(calls), outputs


def time_forward(
    model: ThoughtDiffusionLM, length: int, stack: ThoughtStack | None, repeats: int = 50
) -> float:
    """Median milliseconds of one forward pass on `length` tokens, as generation calls it."""
    tokens = torch.randint(0, model.config.mask_id, (1, length), device=model.head.weight.device)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=torch.cuda.is_available())
    milliseconds = []
    with torch.inference_mode(), autocast:
        memory = model.project(model.read(stack)) if stack is not None else None
        for _ in range(3):
            model(tokens, memory, validate=False)  # warm-up: compiles, captures graphs
        for _ in range(repeats):
            synchronize()
            started = time.perf_counter()
            model(tokens, memory, validate=False)
            synchronize()
            milliseconds.append(1000 * (time.perf_counter() - started))
    return statistics.median(milliseconds)


def trace(
    model: ThoughtDiffusionLM,
    prompt: list[int],
    config: GenerationConfig,
    stack: ThoughtStack | None,
    path: Path,
) -> None:
    """A torch.profiler table (by device time) of one generation, with wall and busy time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=torch.cuda.is_available())
    with torch.profiler.profile(activities=activities) as profiler, autocast:
        started = time.perf_counter()
        _, counts = generate(model, prompt, config, 99, stack)
        synchronize()
        wall = 1000 * (time.perf_counter() - started)
    kernels = [e for e in profiler.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(kernel.time_range.elapsed_us() for kernel in kernels) / 1000
    averages = profiler.key_averages()
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    header = (
        f"{counts['model_calls']} model calls; wall {wall:.1f} ms under the profiler; "
        f"device busy {busy:.1f} ms (kernels' self time)\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".txt").write_text(header + averages.table(sort_by=sort, row_limit=40))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default="out/thought-diffusion", help="thought_perplexity.py's --out"
    )
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="untrained tiny model on the CPU")
    parser.add_argument("--modes", default="one_per_step,threshold,block_cached")
    parser.add_argument(
        "--compile",
        default="none",
        help="comma-separated variants to A/B: none (eager) or torch.compile modes",
    )
    parser.add_argument("--stack", action="store_true", help="condition on a full thought stack")
    parser.add_argument("--trace", type=Path, help="write profiler tables and traces here")
    arguments = parser.parse_args()
    variants = arguments.compile.split(",")
    for variant in variants:
        if variant != "none" and variant not in COMPILE_MODES:
            raise SystemExit(f"--compile: expected none or one of {COMPILE_MODES}, got {variant}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    checkpoint = Path(arguments.out) / "thought" / "checkpoint.safetensors"
    if arguments.quick or not checkpoint.exists():
        if not arguments.quick:
            raise SystemExit(f"no checkpoint at {checkpoint}; run thought_perplexity.py first")
        torch.manual_seed(0)
        model = ThoughtDiffusionLM(preset("tiny")).to(device)
        tokenizer = ByteTokenizer()
        arguments.length, arguments.block_length, arguments.repeats = 32, 8, 2
        trained = False
    else:
        model, extra = load_checkpoint(checkpoint, device)
        tokenizer = tokenizer_from_json(extra["tokenizer"])
        trained = True
    model.eval()
    scorer = None
    ar_checkpoint = Path(arguments.out) / "autoregressive" / "checkpoint.safetensors"
    if ar_checkpoint.exists() and not arguments.quick:
        scorer, _ = load_checkpoint(ar_checkpoint, device)
        scorer.eval()
    text = read_text(arguments.data)
    ids = tokenizer.encode(text[int(0.95 * len(text)) :])
    prompt = ids[: arguments.prompt_length]
    stack = full_stack(model, device) if arguments.stack else None
    for variant in variants:
        if "forward" in vars(model):
            del model.forward  # back to the eager forward
        if variant != "none":
            torch._dynamo.config.cache_size_limit = 64  # a graph per block length is expected
            compile_for_generation(model, variant)
        sequence = len(prompt) + arguments.length
        forward = time_forward(model, sequence, stack)
        settings = {"compile": variant, "tokens": sequence, "thought_stack": stack is not None}
        emit_torch("model_forward_ms", settings, forward, "ms")
        for name, config in decoding_modes(arguments).items():
            median, calls, outputs = measure(model, prompt, config, stack, arguments.repeats)
            settings = {
                "mode": name,
                "compile": variant,
                "thought_stack": stack is not None,
                "length": config.length,
                "prompt_length": len(prompt),
                "threshold": config.threshold if config.mode == "threshold" else None,
                "block_length": config.block_length,
                "temperature": config.temperature,
                "model_calls_median": calls,
                "parameters": model.num_parameters(),
                "trained": trained,
                "repeats": arguments.repeats,
                "batch": 1,
                "precision": "bf16 autocast" if device == "cuda" else "fp32",
                "backend": tsu_core.get_backend().name,
            }
            emit_torch("generation_tokens_per_second", settings, config.length / median, "tokens/s")
            emit_torch("generation_ms_per_model_call", settings, 1000 * median / calls, "ms")
            if scorer is not None:
                with torch.no_grad():
                    nats = [
                        float(autoregressive_loss(scorer, out)) / out.shape[1] for out in outputs
                    ]
                perplexity = math.exp(statistics.mean(nats))
                emit_torch("generated_text_ar_perplexity", settings, perplexity, "perplexity")
            sample = tokenizer.decode(outputs[0][0].tolist())
            logging.info("%s %s sample: %r", variant, name, sample[:200])
            if arguments.trace is not None:
                trace(model, prompt, config, stack, arguments.trace / f"{variant}-{name}")


if __name__ == "__main__":
    main()
