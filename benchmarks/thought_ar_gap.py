"""Masked diffusion against autoregression at equal tokens and at equal time, each at its best rate.

The diffusion model (the baseline without thoughts: the gap is about the objective) and the
autoregressive twin (the same network with a causal mask) are each trained at every learning
rate of `--learning-rates` for the same `--steps` (so the same tokens), with the cosine decay
planned for those steps. Validation: the diffusion model's perplexity bound (MDLM negative
ELBO) and the AR model's exact perplexity, on the same held-out batches. Then the AR model is
trained once more at its best rate for the steps that fit the best diffusion run's training
time (equal time, a schedule planned for it).

The gap is `diffusion bound / AR perplexity - 1` in percent. Published gaps at equal tokens, for
reference (positive: diffusion behind): MDLM 23.21 vs AR 17.54 on OpenWebText (+32%), 23.00 vs
20.86 on LM1B (+10%); on text8 SEDD and MD4 are 11-13% behind AR in bits per character.

    python benchmarks/thought_ar_gap.py --preset tiny --steps 1500 --turn-length 128   # CPU
    python benchmarks/thought_ar_gap.py --preset small --steps 4000                    # GPU
    python benchmarks/thought_ar_gap.py --quick                                        # seconds

Prints JSON lines: one `val_perplexity` per run, then `gap_equal_tokens_percent` and
`gap_equal_time_percent`, each {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys

from _jsonl import emit_torch
from thought_perplexity import train_and_evaluate

from thought_diffusion import read_text

MODELS = {"diffusion": "baseline", "autoregressive": "autoregressive"}


def train(kind: str, rate: float, steps: int, arguments: argparse.Namespace, text: str) -> dict:
    """One run; emits and returns its config with the validation perplexity."""
    settings = copy.copy(arguments)
    settings.learning_rate, settings.max_steps = rate, steps
    settings.out = f"{arguments.out}/{kind}-{rate:g}-{steps}"
    config, result, _ = train_and_evaluate(MODELS[kind], settings, text)
    config |= {"objective": kind, "perplexity": result["perplexity"]}
    what = "val_perplexity_bound" if kind == "diffusion" else "val_perplexity"
    emit_torch(what, config, result["perplexity"], "perplexity")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--out", default="out/ar-gap")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--tokenizer", default="byte", choices=["byte", "bpe"])
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=1500, help="per run (equal tokens)")
    parser.add_argument("--learning-rates", default="3e-4,1e-3,3e-3", help="swept for both")
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--turn-length", type=int, default=128)
    parser.add_argument("--num-turns", type=int, default=1)
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a CPU run of seconds")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.steps, arguments.warmup_steps, arguments.batch_size = 6, 2, 4
        arguments.turn_length, arguments.eval_batches = 32, 2
        arguments.learning_rates = "1e-3,3e-3"
    # What `train_and_evaluate` reads and this script does not vary.
    arguments.minutes, arguments.eval_interval = 0.0, 10**9
    rates = [float(rate) for rate in arguments.learning_rates.split(",")]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    text = read_text(arguments.data)

    runs = {
        kind: [train(kind, rate, arguments.steps, arguments, text) for rate in rates]
        for kind in MODELS
    }
    best = {kind: min(configs, key=lambda c: c["perplexity"]) for kind, configs in runs.items()}
    diffusion, autoregressive = best["diffusion"], best["autoregressive"]
    summary = {
        "preset": arguments.preset,
        "turns": diffusion["turns"],
        "batch_size": arguments.batch_size,
        "learning_rates": arguments.learning_rates,
        "diffusion": {k: diffusion[k] for k in ("learning_rate", "steps", "train_seconds")},
    }
    gap = 100 * (diffusion["perplexity"] / autoregressive["perplexity"] - 1)
    emit_torch(
        "gap_equal_tokens_percent",
        summary | {"autoregressive": {k: autoregressive[k] for k in ("learning_rate", "steps")}},
        gap,
        "percent (diffusion bound / AR perplexity - 1)",
    )
    # Equal time: the AR run at its best rate, for the steps that fit the diffusion run's time.
    seconds_per_step = autoregressive["train_seconds"] / autoregressive["steps"]
    steps = max(1, round(diffusion["train_seconds"] / seconds_per_step))
    timed = train("autoregressive", autoregressive["learning_rate"], steps, arguments, text)
    gap = 100 * (diffusion["perplexity"] / timed["perplexity"] - 1)
    emit_torch(
        "gap_equal_time_percent",
        summary | {"autoregressive": {k: timed[k] for k in ("learning_rate", "steps")}},
        gap,
        "percent (diffusion bound / AR perplexity - 1)",
    )


if __name__ == "__main__":
    main()
