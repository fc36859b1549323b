"""Runs a small training job in its own process (used by test_train.py).

Usage: python train_runner.py OUTPUT_DIR MAX_STEPS [--devices N ...] [--sharding MODE]
Writes OUTPUT_DIR/result.json (losses, final step) and OUTPUT_DIR/state.npz (all leaves).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import jax
import numpy as np

from xut_flow.config import TrainConfig, preset
from xut_flow.data import ShardDataset, save_shard, synthetic_shard
from xut_flow.train import train

MODEL = preset("tiny", model_dim=32, mlp_dim=64, head_dim=16, decoder_blocks=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--devices", type=int, nargs="+", default=[1])
    parser.add_argument("--sharding", default="replicated")
    parser.add_argument("--total-steps", type=int, default=400)
    parser.add_argument("--noise", default="tsu")
    parser.add_argument("--epoch-checkpoint-every", type=int, default=1)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    output = Path(options.output)
    shard = output.parent / "shard.npz"
    if not shard.exists():
        save_shard(synthetic_shard(40, (4, 8, 8), MODEL.text_dim, seed=1), shard)
    # 40 examples / batch 8 = 5 steps per epoch: the runs cross epoch boundaries.
    dataset = ShardDataset([shard], seed=3)
    results = {}
    for devices in options.devices:
        config = TrainConfig(
            batch_size=8,
            base_learning_rate=1.0,
            warmup_steps=2,
            total_steps=options.total_steps,
            max_steps=options.max_steps,
            log_every=1,
            checkpoint_every=4,
            epoch_checkpoint_every=options.epoch_checkpoint_every,
            noise_source=options.noise,
            num_devices=devices,
            parameter_sharding=options.sharding,
        )
        run = train(MODEL, config, dataset, output / f"devices-{devices}", progress=False)
        leaves = jax.tree.leaves((run.params, run.opt_state))
        np.savez(output / f"devices-{devices}.npz", *[np.asarray(leaf) for leaf in leaves])
        results[devices] = {
            "losses": run.losses,
            "global_step": run.global_step,
            "stopped_by_signal": run.stopped_by_signal,
        }
    (output / "result.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
