"""XUT training throughput (images/s) and model FLOPs utilisation, with and without TREAD.

FLOPs are counted from the shapes (xut_flow.forward_flops: matmuls and attention, 2 per
multiply-add; training = 3x forward). With TREAD the count uses the tokens actually processed,
so MFU stays honest and the speed-up shows in images/s. Noise: jax.random on the device (the
fast path, noise_source="jax"). Synthetic latents (throughput does not depend on the data).

    python benchmarks/xut_throughput.py                      # XUT-Small, 32x32x4, H100
    python benchmarks/xut_throughput.py --devices 2 --tread-rates 0.0   # 2 GPUs, data parallel
    python benchmarks/xut_throughput.py --quick              # tiny preset on CPU, < 1 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from xut_flow.config import TrainConfig, preset
from xut_flow.model import XUT, forward_flops, parameter_count
from xut_flow.train import learning_rate_schedule, make_mesh, make_optimizer, make_train_step

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks


def _device() -> str:
    device = jax.devices()[0]
    return getattr(device, "device_kind", str(device))


def _peak(device: str, override: float | None) -> float | None:
    if override:
        return override
    return next((value for name, value in PEAK_TFLOPS.items() if name in device), None)


def measure(model_config, batch: int, steps: int, size: int, devices: int = 1) -> float:
    """Median seconds per training step (after one compile+warm-up step).

    With devices > 1 the batch is sharded over a data-parallel mesh, parameters replicated.
    """
    config = TrainConfig(batch_size=batch, noise_source="jax", warmup_steps=10, total_steps=1000)
    graphdef, params = nnx.split(XUT(model_config, rngs=nnx.Rngs(0)))
    mesh = make_mesh(devices)
    params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
    optimizer = make_optimizer(config, model_config)
    opt_state = jax.device_put(optimizer.init(params), NamedSharding(mesh, PartitionSpec()))
    schedule = learning_rate_schedule(config, model_config)
    step = jax.jit(make_train_step(graphdef, optimizer, config, schedule), donate_argnums=(0, 1))
    key = jax.random.key(0)
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    latents = jax.device_put(
        jax.random.normal(key, (batch, size, size, model_config.latent_channels)), batch_sharding
    )
    text = jax.device_put(jax.random.normal(key, (batch, model_config.text_dim)), batch_sharding)
    params, opt_state, loss, _ = step(params, opt_state, latents, text, None, None, jnp.int32(0))
    loss.block_until_ready()
    times = []
    for index in range(steps):
        began = time.perf_counter()
        params, opt_state, loss, _ = step(
            params, opt_state, latents, text, None, None, jnp.int32(index + 1)
        )
        loss.block_until_ready()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default="xut-small")
    parser.add_argument("--size", type=int, default=32, help="latent side (32 -> 32x32x4)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--tread-rates", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--devices", type=int, default=1, help="data-parallel GPUs")
    parser.add_argument("--peak-tflops", type=float, help="override the device's bf16 peak")
    options = parser.parse_args()
    if options.quick:
        options.preset, options.size, options.batch_sizes, options.steps = "tiny", 8, [8], 3
    device = _device()
    peak = _peak(device, options.peak_tflops)
    base = preset(options.preset)
    print(
        json.dumps(
            {
                "what": "parameters",
                "config": {"preset": options.preset},
                "device": device,
                "value": parameter_count(base),
                "unit": "parameters",
            }
        ),
        flush=True,
    )
    for rate in options.tread_rates:
        model_config = base.replace(tread_rate=rate)
        flops = 3 * forward_flops(model_config, options.size, options.size, routed=rate > 0)
        for batch in options.batch_sizes:
            config = {
                "preset": options.preset,
                "latent": [options.size, options.size, base.latent_channels],
                "batch": batch,
                "tread_rate": rate,
                "dtype": base.compute_dtype,
                "noise_source": "jax",
                "devices": options.devices,
                "train_flops_per_image": flops,
            }
            try:
                seconds = measure(model_config, batch, options.steps, options.size, options.devices)
            except Exception as error:  # out of memory at this batch: report and go on
                print(f"batch {batch}: {type(error).__name__}: {error}"[:300], file=sys.stderr)
                continue
            images = batch / seconds
            line = {"what": "train throughput", "config": config, "device": device}
            print(json.dumps({**line, "value": images, "unit": "images/s"}), flush=True)
            achieved = images * flops / 1e12
            print(json.dumps({**line, "what": "achieved", "value": achieved, "unit": "TFLOP/s"}))
            if peak:
                value = achieved / (peak * options.devices)
                mfu = {**line, "what": "MFU", "value": value, "unit": "fraction"}
                mfu["config"] = {**config, "peak_tflops": peak}
                print(json.dumps(mfu), flush=True)


if __name__ == "__main__":
    main()
