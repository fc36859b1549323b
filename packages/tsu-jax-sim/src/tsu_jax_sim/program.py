"""A topology compiled for the JAX simulator: one `jax.jit` per topology, parameters traced.

The sweeps of a call run in `lax.scan`: `burn_in` sweeps, then `num_samples` rounds of
`thinning` sweeps, each round ending with a recorded state (`SampleRequest.record_sweeps`).
What a call records is a `Record` value, a static argument: `Record.SAMPLES` stacks the
states, `Record.MOMENTS` accumulates sums on device in the scan's carry instead. Weights,
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

import enum
import logging
import operator
import weakref
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tsu_core.arrays import framework, to_jax, to_numpy
from tsu_core.parameters import MAX_ABSOLUTE_SUM, Parameters, not_finite, too_large
from tsu_core.protocol import Moments, Samples
from tsu_core.request import SampleRequest
from tsu_core.topology import Topology
from tsu_jax_sim import fused_dense, node_major
from tsu_jax_sim.arrays import jax_key
from tsu_jax_sim.layouts import LayoutParameters, make_layout
from tsu_jax_sim.node_major import BlockParameters
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
            static_argnames=(
                "num_chains",
                "burn_in",
                "num_samples",
                "thinning",
                "record",
                "sharded",
            ),
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
        states, energies, final = self._call(request, Record.SAMPLES)
        return Samples(states, energies, final)

    def moments(self, parameters: Parameters, **options: Any) -> Moments:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, check_finite=False, **options
        )
        (nodes, edges, mean_energy), _, final = self._call(request, Record.MOMENTS)
        count = request.num_chains * request.num_samples
        return Moments(nodes, edges, mean_energy, count, final)

    # -- host side -------------------------------------------------------------------------------
    def _call(self, request: SampleRequest, record: Record) -> tuple[Any, Any, Any]:
        topology = self.topology
        chains = request.num_chains
        # Host-side arrays stay numpy (cast inside the jit): eager jnp ops would each compile.
        # The parameters are put on the backend's devices: a jitted program runs where its
        # committed inputs lie, so parameters left elsewhere (a CPU torch tensor on a GPU
        # machine) would take the whole run there.
        mesh = self.backend.mesh
        weights = _on_mesh(_device_or_numpy(request.parameters.weights), mesh)
        biases = _on_mesh(_device_or_numpy(request.parameters.biases), mesh)
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
        sharded = mesh.size > 1 and chains % mesh.size == 0
        clamp: Any
        if request.clamp_values is None:
            clamp = self._zero_clamp(shape, state_dtype, sharded)
        else:
            values = _device_or_numpy(request.clamp_values, mesh)
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
            initial = _device_or_numpy(request.initial_state, mesh)
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
            record=record,
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
        record: Record,
        sharded: bool,
    ) -> tuple[Any, Any, Any, jax.Array]:
        """The body of `_run`: unpack the call, run its rounds of sweeps, return what `record` asks.

        Returns `record`'s two outputs (`Record.finish`), the final states and the parameter
        flags that `_check_finite` reads.
        """
        self.trace_count += 1  # runs once per trace: the compile counter of the tests
        num_sweeps = burn_in + num_samples * thinning
        key = jax_key(packed[:2])
        betas = jax.lax.bitcast_convert_type(packed[2 : 2 + num_sweeps], jnp.float32)
        free = packed[2 + num_sweeps :] != 0
        prepared = (self.node_major or self.layout).prepare(
            weights.astype(jnp.float32), biases.astype(jnp.float32)
        )
        chains = _Chains.build(self, prepared, key, free, num_chains, num_sweeps, sharded)
        states = chains.start(initial, clamp_values)
        unroll = self.backend.unroll_for(num_sweeps, len(self.layout.blocks))
        if unroll > 1:
            states, sums, kept = _rounds_unrolled(
                chains, record, states, betas, burn_in, num_samples, thinning, unroll
            )
        else:
            states, sums, kept = _rounds_in_loops(
                chains, record, states, betas, burn_in, num_samples, thinning
            )
        final = _output(self.topology, chains.target(states))
        recorded, energies = record.finish(sums, kept, num_chains, num_samples)
        return recorded, energies, final, _finite_flags(weights, biases)


class Record(enum.Enum):
    """What a run records, a static argument of the compiled program (one trace per value).

    `SAMPLES` keeps the target chains' states and energies after every recording round;
    `MOMENTS` keeps no states but adds their node and edge statistics and energies to sums
    carried through the rounds, so memory does not grow with `num_samples`.
    """

    SAMPLES = "samples"
    MOMENTS = "moments"

    def empty(self, topology: Topology) -> tuple[jax.Array, ...]:
        """The sums carried through the rounds: none for samples; zero node, edge and energy sums
        (one-hot frequencies for categorical nodes) for moments."""
        if self is Record.SAMPLES:
            return ()
        if topology.is_spin:
            return (jnp.zeros(topology.num_nodes), jnp.zeros(topology.num_edges), jnp.zeros(()))
        k = topology.num_categories
        return (
            jnp.zeros((topology.num_nodes, k)),
            jnp.zeros((topology.num_edges, k, k)),
            jnp.zeros(()),
        )

    def observe(
        self,
        chains: _Chains,
        states: Any,
        sums: tuple[jax.Array, ...],
        counted: jax.Array,
    ) -> tuple[tuple[jax.Array, ...], Any]:
        """Record the end of one round: (new sums, what the round keeps).

        `counted` is 0 for the burn-in round and 1 for a recording round; it scales the moments
        added, so the burn-in round needs no conditional.
        """
        chosen = chains.target(states)
        energies = chains.energies(states, chosen)
        if self is Record.SAMPLES:
            return sums, (_output(chains.program.topology, chosen), energies)
        topology, layout = chains.program.topology, chains.program.layout
        nodes, edges, energy_sum = sums
        if topology.is_spin:
            nodes = nodes + counted * chosen.sum(0)
        else:
            nodes = nodes + counted * jax.nn.one_hot(chosen, topology.num_categories).sum(0)
        edges = edges + counted * layout.edge_products(chosen)
        return (nodes, edges, energy_sum + counted * energies.mean()), None

    def finish(
        self, sums: tuple[jax.Array, ...], kept: Any, num_chains: int, num_samples: int
    ) -> tuple[Any, Any]:
        """The run's two outputs: states (chains, samples, N) and energies (chains, samples)
        without the burn-in round's, or the averages (nodes, edges, mean energy) and None."""
        if self is Record.SAMPLES:
            states, energies = kept
            return jnp.swapaxes(states[1:], 0, 1), jnp.swapaxes(energies[1:], 0, 1)
        nodes, edges, energy_sum = sums
        count = num_chains * num_samples
        return (nodes / count, edges / count, energy_sum / num_samples), None


