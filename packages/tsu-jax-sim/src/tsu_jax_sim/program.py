"""A topology compiled for the JAX simulator: one `jax.jit` per topology, parameters traced.

The sweeps of a call run in `lax.scan`: `burn_in` sweeps, then `num_samples` rounds of
`thinning` sweeps, each round ending with a recorded state (`SampleRequest.record_sweeps`).
`moments` accumulates sums on device in the scan's carry instead of stacking states. Weights,
biases, betas (one per sweep), clamp values and masks, initial states and the key are traced
arguments, so a new parameter set, schedule, clamp or key never recompiles; only new array
shapes (chains, samples, burn-in, thinning) trace again.

Spin models on the `neighbours` and `dense` layouts (without tempering) hold their states in
the loop as node-major blocks and sweep them with `node_major.NodeMajorSweep`; the states are
turned back into (chains, N) only to record.

Chains are laid out over a `jax.sharding.Mesh` of every visible device (axis "chains") when
their number divides evenly; random numbers come from partitionable threefry keys, so the
samples do not depend on how many devices share the work.
"""

from __future__ import annotations

import logging
import operator
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from tsu_core.arrays import framework, to_jax, to_numpy
from tsu_core.parameters import MAX_ABSOLUTE_SUM, Parameters, not_finite, too_large
from tsu_core.protocol import Moments, Samples
from tsu_core.request import SampleRequest
from tsu_core.topology import Topology
from tsu_jax_sim import fused_dense, node_major
from tsu_jax_sim.arrays import jax_key
from tsu_jax_sim.layouts import make_layout
from tsu_jax_sim.sweep import exchange_replicas, sweep

logger = logging.getLogger(__name__)

INITIAL_STREAM = 0x7FFFFFFF  # fold-in index of the key that draws random initial states
EXCHANGE_STREAM = 0x7FFFFFFE  # fold-in index (per sweep) of the replica-exchange draws


