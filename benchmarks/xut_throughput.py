"""XUT training throughput (images/s) and model FLOPs utilisation, with and without TREAD.

FLOPs are counted from the shapes (xut_flow.forward_flops: matmuls and attention, 2 per
multiply-add; training = 3x forward). With TREAD the count uses the tokens actually processed,
so MFU stays honest and the speed-up shows in images/s. Noise: jax.random on the device (the
fast path, noise_source="jax"). Synthetic latents (throughput does not depend on the data).
Each step also reports its compiled scratch memory (XLA's temp buffers: the activations kept
for the backward pass, attention scores included when they are materialised).

With several `--attention` kernels, each measurement runs once per kernel in this process, a
ratio line compares each to the first, and an "output difference" line checks that the kernels
compute the same function: max |v_kernel - v_first| on one batch, beside the same measure
between the first kernel in bf16 and in float32 (the size of bf16 rounding).

    python benchmarks/xut_throughput.py                      # XUT-Small, 32x32x4, H100
    python benchmarks/xut_throughput.py --attention xla cudnn --batch-sizes 256 512
    python benchmarks/xut_throughput.py --devices 2 --tread-rates 0.0   # 2 GPUs, data parallel
    python benchmarks/xut_throughput.py --quick              # tiny preset on CPU, < 1 min

`--trace` also records a profiler trace of 3 steps per measurement and prints where the
device time goes: shares of matrix products, attention, XLA fusions, copies and the rest,
and the top kernels by time (GPU only: the CPU trace has no device kernels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from profile_events import device_kernels, record

from xut_flow.config import TrainConfig, preset
from xut_flow.model import XUT, attention_implementation, forward_flops, parameter_count
from xut_flow.train import learning_rate_schedule, make_mesh, make_optimizer, make_train_step

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks


def _device() -> str:
    device = jax.devices()[0]
    return getattr(device, "device_kind", str(device))


def _peak(device: str, override: float | None) -> float | None:
    if override:
        return override
    return next((value for name, value in PEAK_TFLOPS.items() if name in device), None)


def measure(model_config, batch: int, steps: int, size: int, devices: int = 1, trace=None):
    """(median seconds per training step after one compile+warm-up step, scratch bytes,
    microseconds per device kernel name over 3 traced steps, or None without `trace`).

    With devices > 1 the batch is sharded over a data-parallel mesh, parameters replicated.
    """
    config = TrainConfig(batch_size=batch, noise_source="jax", warmup_steps=10, total_steps=1000)
    graphdef, params = nnx.split(XUT(model_config, rngs=nnx.Rngs(0)))
    mesh = make_mesh(devices)
    replicated = NamedSharding(mesh, PartitionSpec())
    params = jax.device_put(params, replicated)
    optimizer = make_optimizer(config, model_config)
    opt_state = jax.device_put(optimizer.init(params), replicated)
    schedule = learning_rate_schedule(config, model_config)
    step = jax.jit(
        make_train_step(graphdef, optimizer, config, schedule),
        out_shardings=replicated,  # outputs laid out as the inputs: the compiled step takes them
        donate_argnums=(0, 1),
    )
    key = jax.random.key(0)
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    latents = jax.device_put(
        jax.random.normal(key, (batch, size, size, model_config.latent_channels)), batch_sharding
    )
    text = jax.device_put(jax.random.normal(key, (batch, model_config.text_dim)), batch_sharding)
    step = step.lower(params, opt_state, latents, text, None, None, jnp.int32(0)).compile()
    memory = step.memory_analysis()
    scratch = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
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
    kernels = None
    if trace is not None:
        state = {"params": params, "opt_state": opt_state}

        def one_step() -> jax.Array:
            new = step(state["params"], state["opt_state"], latents, text, None, None, 0)
            state["params"], state["opt_state"] = new[0], new[1]
            return new[2]

        kernels = device_kernels(record(one_step, Path(trace), count=3, warmup=1))
    return statistics.median(times), scratch, kernels


def report_kernels(line: dict, kernels: Counter, top: int = 12) -> None:
    """Shares of the traced device time by kernel class, then the `top` kernels."""
    from profile_events import kernel_classes

    total = sum(kernels.values())
    if not total:
        print(json.dumps({**line, "what": "trace: no device kernels (CPU)", "value": 0}))
        return
    for label, microseconds in kernel_classes(kernels).most_common():
        share = {**line, "what": f"device time share: {label}", "unit": "fraction"}
        print(json.dumps({**share, "value": microseconds / total}))
    for name, microseconds in kernels.most_common(top):
        kernel = {**line, "what": "device time share of one kernel", "kernel": name[:160]}
        print(json.dumps({**kernel, "value": microseconds / total, "unit": "fraction"}))


def output_difference(model_config, other: str, size: int, batch: int = 8) -> dict[str, float]:
    """Max |v| differences on one batch: kernel `other` vs model_config's, and vs float32 XLA.

    The weights are the initial ones plus noise (the zero-initialised gates and output layer
    would make every velocity zero); TREAD routing is on when the config has it, so the cross
    attention between different lengths is compared too.
    """
    key = jax.random.key(1)
    graphdef, state = nnx.split(XUT(model_config, rngs=nnx.Rngs(0)))
    leaves, treedef = jax.tree.flatten(state)
    *keys, x_key, t_key, text_key = jax.random.split(key, len(leaves) + 3)
    noisy = [
        leaf + 0.02 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)
    ]
    state = jax.tree.unflatten(treedef, noisy)
    x = jax.random.normal(x_key, (batch, size, size, model_config.latent_channels))
    t = jax.random.uniform(t_key, (batch,))
    text = jax.random.normal(text_key, (batch, model_config.text_dim))

    def velocity(config):
        graphdef = nnx.split(XUT(config, rngs=nnx.Rngs(0)))[0]
        run = jax.jit(
            lambda state, x, t, text: nnx.merge(graphdef, state)(
                x, t, text, deterministic=False, key=key
            )
        )
        return run(state, x, t, text)

    reference = velocity(model_config)
    full = velocity(model_config.replace(compute_dtype="float32", attention="xla"))
    return {
        "max_abs_difference": float(
            jnp.max(jnp.abs(velocity(model_config.replace(attention=other)) - reference))
        ),
        "first_vs_float32_xla_max_abs_difference": float(jnp.max(jnp.abs(reference - full))),
        "max_abs_velocity": float(jnp.max(jnp.abs(reference))),
    }


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
    parser.add_argument("--trace", action="store_true", help="device-time breakdown (GPU)")
    parser.add_argument(
        "--attention",
        nargs="+",
        default=["auto"],
        choices=["auto", "xla", "cudnn"],
        help="attention kernels to compare, the first is the reference (cudnn: NVIDIA GPU)",
    )
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
        flops = 3 * forward_flops(
            base.replace(tread_rate=rate), options.size, options.size, routed=rate > 0
        )
        for batch in options.batch_sizes:
            first = None
            for attention in options.attention:
                model_config = base.replace(tread_rate=rate, attention=attention)
                config = {
                    "preset": options.preset,
                    "latent": [options.size, options.size, base.latent_channels],
                    "batch": batch,
                    "tread_rate": rate,
                    "dtype": base.compute_dtype,
                    "attention": attention,
                    "attention_kernel": attention_implementation(model_config),
                    "noise_source": "jax",
                    "devices": options.devices,
                    "train_flops_per_image": flops,
                }
                try:
                    trace = tempfile.mkdtemp(prefix="xut-trace-") if options.trace else None
                    seconds, scratch, kernels = measure(
                        model_config, batch, options.steps, options.size, options.devices, trace
                    )
                except Exception as error:  # out of memory at this batch: report and go on
                    message = f"batch {batch}, attention {attention}: {type(error).__name__}"
                    print(f"{message}: {error}"[:300], file=sys.stderr)
                    continue
                images = batch / seconds
                line = {"what": "train throughput", "config": config, "device": device}
                print(json.dumps({**line, "value": images, "unit": "images/s"}), flush=True)
                achieved = images * flops / 1e12
                print(
                    json.dumps({**line, "what": "achieved", "value": achieved, "unit": "TFLOP/s"})
                )
                if peak:
                    value = achieved / (peak * options.devices)
                    mfu = {**line, "what": "MFU", "value": value, "unit": "fraction"}
                    mfu["config"] = {**config, "peak_tflops": peak}
                    print(json.dumps(mfu), flush=True)
                if scratch is not None:
                    memory = {**line, "what": "train step scratch memory"}
                    print(json.dumps({**memory, "value": scratch / 2**30, "unit": "GiB"}))
                if kernels is not None:
                    report_kernels(line, kernels)
                if first is None:
                    first = (attention, images)
                else:
                    ratio = {**line, "what": f"throughput ratio {attention} / {first[0]}"}
                    print(json.dumps({**ratio, "ratio": images / first[1], "unit": "ratio"}))
        for other in options.attention[1:]:
            reference = base.replace(tread_rate=rate, attention=options.attention[0])
            difference = output_difference(reference, other, options.size)
            config = {
                "preset": options.preset,
                "latent": [options.size, options.size, base.latent_channels],
                "tread_rate": rate,
                "dtype": base.compute_dtype,
                "attention": [options.attention[0], other],
                "attention_kernel": [
                    attention_implementation(reference),
                    attention_implementation(reference.replace(attention=other)),
                ],
            }
            line = {"what": f"velocity difference {other} vs {options.attention[0]}"}
            line.update(config=config, device=device, value=difference.pop("max_abs_difference"))
            print(json.dumps({**line, "unit": "max |dv|", **difference}), flush=True)


if __name__ == "__main__":
    main()
