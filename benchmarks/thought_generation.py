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

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import tsu_core
from thought_diffusion import GenerationConfig, ThoughtDiffusionLM, generate, preset, read_text
from thought_diffusion.diffusion import autoregressive_loss
from thought_diffusion.tokenizer import ByteTokenizer, tokenizer_from_json
from thought_diffusion.train import load_checkpoint


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads)"


def emit(what: str, config: dict, value: float, unit: str) -> None:
    print(
        json.dumps(
            {"what": what, "config": config, "device": device_name(), "value": value, "unit": unit}
        ),
        flush=True,
    )


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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
    arguments = parser.parse_args()
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
    modes = {
        "one_per_step": GenerationConfig(
            length=arguments.length, mode="low_confidence", temperature=arguments.temperature
        ),
        "threshold": GenerationConfig(
            length=arguments.length,
            mode="threshold",
            threshold=arguments.threshold,
            temperature=arguments.temperature,
        ),
        "block_cached": GenerationConfig(
            length=arguments.length,
            mode="threshold",
            threshold=arguments.threshold,
            block_length=arguments.block_length,
            cache=True,
            temperature=arguments.temperature,
        ),
    }
    autocast = torch.autocast(device, torch.bfloat16, enabled=device == "cuda")
    for name, config in modes.items():
        with autocast:
            generate(model, prompt, config, 0)  # warm-up
        seconds, calls, outputs = [], [], []
        for repeat in range(arguments.repeats):
            synchronize()
            started = time.perf_counter()
            with autocast:
                tokens, counts = generate(model, prompt, config, 1 + repeat)
            synchronize()
            seconds.append(time.perf_counter() - started)
            calls.append(counts["model_calls"])
            outputs.append(tokens)
        median = statistics.median(seconds)
        settings = {
            "mode": name,
            "length": config.length,
            "prompt_length": len(prompt),
            "threshold": config.threshold if config.mode == "threshold" else None,
            "block_length": config.block_length,
            "temperature": config.temperature,
            "model_calls_median": statistics.median(calls),
            "parameters": model.num_parameters(),
            "trained": trained,
            "repeats": arguments.repeats,
            "batch": 1,
            "precision": "bf16 autocast" if device == "cuda" else "fp32",
            "backend": tsu_core.get_backend().name,
        }
        emit("generation_tokens_per_second", settings, config.length / median, "tokens/s")
        if scorer is not None:
            with torch.no_grad():
                nats = [float(autoregressive_loss(scorer, out)) / out.shape[1] for out in outputs]
            emit(
                "generated_text_ar_perplexity",
                settings,
                math.exp(statistics.mean(nats)),
                "perplexity",
            )
        sample = tokenizer.decode(outputs[0][0].tolist())
        logging.info("%s sample: %r", name, sample[:200])


if __name__ == "__main__":
    main()
