"""How fast is JAX's own Mosaic GPU Hopper matmul (TMA loads, wgmma, a warp-specialised
pipeline, optional 2-CTA cluster multicast) on the two products of an RBM sweep? A yardstick
for the product inside the fused Triton kernel (`tsu_jax_sim.fused_dense`), which costs about
7.8 us of a 12.4 us sweep on an H200 (docs/notes/jax-sim-rbm-sweep.md).

  hidden update: (512 x 832) @ (832 x 1024)   visible update: (832 x 512) @ (512 x 1024)

(the 784 x 500 RBM's blocks padded to the fused kernel's tiles; 1000 chains padded to 1024).
Every `hopper_matmul_mgpu.TuningConfig` of a small grid is timed by Mosaic GPU's profiler
(kernel time, median of 20), beside XLA's `jnp.matmul`. Needs a Hopper GPU; `--quick` (CPU)
only lowers one config for CUDA. JSON lines.

    python benchmarks/jax_sim_mgpu_matmul.py            # H100 / H200
    python benchmarks/jax_sim_mgpu_matmul.py --quick    # CPU: lowering only
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from jax.experimental.pallas.ops.gpu import hopper_matmul_mgpu as hopper

SHAPES = {"hidden update": (512, 832, 1024), "visible update": (832, 512, 1024)}  # m, k, n


def configs() -> Iterator[Any]:
    dimensions = hopper.MatmulDimension
    for rows, columns, steps, cluster, groups in itertools.product(
        (64, 128),
        (64, 128),
        (4, 6),
        (None, dimensions.N, dimensions.M),
        (dimensions.N, dimensions.M),
    ):
        yield hopper.TuningConfig(
            tile_m=rows,
            tile_n=columns,
            tile_k=64,
            max_concurrent_steps=steps,
            epi_tile_m=64,
            epi_tile_n=64,
            grid_minor_dim=dimensions.N,
            grid_tile_width=1,
            wg_dimension=groups,
            cluster_dimension=cluster,
        )


def label(config: Any) -> str:
    return (
        f"tile {config.tile_m}x{config.tile_n}, {config.max_concurrent_steps} steps in flight, "
        f"cluster {config.cluster_dimension}, warpgroups along {config.wg_dimension}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    if arguments.quick:
        m, k, n = SHAPES["hidden update"]
        left, right = jnp.zeros((m, k), jnp.bfloat16), jnp.zeros((k, n), jnp.bfloat16)
        hopper.get_num_sms = lambda: 132  # no GPU to ask
        config = next(configs())
        lowered = (
            jax.jit(lambda a, b: hopper.matmul(a, b, None, config))
            .trace(left, right)
            .lower(lowering_platforms=("cuda",))
        )
        config_row = {"shape": "hidden update", "impl": label(config)}
        emit_jax(
            "lowered for CUDA (bytes of StableHLO)", config_row, len(lowered.as_text()), "bytes"
        )
        return
    from jax.experimental.mosaic.gpu import profiler

    for name, (m, k, n) in SHAPES.items():
        weights = jax.random.normal(jax.random.key(0), (m, k), jnp.bfloat16)
        spins = jnp.sign(jax.random.normal(jax.random.key(1), (k, n))).astype(jnp.bfloat16)
        exact = np.asarray(jnp.matmul(weights, spins, preferred_element_type=jnp.float32))
        row = {"shape": name, "m": m, "k": k, "n": n}
        _, times = profiler.measure(
            lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32), iterations=20
        )(weights, spins)
        emit_jax(
            "matmul kernel time",
            {**row, "impl": "XLA jnp.matmul"},
            statistics.median(times) * 1e3,
            "us",
        )
        for config in configs():
            impl = f"Mosaic GPU hopper_matmul_mgpu, {label(config)}"
            try:
                out, times = profiler.measure(
                    lambda a, b, config=config: hopper.matmul(a, b, None, config), iterations=20
                )(weights, spins)
            except Exception as error:  # a config this shape or the shared memory refuses
                emit_jax("matmul failed", {**row, "impl": impl, "error": repr(error)[:200]}, 0, "")
                continue
            error = float(np.max(np.abs(np.asarray(out, np.float32) - exact)))
            emit_jax(
                "matmul kernel time",
                {**row, "impl": impl, "max abs error (bfloat16 output)": error},
                statistics.median(times) * 1e3,
                "us",
            )


if __name__ == "__main__":
    main()
