"""Does the thought stack help? Recall accuracy with thoughts vs the baseline.

Episodes are built from the validation text: `distance + 1` consecutive turns whose last turn
repeats the first. Earlier turns are written to the thought stack (thought model) or dropped
(baseline); the last turn is fully masked and every position predicted in one step. The
baseline can only use text statistics, so the difference is what the thoughts carry. Both
models come from `thought_perplexity.py` (trained on the same data with the same fraction of
recall episodes, `recall_probability`, at distance num_turns - 1); larger distances test
whether the memory lasts beyond what training showed.

    python benchmarks/thought_multiturn.py --out out/td      # after thought_perplexity.py
    python benchmarks/thought_multiturn.py --quick           # CPU, untrained tiny models

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import torch
from _jsonl import emit_torch

from thought_diffusion import ThoughtDiffusionLM, TokenData, TrainConfig, preset, read_text
from thought_diffusion.checkpoint import load_checkpoint
from thought_diffusion.tokenizer import ByteTokenizer, tokenizer_from_json
from thought_diffusion.train import recall_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default="out/thought-diffusion", help="thought_perplexity.py's --out"
    )
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--distances", default="1,2,4")
    parser.add_argument("--batches", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="untrained tiny models on the CPU")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    text = read_text(arguments.data)
    for name in ("thought", "baseline"):
        if arguments.quick:
            torch.manual_seed(0)
            model = ThoughtDiffusionLM(preset("tiny", use_thoughts=name == "thought")).to(device)
            tokenizer, train, trained = (
                ByteTokenizer(),
                TrainConfig(batch_size=4, turn_length=32),
                False,
            )
            arguments.batches = 2
        else:
            checkpoint = Path(arguments.out) / name / "checkpoint.safetensors"
            if not checkpoint.exists():
                raise SystemExit(f"no checkpoint at {checkpoint}; run thought_perplexity.py first")
            model, extra = load_checkpoint(checkpoint, device)
            tokenizer, train, trained = (
                tokenizer_from_json(extra["tokenizer"]),
                extra["train_config"],
                True,
            )
        model.eval()
        data = TokenData(tokenizer.encode(text))
        for distance in (int(d) for d in arguments.distances.split(",")):
            episode = replace(train, num_turns=distance + 1)
            with torch.autocast(device, torch.bfloat16, enabled=device == "cuda"):
                accuracy = recall_accuracy(model, data, episode, arguments.batches)
            config = {
                "model": name,
                "distance_turns": distance,
                "turn_length": train.turn_length,
                "trained_distance": train.num_turns - 1,
                "episodes": arguments.batches * train.batch_size,
                "trained": trained,
            }
            emit_torch("recall_accuracy", config, accuracy, "fraction")


if __name__ == "__main__":
    main()
