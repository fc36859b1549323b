"""bitflip-dtm: train for a fixed time budget, then FID, sampling time, throughput and memory.

Prints JSON lines (what, config, device, value, unit). GPU run (the lead's, on an H100 with a
jax-sim backend installed):

    TSU_BACKEND=jax-sim python benchmarks/dtm_train_fid.py --preset mnist28 \
        --data ../shared/data/mnist --minutes 10 --samples 2000 --out runs/dtm-mnist28
    TSU_BACKEND=jax-sim python benchmarks/dtm_train_fid.py --preset rgb64 \
        --data ../shared/data/mnist --minutes 10 --samples 1000 --out runs/dtm-rgb64

`--quick` trains the tiny preset on the two-pattern set for a few seconds on the CPU (exercises
every code path; its FID means nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import tsu_core
from bitflip_dtm import Trainer, bits_to_images, images_to_bits, load_dataset, preset, sample
from bitflip_dtm.checkpoint import save_checkpoint
from bitflip_dtm.cli import save_grid
from bitflip_dtm.data import spins_to_bits
from bitflip_dtm.evaluate import fid, save_classifier, train_classifier


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({os.cpu_count()} cores)"


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _jax_peak_bytes() -> int | None:
    """Peak bytes of JAX's allocator on its first device, when a JAX backend is in use."""
    if "jax" not in sys.modules:
        return None
    devices = sys.modules["jax"].devices()
    stats = devices[0].memory_stats() if hasattr(devices[0], "memory_stats") else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist28")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=2000, help="generated images for FID")
    parser.add_argument("--out", default="runs/dtm-benchmark")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from bitflip_dtm.cli import _parse_overrides

    changes = _parse_overrides(arguments.set)
    if arguments.quick:
        config = preset("tiny", num_steps=2, latents_per_patch=2, fantasy_chains=8, batch_size=8,
                        learning_rate=0.1, steps_per_iteration=2, **changes)  # fmt: skip
        budget, num_samples, device = 8.0, 64, "cpu"
        backend = tsu_core.get_backend(arguments.backend or "reference")
    else:
        config = preset(arguments.preset, data_path=arguments.data, **changes)
        budget, num_samples, device = 60 * arguments.minutes, arguments.samples, arguments.device
        backend = tsu_core.get_backend(arguments.backend)
    out = Path(arguments.out)
    images, labels = load_dataset(config, "train")
    held_out, _ = load_dataset(config, "held-out")
    common = {
        "preset": "tiny (quick)" if arguments.quick else arguments.preset,
        "backend": backend.name,
        "train_images": int(images.shape[0]),
        "held_out_images": int(held_out.shape[0]),
        "batch_size": config.batch_size,
        "num_steps": config.num_steps,
        "steps_per_iteration": config.steps_per_iteration,
        "fantasy_chains": config.fantasy_chains,
        "pcd_steps": config.pcd_steps,
        "sweeps_per_step": config.sweeps_per_step,
    }
    name = _device_name(device)

    def emit(what: str, value: float, unit: str, **extra) -> None:
        line = {
            "what": what,
            "config": {**common, **extra},
            "device": name,
            "value": value,
            "unit": unit,
        }
        print(json.dumps(line), flush=True)

    trainer = Trainer(config, images, device=device, backend=backend)
    graph = trainer.model.graph.statistics
    emit("graph sparsity (fraction of node pairs without an edge)", graph["sparsity"], "fraction",
         **{key: graph[key] for key in ("num_nodes", "num_edges", "mean_degree", "max_degree")})  # fmt: skip
    trainer.train_step()  # compile / warm up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _synchronise(device)
    started = time.perf_counter()
    while time.perf_counter() - started < budget and trainer.iteration < 10**9:
        trainer.train_step()
    _synchronise(device)
    seconds = time.perf_counter() - started
    iterations = trainer.iteration - 1
    emit("training throughput (data images per second, each at steps_per_iteration steps)",
         iterations * config.batch_size / seconds, "images/s", iterations=iterations,
         seconds=seconds)  # fmt: skip
    if device.startswith("cuda"):
        emit(
            "peak torch GPU memory during training",
            torch.cuda.max_memory_allocated() / 2**30,
            "GiB",
        )
    jax_peak = _jax_peak_bytes()
    if jax_peak is not None:
        emit("peak JAX device memory (backend)", jax_peak / 2**30, "GiB")
    save_checkpoint(trainer, out)

    times = []
    for repeat in range(3):
        _synchronise(device)
        begin = time.perf_counter()
        sample(trainer.model, trainer.program, 64, key=100 + repeat)
        _synchronise(device)
        times.append(time.perf_counter() - begin)
    emit("sampling time per 64 images (median of 3)", statistics.median(times), "s",
         sweeps_per_step=config.sweeps_per_step)  # fmt: skip

    classifier_path = out / "classifier.safetensors"
    classifier, accuracy = train_classifier(images, labels, device=device)
    save_classifier(classifier.cpu(), classifier_path)
    generated = []
    for start in range(0, num_samples, 256):
        count = min(256, num_samples - start)
        result = sample(trainer.model, trainer.program, count, key=1000 + start)
        generated.append(bits_to_images(spins_to_bits(result.spins), config).cpu())
    generated = torch.cat(generated)
    save_grid(generated[:64], out / "samples.png")
    reference = bits_to_images(images_to_bits(held_out, config), config)[:num_samples]
    score = fid(generated, reference, classifier_path=classifier_path)
    emit("FID against held-out data (package classifier features)", score["fid"], "FID",
         extractor=score["extractor"], implementation=score["implementation"],
         classifier_train_accuracy=accuracy, num_generated=score["num_generated"],
         num_reference=score["num_reference"], training_seconds=seconds)  # fmt: skip
    floor = fid(bits_to_images(images_to_bits(images[:num_samples], config), config),
                reference, classifier_path=classifier_path)  # fmt: skip
    emit(
        "FID of training images against held-out data (the floor)",
        floor["fid"],
        "FID",
        num_generated=floor["num_generated"],
        num_reference=floor["num_reference"],
    )


if __name__ == "__main__":
    main()