@dataclass(frozen=True)
class _Chains:
    """The chains of one traced run: how they start, take one sweep, and read back as (C, N).

    Holds the traced values every sweep needs beside the program's static choices (layout,
    node-major plan, tempering ladder, mesh). Rows are (chain, rung) pairs, chain-major; rung
    R-1 runs at the target beta. With a node-major plan the states are its blocks, and every
    sweep's keys are drawn up front (see `node_major`).
    """

    program: JaxSimProgram
    prepared: LayoutParameters | BlockParameters
    key: jax.Array
    free: jax.Array
    num_chains: int
    sharded: bool
    block_keys: jax.Array | None
    free_blocks: Any

    @classmethod
    def build(
        cls,
        program: JaxSimProgram,
        prepared: LayoutParameters | BlockParameters,
        key: jax.Array,
        free: jax.Array,
        num_chains: int,
        num_sweeps: int,
        sharded: bool,
    ) -> _Chains:
        """The chains of a run, with a node-major plan's keys and free masks made once, outside
        the loops."""
        plan = program.node_major
        block_keys = free_blocks = None
        if plan is not None:
            free_blocks = plan.block_free(free)
            block_keys = node_major.block_keys(key, num_sweeps, len(program.layout.blocks))
        return cls(program, prepared, key, free, num_chains, sharded, block_keys, free_blocks)

    def start(self, initial: jax.Array | None, clamp_values: jax.Array) -> Any:
        """The states before the first sweep: `initial`, or random states drawn from the
        `INITIAL_STREAM` key, with clamped nodes set, repeated per rung."""
        topology = self.program.topology
        state_dtype = jnp.float32 if topology.is_spin else jnp.int32
        if initial is None:
            initial_key = jax.random.fold_in(self.key, INITIAL_STREAM)
            shape = (self.num_chains, topology.num_nodes)
            if topology.is_spin:
                initial = jnp.where(jax.random.bernoulli(initial_key, 0.5, shape), 1.0, -1.0)
            else:
                initial = jax.random.randint(initial_key, shape, 0, topology.num_categories)
        initial = jnp.where(
            self.free, initial.astype(state_dtype), clamp_values.astype(state_dtype)
        )
        states = self.constrain(jnp.repeat(initial, self.program.num_replicas, axis=0))
        if self.program.node_major is not None:
            states = self.constrain(self.program.node_major.split(states))
        return states

    def sweep(self, states: Any, step: jax.Array, beta: jax.Array) -> Any:
        """One sweep of every chain (sweep number `step`, uint32) at `beta`; with tempering,
        one replica exchange after it (even or odd pairs by the parity of `step`)."""
        program, plan = self.program, self.program.node_major
        if plan is not None:
            states = plan.sweep(
                self.prepared,
                states,
                self.block_keys[step],
                beta,
                self.free_blocks,
                program.local_sampler,
            )
            return self.constrain(states)
        layout, num_rungs = program.layout, program.num_replicas
        ladder = jnp.asarray(program.ladder)
        sweep_key = jax.random.fold_in(self.key, step)
        row_betas = jnp.tile(beta * ladder, self.num_chains)
        states = sweep(
            layout, self.prepared, states, sweep_key, row_betas, self.free, program.local_sampler
        )
        if num_rungs > 1:
            energies = layout.energies(self.prepared, states).reshape(self.num_chains, num_rungs)
            replicas = states.reshape(self.num_chains, num_rungs, -1)
            replicas, _ = exchange_replicas(
                replicas,
                energies,
                beta * ladder,
                jax.random.fold_in(sweep_key, EXCHANGE_STREAM),
                step % 2,
            )
            states = replicas.reshape(states.shape)
        return self.constrain(states)

    def target(self, states: Any) -> jax.Array:
        """The target rung's states as (C, N)."""
        if self.program.node_major is not None:
            return self.program.node_major.join(states, self.num_chains)
        return states.reshape(self.num_chains, self.program.num_replicas, -1)[:, -1]

    def energies(self, states: Any, target: jax.Array) -> jax.Array:
        """The energies (C,) of `target`, the target rung of `states` (node-major: from the
        blocks)."""
        if self.program.node_major is not None:
            return self.program.node_major.energies(self.prepared, states, self.num_chains)
        return self.program.layout.energies(self.prepared, target)

    def constrain(self, states: Any) -> Any:
        """`states` held sharded over the mesh's "chains" axis, when the run is sharded.

        Node-major blocks carry chains (words) on axis 1, and only blocks whose width divides
        evenly are constrained.
        """
        if not self.sharded:
            return states
        mesh = self.program.backend.mesh
        if isinstance(states, tuple):
            spec = NamedSharding(mesh, PartitionSpec(None, "chains"))
            return tuple(
                jax.lax.with_sharding_constraint(part, spec)
                if part.shape[1] % mesh.size == 0
                else part
                for part in states
            )
        spec = PartitionSpec("chains", *([None] * (states.ndim - 1)))
        return jax.lax.with_sharding_constraint(states, NamedSharding(mesh, spec))


