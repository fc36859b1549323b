"""bitflip-dtm: which classes a labelled model draws, read from its own label bits.

For a checkpoint with label bits (`label_copies > 0`, the `paper` preset), draws `--num-samples`
chains from uniform noise and reports, as JSON lines, how many land in each class (the class most
label copies vote for) and the chi-square of those counts against an even split:

* `--step-t-only`: after the first reverse step alone (x_{T-1}), once per `--sweeps` value, at
  beta 1 (the distribution the training chains sample), so the counts show how the class
  marginal of the step from noise moves as its chains run longer;
* otherwise: after every reverse step of one whole generation with the checkpoint's settings,
  and for held-out digits noised by the forward process to the same steps.

    TSU_BACKEND=jax-sim python benchmarks/dtm_class_balance.py --checkpoint /tmp/dtm15 \\
        --data path/to/mnist --num-samples 1000 --step-t-only --sweeps 800 5000

`--quick` trains `quick_config` (the `paper` preset at CPU size) for a few iterations instead of
loading a checkpoint, and counts 50 chains (exercises every code path; its counts mean nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _jsonl
import numpy as np
import torch

import tsu_core
from bitflip_dtm import Trainer, preset
from bitflip_dtm.checkpoint import load_model
from bitflip_dtm.config import NUM_CLASSES, Config
from bitflip_dtm.data import data_spins, load_dataset
from bitflip_dtm.sample import compile_program, random_spins, reverse_step, sample


def class_counts(spins: torch.Tensor, image_bits: int, seed: int = 0) -> list[int]:
    """Per class, the chains whose label copies vote most often for it (ties broken at random)."""
    labels = spins[:, image_bits:].reshape(spins.shape[0], -1, NUM_CLASSES).cpu()
    votes = (labels > 0).sum(1).double()
    votes += 1e-3 * torch.rand(votes.shape, generator=torch.Generator().manual_seed(seed))
    return np.bincount(votes.argmax(1).numpy(), minlength=NUM_CLASSES).tolist()


# The `paper` preset at CPU size: 8x8 MNIST (64 pixels + 100 label bits on one colour of a 20x20
# torus), short chains, a few iterations.
QUICK = {"image_size": 8, "grid_size": 20, "batch_size": 16, "train_burn_in": 5,
         "train_samples": 4, "train_thinning": 1, "sweeps_per_step": 10, "penalty_every": 5,
         "iterations": 10, "checkpoint_every": 10}  # fmt: skip


def quick_config(data: str, **changes) -> Config:
    """`QUICK`: a labelled torus model that trains in seconds on a CPU."""
    return preset("paper", data_path=data, **{**QUICK, **changes})


def step_from_noise_counts(
    model, program, num_samples: int, sweeps: list[int], key: tsu_core.Key
) -> dict[int, list[int]]:
    """Per number of sweeps, the class counts of `num_samples` chains of the step from pure
    noise alone, at beta 1 (the distribution the training chains sample), from the same noise."""
    kept = model.config
    model.config = kept.replace(generation_beta_start=1.0, generation_beta_end=1.0)
    try:
        noise = random_spins((num_samples, model.graph.num_bits), key.fold_in(0),
                             model.steps[0].weights.device)  # fmt: skip
        counts = {}
        for count in sweeps:
            state = reverse_step(model, program, model.num_steps, noise,
                                 key.fold_in(model.num_steps), count)  # fmt: skip
            counts[count] = class_counts(state[:, : model.graph.num_bits], kept.num_image_bits)
        return counts
    finally:
        model.config = kept


def chi_square(counts: list[int]) -> float:
    """Pearson's chi-square of the counts against an even split (9 degrees of freedom)."""
    observed = np.asarray(counts, float)
    expected = observed.sum() / len(observed)
    return float(((observed - expected) ** 2 / expected).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a run directory or checkpoint file")
    parser.add_argument("--data", help="MNIST folder (for the held-out digits)")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--step-t-only", action="store_true")
    parser.add_argument("--sweeps", type=int, nargs="+", default=[800])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        config = quick_config(args.data or "../shared/data/mnist")
        images, labels = load_dataset(config, "train")
        trainer = Trainer(config, images, labels=labels, backend=tsu_core.get_backend())
        trainer.train()
        model, args.num_samples, args.sweeps = trainer.model, 50, [10, 40]
    elif args.checkpoint is None:
        parser.error("--checkpoint is required (or --quick)")
    else:
        model = load_model(Path(args.checkpoint))
    config = model.config if args.data is None else model.config.replace(data_path=args.data)
    if not config.label_copies:
        parser.error("--checkpoint: this model has no label bits (label_copies=0)")
    program = compile_program(model)
    image_bits = config.num_image_bits
    device = _jsonl.torch_device(model.steps[0].weights.device)
    common = {"checkpoint": args.checkpoint or "trained here (--quick)",
              "num_samples": args.num_samples, "seed": args.seed}  # fmt: skip
    key = tsu_core.as_key(args.seed)

    def emit(what: str, counts: list[int], **extra) -> None:
        _jsonl.emit(what, {**common, **extra, "counts": counts}, chi_square(counts), "chi2", device)

    if args.step_t_only or args.quick:
        counts = step_from_noise_counts(model, program, args.num_samples, args.sweeps, key)
        for sweeps, per_class in counts.items():
            emit("class counts of x_{T-1} after the step from noise alone (beta 1)", per_class,
                 sweeps=sweeps)  # fmt: skip
        if not args.quick:
            return
    result = sample(model, program, args.num_samples, key=key, keep_intermediates=True)
    for index, spins in enumerate(result.intermediates[1:], start=1):
        emit("class counts of generated chains after a reverse step",
             class_counts(spins, image_bits), x=f"x{model.num_steps - index}")  # fmt: skip
    held_out, labels = load_dataset(config, "held-out")
    clean = data_spins(held_out[: args.num_samples], labels[: args.num_samples], config)
    generator = torch.Generator().manual_seed(args.seed)
    for t in range(model.num_steps - 1, -1, -1):
        noised = model.forward_process.noise(clean, t, generator) if t else clean
        emit("class counts of noised held-out digits", class_counts(noised, image_bits), x=f"x{t}")


if __name__ == "__main__":
    main()
