"""bitflip-dtm: training iterations per second with every step in one call per phase, against
one call per step and phase, at several chain lengths, in one process.

Prints JSON lines (what, config, device, value, unit) for each chain length: milliseconds per
iteration and image-steps per second (data images x reverse steps trained) of both ways, and
their ratio. The time includes everything an iteration does: forward noise, both backend calls,
moments to torch, the update. GPU run:

    TSU_BACKEND=jax-sim python benchmarks/dtm_train_throughput.py --preset mnist28 \\
        --data ../shared/data/mnist --samples 5 25 100

`--quick` times the tiny preset on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import tsu_core
from bitflip_dtm import Trainer, load_dataset, preset


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(trainer: Trainer, iterations: int, repeats: int, device: str) -> float:
    """Median seconds per iteration over `repeats` runs of `iterations` (after a warm-up)."""
    for _ in range(3):
        trainer.train_step()  # compiles every program shape
    times = []
    for _ in range(repeats):
        _synchronise(device)
        started = time.perf_counter()
        for _ in range(iterations):
            trainer.train_step()
        _synchronise(device)
        times.append((time.perf_counter() - started) / iterations)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist28")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--samples", type=int, nargs="+", default=[5, 25],
                        help="train_samples (sweeps recorded per phase) to time")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    if arguments.quick:
        base = preset("tiny", num_steps=4, latents_per_patch=2, steps_per_iteration=4)
        backend = tsu_core.get_backend(arguments.backend or "jax-sim")
        device, arguments.samples, arguments.iterations, arguments.repeats = "cpu", [2], 5, 1
    else:
        base = preset(arguments.preset, data_path=arguments.data)
        backend = tsu_core.get_backend(arguments.backend)
        device = arguments.device
    images, labels = load_dataset(base, "train")
    name = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"cpu ({os.cpu_count()} cores)"
    )
    for samples in arguments.samples:
        config = base.replace(train_samples=samples)
        copies = min(config.steps_per_iteration, config.num_steps)
        seconds = {}
        for way, per_call in (("one call per step and phase", 1), ("all steps in one call", None)):
            trainer = Trainer(config, images, device=device, backend=backend, labels=labels,
                              max_copies_per_call=per_call)  # fmt: skip
            seconds[way] = _time(trainer, arguments.iterations, arguments.repeats, device)
            settings = {"preset": arguments.preset if not arguments.quick else "tiny (quick)",
                        "backend": backend.name, "way": way, "calls_per_iteration":
                        2 * copies // trainer.copies_per_call, "batch_size": config.batch_size,
                        "steps_per_iteration": copies, "chains": config.chains,
                        "train_burn_in": config.train_burn_in, "train_samples": samples,
                        "train_thinning": config.train_thinning}  # fmt: skip
            for what, value, unit in (
                ("time per training iteration", 1e3 * seconds[way], "ms"),
                ("training throughput", config.batch_size * copies / seconds[way], "image-steps/s"),
            ):
                line = {
                    "what": what,
                    "config": settings,
                    "device": name,
                    "value": value,
                    "unit": unit,
                }
                print(json.dumps(line), flush=True)
        ratio = seconds["one call per step and phase"] / seconds["all steps in one call"]
        print(json.dumps({"what": "speed-up of one call per phase over one call per step",
                          "config": {"train_samples": samples, "steps_per_iteration": copies},
                          "device": name, "value": ratio, "unit": "ratio"}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