def _rounds_in_loops(
    chains: _Chains,
    record: Record,
    states: Any,
    betas: jax.Array,
    burn_in: int,
    num_samples: int,
    thinning: int,
) -> tuple[Any, tuple[jax.Array, ...], Any]:
    """Run the rounds as a scan of `fori_loop`s: (final states, sums, what each round kept).

    Round 0 runs the burn-in, round k >= 1 runs `thinning` sweeps and records. Each round is a
    `fori_loop` with a traced length, so the compiled program holds one copy of the sweep, and
    recording needs no conditional (no host sync on GPUs).
    """
    starts = jnp.concatenate(
        [jnp.zeros(1, jnp.int32), burn_in + thinning * jnp.arange(num_samples, dtype=jnp.int32)]
    )
    lengths = jnp.concatenate(
        [jnp.full(1, burn_in, jnp.int32), jnp.full(num_samples, thinning, jnp.int32)]
    )
    counted = jnp.concatenate([jnp.zeros(1), jnp.ones(num_samples)])

    def one_round(carry: Any, inputs: Any) -> Any:
        states, sums = carry
        start, length, round_counted = inputs

        def one_sweep(offset: jax.Array, states: Any) -> Any:
            index = start + offset
            return chains.sweep(states, index.astype(jnp.uint32), betas[index])

        states = jax.lax.fori_loop(0, length, one_sweep, states)
        sums, kept = record.observe(chains, states, sums, round_counted)
        return (states, sums), kept

    empty = record.empty(chains.program.topology)
    (states, sums), kept = jax.lax.scan(one_round, (states, empty), (starts, lengths, counted))
    return states, sums, kept