class JaxSimProgram:
    """A topology compiled by `JaxSimBackend`; see the module docstring."""

    def __init__(self, topology: Topology, backend: Any) -> None:
        self.topology = topology
        self.backend = backend
        self.layout = make_layout(topology, backend.layout_for(topology), backend.precision)
        self.num_replicas = backend.num_replicas if backend.sampler == "tempering" else 1
        self.local_sampler = "gibbs" if backend.sampler == "tempering" else backend.sampler
        ladder = backend.ladder_low ** (1.0 - np.linspace(0.0, 1.0, self.num_replicas))
        self.ladder = ladder.astype(np.float32) if self.num_replicas > 1 else np.ones(1, np.float32)
        self.node_major: node_major.NodeMajorSweep | None = None
        if node_major.applies(self.layout, self.num_replicas):
            if backend.fused_for(self.layout, self.local_sampler):
                on_cpu = backend.mesh.devices.flat[0].platform == "cpu"
                self.node_major = fused_dense.FusedDenseSweep(self.layout, interpret=on_cpu)
            else:
                self.node_major = node_major.NodeMajorSweep(self.layout)
        self.trace_count = 0
        self._cached_zeros: tuple[Any, jax.Array] | None = None  # see _zero_clamp
        self._checked: list[weakref.ref] = []  # see _check_finite
        self._run = jax.jit(
            self._run_traced,
            static_argnames=("num_chains", "burn_in", "num_samples", "thinning", "mode", "sharded"),
        )
        logger.debug("compiled %r with the %s layout", topology, self.layout.kind)

    @property
    def layout_kind(self) -> str:
        return self.layout.kind

    # -- the protocol ----------------------------------------------------------------------------
    def sample(self, parameters: Parameters, **options: Any) -> Samples:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, check_finite=False, **options
        )
        states, energies, final = self._call(request, "sample")
        return Samples(states, energies, final)

    def moments(self, parameters: Parameters, **options: Any) -> Moments:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, check_finite=False, **options
        )
        (nodes, edges, mean_energy), _, final = self._call(request, "moments")
        count = request.num_chains * request.num_samples
        return Moments(nodes, edges, mean_energy, count, final)

    # -- host side -------------------------------------------------------------------------------
    def _call(self, request: SampleRequest, mode: str) -> tuple[Any, Any, Any]:
        topology = self.topology
        chains = request.num_chains
        # Host-side arrays stay numpy (cast inside the jit): eager jnp ops would each compile.
        weights = _device_or_numpy(request.parameters.weights)
        biases = _device_or_numpy(request.parameters.biases)
        free = np.ones(topology.num_nodes, dtype=np.uint32)
        free[request.clamp_nodes] = 0
        # The small per-call inputs travel as one uint32 array (one host-to-device copy instead
        # of one per array): key words, betas (float32 bits), free.
        packed = np.concatenate(
            [
                np.array(request.key.words(), dtype=np.uint32),
                request.betas.astype(np.float32).view(np.uint32),
                free,
            ]
        )
        # Clamp values at every node, (C, N) (zero where free), so that clamping other nodes
        # or giving (k,) instead of (C, k) values keeps the traced shapes: no recompile.
        # Spins +-1 travel as int8 (exact); no clamp reuses one zero array kept on the device.
        state_dtype = np.int8 if topology.is_spin else np.int32
        shape = (chains, topology.num_nodes)
        mesh = self.backend.mesh
        sharded = mesh.size > 1 and chains % mesh.size == 0
        clamp: Any
        if request.clamp_values is None:
            clamp = self._zero_clamp(shape, state_dtype, sharded)
        else:
            values = _device_or_numpy(request.clamp_values)
            if isinstance(values, np.ndarray):
                clamp = np.zeros(shape, state_dtype)
                clamp[:, request.clamp_nodes] = values
            else:  # device values go into the zeros already on the device
                clamped = (chains, request.clamp_nodes.size)
                clamp = (
                    self._zero_clamp(shape, state_dtype, sharded)
                    .at[:, request.clamp_nodes]
                    .set(jnp.broadcast_to(values.astype(state_dtype), clamped))
                )
        initial = None
        if request.initial_state is not None:
            initial = _device_or_numpy(request.initial_state)
        if sharded:
            chain_sharding = NamedSharding(mesh, PartitionSpec("chains", None))
            if request.clamp_values is not None:
                clamp = jax.device_put(clamp, chain_sharding)
            if initial is not None:
                initial = jax.device_put(initial, chain_sharding)
        *outputs, finite = self._run(
            weights,
            biases,
            packed,
            clamp,
            initial,
            chains,
            burn_in=request.burn_in,
            num_samples=request.num_samples,
            thinning=request.thinning,
            mode=mode,
            sharded=sharded,
        )
        self._check_finite(request.parameters, finite)
        return tuple(outputs)

    def _check_finite(self, parameters: Parameters, finite: jax.Array) -> None:
        """Raise for NaN or infinite parameters, from the flags the program computed.

        Reading the flags waits for the sweeps. JAX arrays are immutable, so parameters that
        are the very arrays of the last call that passed are not read again: sampling a fixed
        model returns without waiting. numpy arrays and torch tensors (mutable) are always read.
        """
        arrays = (parameters.weights, parameters.biases)
        immutable = all(framework(array) == "jax" for array in arrays)
        checked = [ref() for ref in self._checked]
        if immutable and len(checked) == 2 and all(map(operator.is_, checked, arrays)):
            return
        flags = np.asarray(finite)
        for name, ok in zip(("weights", "biases"), flags[:2], strict=True):
            if not ok:
                raise not_finite(name)
        if not flags[2]:
            # The error path only: the sum in float64 on the host, where it does not overflow.
            raise too_large(sum(float(np.abs(to_numpy(a, np.float64)).sum()) for a in arrays))
        if immutable:
            self._checked = [weakref.ref(array) for array in arrays]

    def _zero_clamp(self, shape: tuple[int, int], dtype: Any, sharded: bool) -> jax.Array:
        """Zeros of `shape` on the device(s), transferred once per shape (the last is kept)."""
        cached = self._cached_zeros
        if cached is None or cached[0] != (shape, sharded):
            sharding = NamedSharding(self.backend.mesh, PartitionSpec("chains", None))
            array = jax.device_put(np.zeros(shape, dtype), sharding if sharded else None)
            cached = self._cached_zeros = ((shape, sharded), array)
        return cached[1]

    # -- device side -----------------------------------------------------------------------------
    def _run_traced(
        self,
        weights: jax.Array,
        biases: jax.Array,
        packed: jax.Array,
        clamp_values: jax.Array,
        initial: jax.Array | None,
        num_chains: int,
        *,
        burn_in: int,
        num_samples: int,
        thinning: int,
        mode: str,
        sharded: bool,
    ) -> tuple[Any, Any, Any, jax.Array]:
        self.trace_count += 1  # runs once per trace: the compile counter of the tests
        layout, topology, plan = self.layout, self.topology, self.node_major
        num_rungs = self.num_replicas
        total = burn_in + num_samples * thinning
        key = jax_key(packed[:2])
        all_betas = jax.lax.bitcast_convert_type(packed[2 : 2 + total], jnp.float32)
        burn_betas = all_betas[:burn_in]
        record_betas = all_betas[burn_in:].reshape(num_samples, thinning)
        free = packed[2 + total :] != 0
        magnitude = jnp.abs(weights).sum() + jnp.abs(biases).sum()
        finite = jnp.stack(
            [
                jnp.isfinite(weights).all(),
                jnp.isfinite(biases).all(),
                magnitude <= MAX_ABSOLUTE_SUM,  # fields and energies stay finite in float32
            ]
        )
        state_dtype = jnp.float32 if topology.is_spin else jnp.int32
        weights, biases = weights.astype(jnp.float32), biases.astype(jnp.float32)
        prepared = (plan or layout).prepare(weights, biases)
        clamp_values = clamp_values.astype(state_dtype)
        ladder = jnp.asarray(self.ladder)

        def constrain(states: Any) -> Any:
            if not sharded:
                return states
            if isinstance(states, tuple):  # node-major blocks: chains (words) on axis 1
                size = self.backend.mesh.size
                spec = NamedSharding(self.backend.mesh, PartitionSpec(None, "chains"))
                return tuple(
                    jax.lax.with_sharding_constraint(part, spec)
                    if part.shape[1] % size == 0
                    else part
                    for part in states
                )
            spec = PartitionSpec("chains", *([None] * (states.ndim - 1)))
            return jax.lax.with_sharding_constraint(states, NamedSharding(self.backend.mesh, spec))

        if initial is None:
            initial_key = jax.random.fold_in(key, INITIAL_STREAM)
            shape = (num_chains, topology.num_nodes)
            if topology.is_spin:
                initial = jnp.where(jax.random.bernoulli(initial_key, 0.5, shape), 1.0, -1.0)
            else:
                initial = jax.random.randint(initial_key, shape, 0, topology.num_categories)
        initial = initial.astype(jnp.float32 if topology.is_spin else jnp.int32)
        initial = jnp.where(free, initial, clamp_values)
        # Rows are (chain, rung) pairs, chain-major; rung R-1 runs at the target beta.
        states = constrain(jnp.repeat(initial, num_rungs, axis=0))
        if plan is not None:
            # Node-major blocks in the loop; every sweep's keys drawn up front (see node_major).
            states = constrain(plan.split(states))
            free_blocks = plan.block_free(free)
            keys = node_major.block_keys(key, total, len(layout.blocks))

        def one_sweep(carry: tuple[Any, jax.Array], beta: jax.Array) -> Any:
            states, step = carry
            if plan is not None:
                states = plan.sweep(
                    prepared, states, keys[step], beta, free_blocks, self.local_sampler
                )
                return (constrain(states), step + 1), None
            sweep_key = jax.random.fold_in(key, step)
            row_betas = jnp.tile(beta * ladder, num_chains)
            states = sweep(layout, prepared, states, sweep_key, row_betas, free, self.local_sampler)
            if num_rungs > 1:
                energies = layout.energies(prepared, states).reshape(num_chains, num_rungs)
                replicas = states.reshape(num_chains, num_rungs, -1)
                replicas, _ = exchange_replicas(
                    replicas,
                    energies,
                    beta * ladder,
                    jax.random.fold_in(sweep_key, EXCHANGE_STREAM),
                    step % 2,
                )
                states = replicas.reshape(states.shape)
            return (constrain(states), step + 1), None

        def target(states: Any) -> jax.Array:
            if plan is not None:
                return plan.join(states, num_chains)
            return states.reshape(num_chains, num_rungs, -1)[:, -1]

        def output(states: jax.Array) -> jax.Array:
            return states.astype(jnp.int8 if topology.is_spin else jnp.int32)

        num_samples = record_betas.shape[0]
        thinning = record_betas.shape[1]
        burn_in = burn_betas.shape[0]
        # Rounds: round 0 runs the burn-in, round k >= 1 runs `thinning` sweeps and records.
        # Each round is a `fori_loop` with a traced length, so the compiled program holds one
        # copy of the sweep, and recording needs no conditional (no host sync on GPUs).
        betas = jnp.concatenate([burn_betas, record_betas.reshape(-1)])
        starts = jnp.concatenate(
            [jnp.zeros(1, jnp.int32), burn_in + thinning * jnp.arange(num_samples, dtype=jnp.int32)]
        )
        lengths = jnp.concatenate(
            [jnp.full(1, burn_in, jnp.int32), jnp.full(num_samples, thinning, jnp.int32)]
        )
        weights = jnp.concatenate([jnp.zeros(1), jnp.ones(num_samples)])
        if mode == "sample":
            recorded = ()
        elif topology.is_spin:
            recorded = (
                jnp.zeros(topology.num_nodes),
                jnp.zeros(topology.num_edges),
                jnp.zeros(()),
            )
        else:
            k = topology.num_categories
            recorded = (
                jnp.zeros((topology.num_nodes, k)),
                jnp.zeros((topology.num_edges, k, k)),
                jnp.zeros(()),
            )

        def record(states: jax.Array, recorded: Any, weight: jax.Array) -> Any:
            chosen = target(states)
            if plan is not None:
                energies = plan.energies(prepared, states, num_chains)
            else:
                energies = layout.energies(prepared, chosen)
            if mode == "sample":
                return recorded, (output(chosen), energies)
            nodes, edges, energy_sum = recorded
            if topology.is_spin:
                nodes = nodes + weight * chosen.sum(0)
            else:
                nodes = nodes + weight * jax.nn.one_hot(chosen, topology.num_categories).sum(0)
            edges = edges + weight * layout.edge_products(chosen)
            return (nodes, edges, energy_sum + weight * energies.mean()), None

        unroll = self.backend.unroll_for(betas.shape[0], len(layout.blocks))
        if unroll > 1:
            # Accelerators: static scans unrolled `unroll` sweeps deep, so the loop's condition
            # (read back by the host on GPUs) and launch gaps come once per `unroll` sweeps.
            def sweep_scan(states: jax.Array, first: int, count: int) -> jax.Array:
                if count == 0:
                    return states
                indices = first + jnp.arange(count, dtype=jnp.uint32)
                (states, _), _ = jax.lax.scan(
                    lambda carry, inputs: one_sweep((carry[0], inputs[1]), inputs[0]),
                    (states, jnp.zeros((), jnp.uint32)),
                    (jax.lax.dynamic_slice_in_dim(betas, first, count), indices),
                    unroll=min(unroll, count),
                )
                return states

            states = sweep_scan(states, 0, burn_in)
            recorded, first_output = record(states, recorded, jnp.zeros(()))

            def round_static(carry: Any, inputs: Any) -> Any:
                states, recorded = carry
                round_betas, first = inputs
                indices = first + jnp.arange(thinning, dtype=jnp.uint32)
                (states, _), _ = jax.lax.scan(
                    lambda c, i: one_sweep((c[0], i[1]), i[0]),
                    (states, jnp.zeros((), jnp.uint32)),
                    (round_betas, indices),
                    unroll=min(unroll, thinning),
                )
                recorded, out = record(states, recorded, jnp.ones(()))
                return (states, recorded), out

            firsts = (burn_in + thinning * jnp.arange(num_samples)).astype(jnp.uint32)
            (states, recorded), outputs = jax.lax.scan(
                round_static, (states, recorded), (record_betas, firsts)
            )
            if mode == "sample":
                outputs = jax.tree_util.tree_map(
                    lambda first, rest: jnp.concatenate([first[None], rest]), first_output, outputs
                )
        else:

            def step(carry: Any, inputs: Any) -> Any:
                states, recorded = carry
                start, length, weight = inputs

                def inner(offset: jax.Array, states: jax.Array) -> jax.Array:
                    index = start + offset
                    (states, _), _ = one_sweep((states, index.astype(jnp.uint32)), betas[index])
                    return states

                states = jax.lax.fori_loop(0, length, inner, states)
                recorded, out = record(states, recorded, weight)
                return (states, recorded), out

            (states, recorded), outputs = jax.lax.scan(
                step, (states, recorded), (starts, lengths, weights)
            )
        final = output(target(states))
        if mode == "sample":
            kept, kept_energies = outputs
            kept = jnp.swapaxes(kept[1:], 0, 1)
            return kept, jnp.swapaxes(kept_energies[1:], 0, 1), final, finite
        nodes, edges, energy_sum = recorded
        count = num_chains * num_samples
        return (nodes / count, edges / count, energy_sum / num_samples), None, final, finite


def _device_or_numpy(array: Any) -> Any:
    """numpy stays numpy (the jit moves it); torch crosses by DLPack; JAX is kept as is."""
    if framework(array) in ("torch", "jax"):
        return to_jax(array)
    return np.asarray(array)
