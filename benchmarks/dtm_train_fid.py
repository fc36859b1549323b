"""bitflip-dtm: train for a time budget, then FID, recognisable rate, throughput and memory.

Prints JSON lines (what, config, device, value, unit); progress goes to stderr. GPU runs:

    TSU_BACKEND=jax-sim python benchmarks/dtm_train_fid.py --preset paper \\
        --data ../shared/data/mnist --minutes 15 --iterations auto --samples 1000 --out runs/paper
    TSU_BACKEND=jax-sim python benchmarks/dtm_train_fid.py --preset mnist28 \\
        --data ../shared/data/mnist --minutes 15 --samples 1000 --out runs/mnist28

`--iterations auto` times the first iterations and sets `iterations` (where the learning rate's
cosine decay ends) to what the budget allows; `--stop-minutes` ends this run sooner, so that a
budget longer than one machine session is spent over resumed runs. A run resumes from the
latest checkpoint in `--out` when there is one (its config wins; `--minutes` is then the time added). Quality is
measured on binarised MNIST: FID against held-out images with the package's classifier as
feature extractor, beside its floor (as many training images against the same held-out ones),
and the recognisable rate (classifier confidence >= 0.9) of samples beside that of held-out
images.

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

import _jsonl
import torch

import tsu_core
from bitflip_dtm import Trainer, bits_to_images, load_dataset, preset, sample
from bitflip_dtm.checkpoint import latest_checkpoint, load_checkpoint, restore, save_checkpoint
from bitflip_dtm.cli import (
    _parse_overrides,
    classifier_for,
    classifier_path,
    quantised,
    save_grid,
)
from bitflip_dtm.data import data_spins, spins_to_bits
from bitflip_dtm.evaluate import diagnostics_table, plot_diagnostics, quality, step_diagnostics
from bitflip_dtm.sample import balanced_classes

log = logging.getLogger("dtm_train_fid")


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({os.cpu_count()} cores)"


def _generate(trainer: Trainer, num_samples: int, by_class: bool) -> torch.Tensor:
    """`num_samples` images in [0, 1] (CPU), in chunks of 500; with `by_class`, image i is drawn
    for class i mod 10 (label bits clamped)."""
    generated = []
    for start in range(0, num_samples, 500):
        count = min(500, num_samples - start)
        classes = balanced_classes(count) if by_class else None
        result = sample(trainer.model, trainer.program, count, key=1000 + start, classes=classes)
        generated.append(bits_to_images(spins_to_bits(result.spins), trainer.config).cpu())
    return torch.cat(generated)


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


def _train(
    trainer: Trainer, budget: float, auto: bool, out: Path, device: str, stop: float
) -> float:
    """Train until the budget (seconds) is spent, `stop` seconds have passed or
    `config.iterations` are done; with `auto`, first set `iterations` from the time of the first
    iterations so that they fill the budget. Returns the seconds spent."""
    config = trainer.config
    started = time.perf_counter()
    last_report = started
    timed_from: tuple[int, float] | None = None
    while trainer.iteration < config.iterations:
        elapsed = time.perf_counter() - started
        if elapsed > min(budget, stop):
            break
        stats = trainer.train_step()
        if auto and timed_from is None and trainer.iteration >= 3:
            _synchronise(device)
            timed_from = (trainer.iteration, time.perf_counter())
        elif auto and timed_from is not None and trainer.iteration == timed_from[0] + 20:
            _synchronise(device)
            per_iteration = (time.perf_counter() - timed_from[1]) / 20
            remaining = budget - (time.perf_counter() - started)
            config = trainer.config = config.replace(
                iterations=max(
                    trainer.iteration + 1, int(trainer.iteration + remaining / per_iteration)
                )
            )
            log.info("%.3f s per iteration: iterations set to %d", per_iteration, config.iterations)
            auto = False
        if trainer.iteration % config.checkpoint_every == 0:
            save_checkpoint(trainer, out)
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            log.info("iteration %d/%d, %.0f s, gap %.4f", trainer.iteration, config.iterations,
                     last_report - started, float(stats.contrastive_gap))  # fmt: skip
    _synchronise(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--iterations", default=None, help="an integer, or 'auto' (see above)")
    parser.add_argument(
        "--stop-minutes",
        type=float,
        default=None,
        help="stop this run after this many minutes (checkpoint, then the figures); with "
        "--iterations auto the schedule still fills --minutes, for a run resumed later",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="generated images for FID (0: train and checkpoint only, as the first part of a "
        "resumed run)",
    )
    parser.add_argument("--out", default="runs/dtm-benchmark")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--diagnostics", action="store_true", help="per-step diagnostics too")
    parser.add_argument(
        "--by-class",
        action="store_true",
        help="also the class-conditional FID (image i drawn for class i mod 10; label bits needed)",
    )
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    changes = _parse_overrides(arguments.set)
    auto = arguments.iterations == "auto"
    if arguments.iterations is not None and not auto:
        changes["iterations"] = int(arguments.iterations)
    if arguments.quick:
        config = preset("tiny", num_steps=2, latents_per_patch=2, fantasy_chains=8, batch_size=8,
                        learning_rate=0.1, steps_per_iteration=2, **changes)  # fmt: skip
        budget, num_samples, device = 8.0, 64, "cpu"
        backend = tsu_core.get_backend(arguments.backend or "reference")
        name = "tiny (quick)"
    else:
        config = preset(arguments.preset, data_path=arguments.data, **changes)
        budget, num_samples, device = 60 * arguments.minutes, arguments.samples, arguments.device
        backend = tsu_core.get_backend(arguments.backend)
        name = arguments.preset
    out = Path(arguments.out)
    checkpoint = None
    if latest_checkpoint(out) is not None:
        checkpoint = load_checkpoint(out)
        config, auto = checkpoint.config, False
        log.info("resuming from %s (iteration %d)", checkpoint.path, checkpoint.iteration)
    images, labels = load_dataset(config, "train")
    held_out, held_out_labels = load_dataset(config, "held-out")
    trainer = Trainer(config, images, device=device, backend=backend, labels=labels)
    if checkpoint is not None:
        restore(trainer, checkpoint)
    keys = ("graph", "num_steps", "batch_size", "chains", "train_burn_in", "train_samples",
            "train_thinning", "sweeps_per_step", "steps_per_iteration")  # fmt: skip
    common = {
        "preset": name,
        "backend": backend.name,
        **{key: getattr(config, key) for key in keys},
    }
    device_name = _device_name(device)

    def emit(what: str, value: float, unit: str, **extra) -> None:
        _jsonl.emit(what, {**common, **extra}, value, unit, device_name)

    print(json.dumps({"what": "run", "config": config.to_dict(), "device": device_name,
                      "train_images": len(images), "held_out_images": len(held_out)}), flush=True)  # fmt: skip
    graph = trainer.model.graph.statistics
    emit("graph sparsity (fraction of node pairs without an edge)", graph["sparsity"], "fraction",
         **{key: graph[key] for key in ("num_nodes", "num_edges", "mean_degree", "max_degree")})  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    first = trainer.iteration
    stop = budget if arguments.stop_minutes is None else 60 * arguments.stop_minutes
    seconds = _train(trainer, budget, auto, out, device, stop)
    save_checkpoint(trainer, out)
    iterations = trainer.iteration - first
    config = trainer.config
    image_steps = iterations * config.batch_size * min(config.steps_per_iteration, config.num_steps)
    emit("training throughput (image-steps per second: data images x reverse steps trained)",
         image_steps / seconds, "image-steps/s", iterations=iterations, seconds=seconds,
         total_iterations=trainer.iteration)  # fmt: skip
    if device.startswith("cuda"):
        emit("peak torch GPU memory", torch.cuda.max_memory_allocated() / 2**30, "GiB")
    jax_peak = _jax_peak_bytes()
    if jax_peak is not None:
        emit("peak JAX device memory (backend)", jax_peak / 2**30, "GiB")

    if num_samples == 0:
        return
    times = []
    for repeat in range(3):
        _synchronise(device)
        begin = time.perf_counter()
        sample(trainer.model, trainer.program, 64, key=100 + repeat)
        _synchronise(device)
        times.append(time.perf_counter() - begin)
    emit("sampling time per 64 images (median of 3)", statistics.median(times), "s")

    classifier = classifier_for(config, classifier_path(out, config), device)
    kinds = ("unconditional", "class-conditional") if arguments.by_class else ("unconditional",)
    for kind in kinds:
        generated = _generate(trainer, num_samples, kind == "class-conditional")
        save_grid(generated[:100], out / f"samples-{kind}.png", columns=10, scale=2)
        score = quality(generated, quantised(held_out, config), quantised(images, config),
                        classifier, device)  # fmt: skip
        suffix = "" if kind == "unconditional" else f" ({kind})"
        for key in ("fid", "fid_floor", "fid_over_floor"):
            emit(key.replace("_", " ") + suffix, score[key],
                 "FID" if key != "fid_over_floor" else "ratio", extractor=score["extractor"],
                 num_images=score["num_images"], training_seconds=seconds,
                 total_iterations=trainer.iteration)  # fmt: skip
        for key in ("recognisable", "recognisable_held_out", "recognisable_ratio"):
            emit(key.replace("_", " ") + " (classifier confidence >= 0.9)" + suffix, score[key],
                 "fraction", num_images=score["num_images"],
                 total_iterations=trainer.iteration)  # fmt: skip
    if arguments.diagnostics:
        spins = data_spins(held_out[:64], held_out_labels[:64], config).to(device)
        rows = step_diagnostics(trainer.model, trainer.program, spins, key=0)
        for row in rows:
            emit("step diagnostics", row["bit_error"], "bit error", **row)
        print(diagnostics_table(rows), file=sys.stderr)
        plot_diagnostics(rows, out / "diagnostics.png")


if __name__ == "__main__":
    main()
