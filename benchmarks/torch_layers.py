"""What sampling costs in tsu-torch: thermal layers vs their exact counterparts, and DLPack.

Measures, on the configured backend (TSU_BACKEND or `--backend`) and device (CUDA when present):

- `thermal_linear_time_ratio`: forward + backward of `ThermalLinear` (k samples) over
  `nn.Linear` + tanh at the same shape;
- `thermodynamic_attention_time_ratio`: forward + backward of `ThermodynamicAttention`
  (k keys sampled per query) over exact softmax attention (`nn.MultiheadAttention`), same shapes;
- `pbit_dlpack_seconds` / `pbit_host_copy_seconds`: one p-bit call with torch tensors crossing
  by DLPack (in and out) vs through host numpy copies, and their ratio.

Reported values are medians over `--repeats` timed calls after warm-up.

    python benchmarks/torch_layers.py                  # GPU sizes (run with TSU_BACKEND=jax-sim)
    python benchmarks/torch_layers.py --quick          # small CPU sizes, < 1 min

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from _jsonl import emit_torch

from tsu_torch import ThermalContext, ThermalLinear, ThermodynamicAttention


def median_seconds(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    for _ in range(2):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_benchmark(
    arguments: argparse.Namespace, context: ThermalContext, device: torch.device
) -> None:
    batch, width = arguments.batch, arguments.width
    inputs = torch.randn(batch, width, device=device)
    exact = torch.nn.Linear(width, width, device=device)

    def exact_step() -> None:
        torch.tanh(exact(inputs)).sum().backward()

    baseline = median_seconds(exact_step, device, arguments.repeats)
    for num_samples in arguments.samples:
        thermal = ThermalLinear(
            width, width, num_samples=num_samples, context=context, device=device
        )

        def thermal_step(layer: ThermalLinear = thermal) -> None:
            layer(inputs).sum().backward()

        seconds = median_seconds(thermal_step, device, arguments.repeats)
        config = {
            "backend": context.backend.name,
            "batch": batch,
            "width": width,
            "num_samples": num_samples,
        }
        emit_torch("thermal_linear_seconds", config, seconds, "s", device)
        emit_torch("linear_tanh_seconds", config, baseline, "s", device)
        emit_torch("thermal_linear_time_ratio", config, seconds / baseline, "ratio", device)


def attention_benchmark(
    arguments: argparse.Namespace, context: ThermalContext, device: torch.device
) -> None:
    batch, length, width, heads = (
        arguments.batch_attention,
        arguments.length,
        arguments.embed,
        arguments.heads,
    )
    inputs = torch.randn(batch, length, width, device=device)
    exact = torch.nn.MultiheadAttention(width, heads, batch_first=True, device=device)

    def exact_step() -> None:
        exact(inputs, inputs, inputs, need_weights=False)[0].sum().backward()

    baseline = median_seconds(exact_step, device, arguments.repeats)
    for num_samples in arguments.samples:
        thermal = ThermodynamicAttention(
            width, heads, batch_first=True, num_samples=num_samples, context=context, device=device
        )

        def thermal_step(layer: ThermodynamicAttention = thermal) -> None:
            layer(inputs, inputs, inputs, need_weights=False)[0].sum().backward()

        seconds = median_seconds(thermal_step, device, arguments.repeats)
        config = {
            "backend": context.backend.name,
            "batch": batch,
            "length": length,
            "embed": width,
            "heads": heads,
            "num_samples": num_samples,
        }
        emit_torch("thermodynamic_attention_seconds", config, seconds, "s", device)
        emit_torch("softmax_attention_seconds", config, baseline, "s", device)
        emit_torch(
            "thermodynamic_attention_time_ratio", config, seconds / baseline, "ratio", device
        )


def dlpack_benchmark(
    arguments: argparse.Namespace, context: ThermalContext, device: torch.device
) -> None:
    fields = torch.randn(arguments.pbit_size, device=device)
    backend = context.backend

    def through_dlpack() -> torch.Tensor:
        spins = backend.pbit(fields, key=context.next_key())
        return torch.from_dlpack(spins).to(device=device, dtype=fields.dtype)

    def through_host() -> torch.Tensor:
        spins = backend.pbit(fields.cpu().numpy(), key=context.next_key())
        return torch.from_numpy(np.array(spins)).to(device=device, dtype=fields.dtype)

    dlpack = median_seconds(through_dlpack, device, arguments.repeats)
    host = median_seconds(through_host, device, arguments.repeats)
    config = {"backend": backend.name, "num_fields": arguments.pbit_size}
    emit_torch("pbit_dlpack_seconds", config, dlpack, "s", device)
    emit_torch("pbit_host_copy_seconds", config, host, "s", device)
    emit_torch("pbit_host_copy_over_dlpack", config, host / dlpack, "ratio", device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CPU sizes (< 1 min)")
    parser.add_argument("--backend", default=None, help="backend name (default: TSU_BACKEND)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()
    if arguments.quick:
        sizes = dict(
            batch=64,
            width=128,
            batch_attention=2,
            length=32,
            embed=32,
            heads=2,
            pbit_size=1 << 14,
            samples=[1, 8],
        )
        arguments.repeats = min(arguments.repeats, 5)
    else:
        sizes = dict(
            batch=1024,
            width=4096,
            batch_attention=16,
            length=256,
            embed=512,
            heads=8,
            pbit_size=1 << 24,
            samples=[1, 8, 32],
        )
    for name, value in sizes.items():
        setattr(arguments, name, value)
    device = torch.device(arguments.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    context = ThermalContext(seed=0, backend=arguments.backend)
    linear_benchmark(arguments, context, device)
    attention_benchmark(arguments, context, device)
    dlpack_benchmark(arguments, context, device)


if __name__ == "__main__":
    main()
