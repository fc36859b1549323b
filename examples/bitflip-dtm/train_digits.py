"""Train a small bit-flip diffusion model on scikit-learn's bundled 8x8 digits and sample from it,
every reverse step an Ising model sampled on the tsu-core backend.

Data: `sklearn.datasets.load_digits` (1,797 digits, shipped with scikit-learn: nothing to
download), binarised; the first 1,497 train (the last 300 are the held-out split of
`load_dataset`). For FID and the recognisable rate of a trained model see the package's
`bitflip-dtm evaluate` command.

    pip install -e packages/tsu-core -e packages/tsu-jax-sim -e "packages/bitflip-dtm[digits]"
    python examples/bitflip-dtm/train_digits.py --quick               # CPU, well under a minute
    python examples/bitflip-dtm/train_digits.py --iterations 2000     # CPU, some minutes

Writes a grid of 64 samples above 64 training digits to `--out` (a PNG).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import tsu_core  # noqa: E402
from bitflip_dtm import (  # noqa: E402
    Trainer,
    bits_to_images,
    images_to_bits,
    load_dataset,
    preset,
    sample,
)
from bitflip_dtm.data import spins_to_bits  # noqa: E402


def tile(images: torch.Tensor, columns: int = 8) -> torch.Tensor:
    """(N, 1, S, S) images as one (rows * S, columns * S) picture, N a multiple of `columns`."""
    count, _, size, _ = images.shape
    rows = count // columns
    return (
        images[:, 0]
        .reshape(rows, columns, size, size)
        .permute(0, 2, 1, 3)
        .reshape(rows * size, columns * size)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=8, help="reverse steps T")
    parser.add_argument("--out", default="out/bitflip-dtm-digits.png")
    parser.add_argument("--backend", default=None, help="tsu-core backend (default TSU_BACKEND)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 iterations of T = 4 steps")
    arguments = parser.parse_args()
    steps = 4 if arguments.quick else arguments.steps
    iterations = 40 if arguments.quick else arguments.iterations

    # The mnist28 recipe (patches of latents, persistent chains) at the digits' 8x8 size.
    config = preset(
        "mnist28",
        dataset="digits",
        image_size=8,
        num_steps=steps,
        steps_per_iteration=steps,
        iterations=iterations,
        seed=arguments.seed,
    )
    images, labels = load_dataset(config, "train")
    backend = tsu_core.get_backend(arguments.backend)
    trainer = Trainer(config, images, labels=labels, backend=backend)
    print(
        f"{backend.name}: {trainer.model.graph.topology.num_nodes} nodes per reverse step, T = {steps}"
    )

    gaps = []  # the mean |data - model| edge moment of each iteration
    start = time.perf_counter()
    trainer.train(progress=not arguments.quick, callback=lambda _, stats: gaps.append(stats))
    first, last = float(gaps[0].contrastive_gap), float(gaps[-1].contrastive_gap)
    print(
        f"trained {iterations} iterations in {time.perf_counter() - start:.1f} s; "
        f"moment gap {first:.4f} -> {last:.4f}"
    )

    start = time.perf_counter()
    result = sample(trainer.model, trainer.program, 64, key=arguments.seed + 1)
    samples = bits_to_images(spins_to_bits(result.spins), config).cpu()
    print(f"sampled 64 images in {time.perf_counter() - start:.1f} s")

    def quantised(pictures: torch.Tensor) -> torch.Tensor:
        """Images as the model sees them (binarised)."""
        return bits_to_images(images_to_bits(pictures, config), config)

    out = Path(arguments.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = torch.cat([tile(samples), torch.ones(2, 64), tile(quantised(images[:64]))])
    picture = picture.repeat_interleave(4, 0).repeat_interleave(4, 1)  # 4x4 screen pixels a bit
    plt.imsave(out, picture.numpy(), cmap="gray", vmin=0, vmax=1)
    print(f"samples (top) and training digits (bottom): {out}")


if __name__ == "__main__":
    main()
