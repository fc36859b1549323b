"""Validation perplexity bound of the thought model, the baseline and the AR model, equal time.

Trains one model (`--model thought | baseline | autoregressive`, or `all` one after another)
for a fixed wall-clock budget on the same data, tokenizer, turn layout and batch size, then
reports on the validation split (last 10% of the text):

- `val_perplexity_bound`: exp(nats/token); the MDLM negative-ELBO bound (Monte Carlo over t and
  masks, fixed seed) for the diffusion models, the exact next-token NLL for the AR model;
- `val_perplexity_bound_turns_after_first`: the same over turns 2..T, where thoughts can help;
- `recall_accuracy` (diffusion models): the multi-turn task whose last turn repeats the first
  (see `thought_multiturn.py` for the full evaluation);
- parameters (total and thought path), steps and tokens seen.

    python benchmarks/thought_perplexity.py --model thought --minutes 8 --out out/td   # H100
    python benchmarks/thought_perplexity.py --quick                                    # CPU

Checkpoints land in `--out/<model>/checkpoint.safetensors` for the other two scripts.
Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import torch
from _jsonl import emit_torch

from thought_diffusion import TokenData, TrainConfig, build_tokenizer, preset, read_text
from thought_diffusion.train import evaluate, recall_accuracy, train_model

MODELS = ("thought", "baseline", "autoregressive")


def train_and_evaluate(
    name: str, arguments: argparse.Namespace, text: str
) -> tuple[dict, dict, float | None]:
    """Train `name` as `arguments` say; return the figures' config, `evaluate`'s result and the
    repeat task's accuracy (None for the AR model)."""
    tokenizer = build_tokenizer(arguments.tokenizer, text, arguments.vocab_size)
    data = TokenData(tokenizer.encode(text))
    model_config = preset(
        arguments.preset,
        vocab_size=tokenizer.vocab_size,
        use_thoughts=name == "thought",
        max_length=arguments.turn_length + 32,  # room for a prompt before a full-turn answer
    )
    train = TrainConfig(
        objective="autoregressive" if name == "autoregressive" else "diffusion",
        batch_size=arguments.batch_size,
        turn_length=arguments.turn_length,
        num_turns=arguments.num_turns,
        steps=arguments.max_steps,
        warmup_steps=arguments.warmup_steps,
        learning_rate=arguments.learning_rate,
        max_minutes=arguments.minutes,
        eval_interval=arguments.eval_interval,
        eval_batches=arguments.eval_batches,
        checkpoint_interval=10**9,
        precision="bf16" if torch.cuda.is_available() else "fp32",
        seed=arguments.seed,
    )
    output = Path(arguments.out) / name
    for stale in ("log.csv", "checkpoint.safetensors"):
        (output / stale).unlink(missing_ok=True)  # a fresh run, never a resumed one
    model, rows = train_model(model_config, train, data, output, tokenizer.to_json(), resume=False)
    autocast = (
        torch.autocast("cuda", torch.bfloat16)
        if torch.cuda.is_available()
        else torch.autocast("cpu", enabled=False)
    )
    with autocast:
        result = evaluate(model, data, train, arguments.eval_batches)
        accuracy = (
            None
            if name == "autoregressive"
            else recall_accuracy(model, data, train, arguments.eval_batches)
        )
    config = {
        "model": name,
        "preset": arguments.preset,
        "tokenizer": arguments.tokenizer,
        "vocab_size": tokenizer.vocab_size,
        "parameters": model.num_parameters(),
        "thought_parameters": model.num_parameters(True),
        "steps": rows[-1]["step"],
        "train_seconds": rows[-1]["seconds"],
        "tokens_seen": rows[-1]["step"]
        * arguments.batch_size
        * arguments.num_turns
        * arguments.turn_length,
        "batch_size": arguments.batch_size,
        "turns": f"{arguments.num_turns}x{arguments.turn_length}",
        "data": Path(arguments.data).name,
        "eval_batches": arguments.eval_batches,
        "learning_rate": arguments.learning_rate,
    }
    return config, result, accuracy


def run(name: str, arguments: argparse.Namespace, text: str) -> None:
    config, result, accuracy = train_and_evaluate(name, arguments, text)
    emit_torch("val_perplexity_bound", config, result["perplexity"], "perplexity")
    later = result["per_turn_nats"][1:]
    if later:
        emit_torch(
            "val_perplexity_bound_turns_after_first",
            config,
            math.exp(sum(later) / len(later)),
            "perplexity",
        )
    if accuracy is not None:
        emit_torch("recall_accuracy", config, accuracy, "fraction")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all", choices=[*MODELS, "all"])
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--out", default="out/thought-diffusion")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--tokenizer", default="byte", choices=["byte", "bpe"])
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=6e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--turn-length", type=int, default=256)
    parser.add_argument("--num-turns", type=int, default=2)
    parser.add_argument("--eval-batches", type=int, default=32)
    parser.add_argument(
        "--eval-interval",
        type=int,
        default=10**9,
        help="also log the validation bound every this many steps (log.csv: the equal-time curve)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny CPU run (< 1 min)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.preset, arguments.minutes, arguments.max_steps = "tiny", 0.1, 8
        arguments.batch_size, arguments.turn_length, arguments.eval_batches = 4, 32, 2
        arguments.warmup_steps = 2
        if arguments.out == "out/thought-diffusion":  # never overwrite a real run's checkpoints
            arguments.out = "out/thought-diffusion-quick"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    text = read_text(arguments.data)
    for name in MODELS if arguments.model == "all" else (arguments.model,):
        run(name, arguments, text)


if __name__ == "__main__":
    main()
