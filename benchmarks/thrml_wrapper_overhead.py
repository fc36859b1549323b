"""What the tsu-thrml wrapper costs over thrml called directly, on the same 2D Ising model.

Both sides run the same computation in one process: a periodic L x L lattice (J = 1, h = 0) at
beta 0.6, checkerboard blocks, C chains vmapped, the same initial states and the same chain keys,
`sweeps` block Gibbs sweeps, one recorded state per chain. The first call of each is checked to
return identical states (so the two sides do the same work), then calls alternate and the median
wall time of each is reported, with their ratio. The wrapper's time includes what it adds: input
validation (`SampleRequest.build`), converting states to +-1 and computing their energies.

    python benchmarks/thrml_wrapper_overhead.py            # L=256, 1024 chains (a GPU run)
    python benchmarks/thrml_wrapper_overhead.py --quick    # L=32, 64 chains (CPU, < 1 min)

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from thrml import Block, SamplingSchedule, SpinNode, sample_states
from thrml.models import IsingEBM, IsingSamplingProgram

import tsu_core


@dataclass(frozen=True)
class Config:
    size: int = 256
    chains: int = 1024
    beta: float = 0.6
    sweeps: int = 100
    repeats: int = 5


QUICK = Config(size=32, chains=64, sweeps=50, repeats=5)


def _thrml_direct(topology: tsu_core.Topology, parameters: tsu_core.Parameters, config: Config):
    """The model written straight in thrml, as its own examples do."""
    nodes = [SpinNode() for _ in range(topology.num_nodes)]
    model = IsingEBM(
        nodes,
        [(nodes[i], nodes[j]) for i, j in topology.edges],
        jnp.asarray(parameters.biases, jnp.float32),
        jnp.asarray(parameters.weights, jnp.float32),
        jnp.asarray(config.beta, jnp.float32),
    )
    blocks = [Block([nodes[i] for i in block]) for block in topology.blocks]
    program = IsingSamplingProgram(model, blocks, [])
    schedule = SamplingSchedule(config.sweeps, 1, 1)
    everything = [Block(nodes)]

    @eqx.filter_jit
    def run(program, keys, starts):
        return jax.vmap(
            lambda key, start: sample_states(key, program, schedule, start, [], everything)
        )(keys, starts)

    def call(key: tsu_core.Key, initial: jax.Array) -> jax.Array:
        key_data = jax.random.wrap_key_data(jnp.asarray(key.words(), jnp.uint32))
        _, run_key = jax.random.split(key_data)  # tsu-thrml's derivation, for equal states
        starts = [initial[:, block] > 0 for block in topology.blocks]
        return run(program, jax.random.split(run_key, config.chains), starts)[0]

    return call


def _timed(function, *arguments) -> tuple[float, object]:
    start = time.perf_counter()
    result = jax.block_until_ready(function(*arguments))
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CPU size (L=32, 64 chains)")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--chains", type=int, default=None)
    parser.add_argument("--sweeps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    arguments = parser.parse_args()
    config = QUICK if arguments.quick else Config()
    overrides = {
        name: value
        for name in ("size", "chains", "sweeps", "repeats")
        if (value := getattr(arguments, name)) is not None
    }
    config = Config(**{**asdict(config), **overrides})

    topology, parameters = tsu_core.lattice_2d(config.size)
    parameters = tsu_core.Parameters(
        jnp.asarray(parameters.weights, jnp.float32), jnp.asarray(parameters.biases, jnp.float32)
    )
    generator = np.random.default_rng(0)
    initial = jnp.asarray(
        np.where(generator.random((config.chains, topology.num_nodes)) < 0.5, 1, -1), jnp.int8
    )

    build_start = time.perf_counter()
    program = tsu_core.get_backend("thrml").compile(topology)
    build_seconds = time.perf_counter() - build_start
    direct = _thrml_direct(topology, parameters, config)

    def wrapped(key: tsu_core.Key, start: jax.Array) -> jax.Array:
        return program.sample(
            parameters,
            key=key,
            num_chains=config.chains,
            burn_in=config.sweeps - 1,
            schedule=config.beta,
            initial_state=start,
        ).states

    first_wrapped, wrapped_states = _timed(wrapped, tsu_core.Key(0), initial)
    first_direct, direct_states = _timed(direct, tsu_core.Key(0), initial)
    identical = bool(np.array_equal(np.asarray(wrapped_states), np.where(direct_states, 1, -1)))

    wrapped_times, direct_times = [], []
    for repeat in range(config.repeats):
        key = tsu_core.Key(repeat + 1)
        wrapped_times.append(_timed(wrapped, key, initial)[0])
        direct_times.append(_timed(direct, key, initial)[0])
    wrapped_seconds = statistics.median(wrapped_times)
    direct_seconds = statistics.median(direct_times)

    device = str(jax.devices()[0].device_kind)
    described = {**asdict(config), "identical_states": identical, "quick": arguments.quick}
    rows = [
        ("thrml_direct_seconds", direct_seconds, "s"),
        ("tsu_thrml_seconds", wrapped_seconds, "s"),
        ("tsu_thrml_overhead_ratio", wrapped_seconds / direct_seconds, "ratio"),
        ("tsu_thrml_first_call_seconds", first_wrapped, "s"),
        ("thrml_direct_first_call_seconds", first_direct, "s"),
        ("tsu_thrml_graph_build_seconds", build_seconds, "s"),
    ]
    for what, value, unit in rows:
        line = {"what": what, "config": described, "device": device, "value": value, "unit": unit}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
