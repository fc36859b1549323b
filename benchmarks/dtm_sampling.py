"""bitflip-dtm: sampling time per 64 images on each backend, same model, same sweeps.

Prints JSON lines (what, config, device, value, unit), and the ratio of each backend's time to
the first one's. GPU run (after dtm_train_fid.py has written a checkpoint):

    python benchmarks/dtm_sampling.py --checkpoint runs/dtm-mnist28 --backends jax-sim thrml

`--preset NAME` samples a model of that preset with its initial (untrained) parameters: the
time does not depend on what the model learnt, so this needs no checkpoint:

    python benchmarks/dtm_sampling.py --preset rgb64 --backends jax-sim thrml

`--quick` samples a random tiny model on the CPU with every installed backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import tsu_core
from bitflip_dtm import DTM, compile_program, preset, sample
from bitflip_dtm.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--preset", default=None, help="an untrained model of this preset")
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=None, help="unused (the model comes from --checkpoint)")
    arguments = parser.parse_args()
    if arguments.quick:
        model = DTM(preset("tiny", num_steps=2, latents_per_patch=2))
        device, label = "cpu", "tiny, 2 steps, 2 latents (random parameters)"
        arguments.num, arguments.repeats = 16, 2
    elif arguments.preset is not None:
        device = arguments.device
        model = DTM(preset(arguments.preset)).to(device)
        label = f"{arguments.preset} (initial parameters)"
    else:
        if arguments.checkpoint is None:
            parser.error("--checkpoint or --preset is required without --quick")
        device = arguments.device
        model, label = load_model(arguments.checkpoint, device), arguments.checkpoint
    backends = arguments.backends or [
        name for name in tsu_core.available_backends() if name in ("reference", "jax-sim", "thrml")
    ]
    name = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"cpu ({os.cpu_count()} cores)"
    )
    first = None
    for backend_name in backends:
        backend = tsu_core.get_backend(backend_name)
        program = compile_program(model, backend)
        sample(model, program, arguments.num, key=0)  # warm up / compile
        times = []
        for repeat in range(arguments.repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            begin = time.perf_counter()
            sample(model, program, arguments.num, key=1 + repeat)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - begin)
        value = statistics.median(times)
        config = {"model": label, "backend": backend_name, "images": arguments.num,
                  "num_steps": model.num_steps, "sweeps_per_step": model.config.sweeps_per_step,
                  "num_nodes": model.graph.topology.num_nodes, "repeats": arguments.repeats}  # fmt: skip
        print(json.dumps({"what": f"sampling time per {arguments.num} images", "config": config,
                          "device": name, "value": value, "unit": "s"}), flush=True)  # fmt: skip
        if first is None:
            first = (backend_name, value)
        else:
            print(json.dumps({"what": f"sampling time ratio {backend_name} / {first[0]}",
                              "config": config, "device": name, "value": value / first[1],
                              "ratio": value / first[1], "unit": "ratio"}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
