"""Train the tiny XUT on synthetic shards, then sample a grid (the README's example).

python examples/xut-flow/train_tiny.py --steps 200 --out runs/tiny
python examples/xut-flow/train_tiny.py --quick      # 20 steps into a fresh out/xut-flow-quick
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from xut_flow import (
    ShardDataset,
    TrainConfig,
    generate,
    load_shard,
    preset,
    save_grid,
    save_shard,
    synthetic_shard,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--out", default="runs/tiny", help="directory for data, run and grid")
    parser.add_argument("--quick", action="store_true", help="20 steps, 8 sampling steps")
    options = parser.parse_args()
    if options.quick:
        options.steps, options.out = 20, "out/xut-flow-quick"
        shutil.rmtree(options.out, ignore_errors=True)  # train() resumes from a run directory
    output = Path(options.out)
    shard = save_shard(synthetic_shard(256, (4, 8, 8), text_dim=16), output / "data" / "train.npz")
    dataset = ShardDataset([shard])
    config = TrainConfig(
        batch_size=32, total_steps=options.steps, warmup_steps=options.steps // 10, log_every=10
    )
    result = train(preset("tiny"), config, dataset, output / "run")
    text = load_shard(shard).text_embeddings[:8]
    latents = generate(
        result.model(),
        text,
        (8, 8, 4),
        steps=8 if options.quick else 20,
        method="heun",
        cfg_scale=3.0,
    )
    path = save_grid(np.asarray(latents)[..., 0], output / "samples.png")
    print(f"final loss {result.losses[-1][1]:.4f}; samples in {path}; log {output / 'run'}")


if __name__ == "__main__":
    main()