def _rounds_unrolled(
    chains: _Chains,
    record: Record,
    states: Any,
    betas: jax.Array,
    burn_in: int,
    num_samples: int,
    thinning: int,
    unroll: int,
) -> tuple[Any, tuple[jax.Array, ...], Any]:
    """Run the rounds as static scans unrolled `unroll` sweeps deep (accelerators), so the
    loop's condition (read back by the host on GPUs) and launch gaps come once per `unroll`
    sweeps. Returns what `_rounds_in_loops` returns."""
    states = _sweeps_unrolled(chains, states, betas[:burn_in], 0, unroll)
    empty = record.empty(chains.program.topology)
    sums, first_kept = record.observe(chains, states, empty, jnp.zeros(()))

    def one_round(carry: Any, inputs: Any) -> Any:
        states, sums = carry
        round_betas, first = inputs
        states = _sweeps_unrolled(chains, states, round_betas, first, unroll)
        sums, kept = record.observe(chains, states, sums, jnp.ones(()))
        return (states, sums), kept

    record_betas = betas[burn_in:].reshape(num_samples, thinning)
    firsts = (burn_in + thinning * jnp.arange(num_samples)).astype(jnp.uint32)
    (states, sums), kept = jax.lax.scan(one_round, (states, sums), (record_betas, firsts))
    if record is Record.SAMPLES:  # the burn-in round's record in front, as `_rounds_in_loops`
        kept = jax.tree_util.tree_map(
            lambda first, rest: jnp.concatenate([first[None], rest]), first_kept, kept
        )
    return states, sums, kept


def _sweeps_unrolled(
    chains: _Chains, states: Any, betas: jax.Array, first: Any, unroll: int
) -> Any:
    """`len(betas)` sweeps numbered from `first`, in a scan unrolled `unroll` deep."""
    count = betas.shape[0]
    if count == 0:
        return states
    steps = first + jnp.arange(count, dtype=jnp.uint32)
    states, _ = jax.lax.scan(
        lambda states, inputs: (chains.sweep(states, inputs[1], inputs[0]), None),
        states,
        (betas, steps),
        unroll=min(unroll, count),
    )
    return states


def _finite_flags(weights: jax.Array, biases: jax.Array) -> jax.Array:
    """Flags for `_check_finite`: weights finite, biases finite, and their absolute sum within
    `MAX_ABSOLUTE_SUM` (fields and energies stay finite in float32)."""
    magnitude = jnp.abs(weights).sum() + jnp.abs(biases).sum()
    return jnp.stack(
        [jnp.isfinite(weights).all(), jnp.isfinite(biases).all(), magnitude <= MAX_ABSOLUTE_SUM]
    )


def _output(topology: Topology, states: jax.Array) -> jax.Array:
    """States as returned to the caller: int8 spins, int32 categories."""
    return states.astype(jnp.int8 if topology.is_spin else jnp.int32)


def _device_or_numpy(array: Any, mesh: Mesh | None = None) -> Any:
    """numpy stays numpy (the jit moves it); torch crosses by DLPack and JAX is kept as is,
    except that with `mesh` an array outside the mesh's devices is moved onto them
    (`_on_mesh`)."""
    if framework(array) not in ("torch", "jax"):
        return np.asarray(array)
    array = to_jax(array)
    if mesh is not None and not array.devices() <= set(mesh.devices.flat):
        array = _on_mesh(array, mesh)
    return array


def _on_mesh(array: Any, mesh: Mesh) -> jax.Array:
    """`array` replicated on the mesh's devices (a copy only where it lies elsewhere)."""
    return jax.device_put(array, NamedSharding(mesh, PartitionSpec()))
