"""Training steps per second of the thought model: turns scored together or turn by turn.

A thought written from its turn alone (`write_with_memory=False`) depends on no earlier
thought, so `train.sequence_loss` scores all T turns of a batch in two model calls; a thought
written with the stack's memory needs two calls per turn, one after another. Both models train
through `train_model`, as the command line does, on the same fact-recall mixture, in this one
process; each side's figure is the mean time per step over the steps after a warm-up, from the
training log. The baseline (no thoughts, turns together) is the third line.

    python benchmarks/thought_train_step.py --num-turns 9 --batch-size 32      # GPU
    python benchmarks/thought_train_step.py --quick                            # CPU

Prints JSON lines: {"what", "config", "device", "value", "unit"}, then the ratio.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from _jsonl import emit_torch

from thought_diffusion import TokenData, TrainConfig, preset, read_text
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import train_model

SIDES = {
    "turn_by_turn": {"use_thoughts": True, "write_with_memory": True},
    "turns_together": {"use_thoughts": True, "write_with_memory": False},
    "baseline": {"use_thoughts": False},
}


def seconds_per_step(side: str, arguments: argparse.Namespace, data: TokenData) -> float:
    tokenizer = ByteTokenizer()
    model_config = preset(
        arguments.preset,
        vocab_size=tokenizer.vocab_size,
        max_length=arguments.turn_length,
        **SIDES[side],
    )
    train = TrainConfig(
        batch_size=arguments.batch_size,
        turn_length=arguments.turn_length,
        num_turns=arguments.num_turns,
        memory_probability=0.5,
        recall_probability=0.1,
        steps=arguments.warmup + arguments.steps,
        warmup_steps=10,
        learning_rate=2e-3,
        eval_interval=10**9,
        eval_batches=1,
        checkpoint_interval=10**9,
        precision="bf16" if torch.cuda.is_available() else "fp32",
    )
    with tempfile.TemporaryDirectory() as output:
        _, rows = train_model(
            model_config, train, data, output, tokenizer.to_json(), resume=False, progress=False
        )
    # The log's clock is read after each step's loss reached the host (a device sync) and
    # rounded to 10 ms, so the mean over many steps is the figure.
    return (rows[-1]["seconds"] - rows[arguments.warmup - 1]["seconds"]) / arguments.steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--turn-length", type=int, default=64)
    parser.add_argument("--num-turns", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--quick", action="store_true", help="tiny CPU run (seconds)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.batch_size, arguments.num_turns = 2, 3
        arguments.steps, arguments.warmup = 4, 2
    tokenizer = ByteTokenizer()
    data = TokenData(tokenizer.encode(read_text(arguments.data)))
    config = {
        "preset": arguments.preset,
        "batch_size": arguments.batch_size,
        "turns": f"{arguments.num_turns}x{arguments.turn_length}",
        "timed_steps": arguments.steps,
    }
    figures = {}
    for side in SIDES:
        figures[side] = seconds_per_step(side, arguments, data)
        emit_torch("train_step_seconds", config | {"side": side}, figures[side], "seconds (mean)")
    ratio = figures["turn_by_turn"] / figures["turns_together"]
    emit_torch(
        "train_step_speedup", config | {"sides": "turn_by_turn / turns_together"}, ratio, "x"
    )


if __name__ == "__main__":
    main()
