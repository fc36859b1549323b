"""Train the tiny thought-diffusion model on a text file, then generate two turns with a thought
stack that carries the first turn into the second.

Data: any UTF-8 text file; by default tinyshakespeare in `../shared/data` (bytes as tokens).
Every token draw goes through the tsu-core backend that `--backend` or `TSU_BACKEND` names.

    python examples/thought-diffusion/train_tiny.py --quick             # CPU, well under a minute
    python examples/thought-diffusion/train_tiny.py --steps 2000        # CPU, some minutes

Writes checkpoints to `--out` (resumed when run again with the same `--out`; `--fresh` starts
over) and prints the validation bound and the generated text.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import torch

import tsu_core
from thought_diffusion import (
    ByteTokenizer,
    GenerationConfig,
    ThoughtStack,
    TokenData,
    TrainConfig,
    evaluate,
    generate,
    preset,
    read_text,
    remember,
    train_model,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--out", default="out/thought-diffusion-tiny")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--prompt", default="ROMEO:\n")
    parser.add_argument("--backend", default=None, help="tsu-core backend (default TSU_BACKEND)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--quick", action="store_true", help="20 steps on the first 200k bytes")
    arguments = parser.parse_args()
    if arguments.backend:
        tsu_core.get_backend(arguments.backend)  # fails early, with the installed names
        os.environ["TSU_BACKEND"] = arguments.backend
    if arguments.fresh or arguments.quick:
        shutil.rmtree(arguments.out, ignore_errors=True)
    torch.manual_seed(arguments.seed)

    text = read_text(arguments.data)
    if arguments.quick:
        text = text[:200_000]
    tokenizer = ByteTokenizer()
    data = TokenData(tokenizer.encode(text))
    model_config = preset("tiny")  # 64 tokens a turn, a stack of 4 thoughts of 8 x 8 x 64
    steps = 20 if arguments.quick else arguments.steps
    train = TrainConfig(
        batch_size=8,
        turn_length=32,
        num_turns=2,
        steps=steps,
        learning_rate=3e-3,
        warmup_steps=min(20, steps // 5),
        precision="fp32",
        eval_interval=steps,
        eval_batches=2,
        checkpoint_interval=steps,
        seed=arguments.seed,
    )
    start = time.perf_counter()
    model, _ = train_model(
        model_config, train, data, arguments.out, tokenizer.to_json(), progress=not arguments.quick
    )
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s")
    model.eval()
    bound = evaluate(model, data, train, num_batches=4)
    print(
        f"validation: {bound['nats_per_token']:.3f} nats/token (bound), perplexity {bound['perplexity']:.1f}"
    )

    # Turn 1 from an empty stack; the model then writes a thought of the whole turn, and turn 2
    # reads it by cross-attention.
    prompt = torch.tensor([tokenizer.encode(arguments.prompt)])
    stack = ThoughtStack.empty(1, model.config)
    config = GenerationConfig(length=24, temperature=0.8)
    first, counts = generate(model, prompt, config, tsu_core.Key(arguments.seed), stack)
    stack = remember(model, torch.cat([prompt, first], 1), stack)
    second, _ = generate(model, prompt, config, tsu_core.Key(arguments.seed + 1), stack)
    backend = tsu_core.get_backend().name
    print(f"turn 1 ({counts['model_calls']} model calls, draws on {backend}):")
    print(arguments.prompt + tokenizer.decode(first[0].tolist()))
    print("turn 2 (reading the thought of turn 1):")
    print(arguments.prompt + tokenizer.decode(second[0].tolist()))


if __name__ == "__main__":
    main()
