"""`ThrmlProgram`: a topology compiled for thrml, sampled with new parameters on every call.

Every call is validated by `tsu_core.request.SampleRequest.build` (the same errors as every other
backend), then runs one jitted function per (set of clamped nodes, kind of result, run shape):
fill the thrml program's weight slots from the parameters, `vmap` thrml's sampler over the
chains, and turn thrml's states back into tsu-core's (+-1 spins, category indices) with their
energies, all on the device. Arrays come back as JAX arrays (DLPack-capable).

Chains that are given no `initial_state` start from uniformly random states drawn from the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from thrml import AbstractObserver, FactorSamplingProgram

from tsu_core.arrays import to_jax
from tsu_core.parameters import Parameters
from tsu_core.protocol import Moments, Samples
from tsu_core.request import SampleRequest
from tsu_core.topology import Topology
from tsu_thrml.convert import decode_states, encode_states, jax_key
from tsu_thrml.energy import categorical_energy, spin_energy
from tsu_thrml.graph import ClampedLayout, ThrmlGraph, flat_parameters
from tsu_thrml.observers import (
    CategoricalMomentObserver,
    WithFinalState,
    spin_moment_observer,
    state_observer,
)
from tsu_thrml.sampling import RunConfig, run_chains

if TYPE_CHECKING:
    from tsu_thrml.backend import ThrmlBackend


@dataclass(frozen=True)
class _Shape:
    """What the jitted functions need to know about the topology (static)."""

    is_spin: bool
    num_nodes: int
    num_categories: int


class _Structure(eqx.Module):
    """The arrays a run reads besides the parameters: the thrml program and observer, and
    where blocks and edges sit among the nodes."""

    program: FactorSamplingProgram
    observer: AbstractObserver
    free_nodes: tuple[jax.Array, ...]
    first: jax.Array
    second: jax.Array


class _Staged:
    """A jitted function of one `_Structure`: its arrays are passed as a flat list of leaves on
    every call (cheap), everything else (nodes, blocks, specs) is closed over, never re-hashed."""

    def __init__(self, structure: _Structure, function: Callable[..., Any]) -> None:
        dynamic, static = eqx.partition(structure, eqx.is_array)
        self.leaves, treedef = jax.tree.flatten(dynamic)

        def run(leaves, *arguments, config):
            rebuilt = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
            return function(rebuilt, *arguments, config=config)

        self._jitted = jax.jit(run, static_argnames=("config",))

    def __call__(self, *arguments: Any, config: RunConfig) -> Any:
        return self._jitted(self.leaves, *arguments, config=config)


class CompiledTopology:
    """Everything built for one wiring: the thrml graph and one jitted function per (set of
    clamped nodes, kind of result). Shared by every `ThrmlProgram` of an identical topology."""

    def __init__(self, topology: Topology) -> None:
        self.graph = ThrmlGraph.build(topology)
        self.graph.layout(np.zeros(0, dtype=np.int64))  # the unclamped program, built eagerly
        self.shape = _Shape(topology.is_spin, topology.num_nodes, topology.num_categories)
        self._staged: dict[tuple[tuple[int, ...], str], _Staged] = {}

    def staged(self, clamp_nodes: Any, kind: str) -> _Staged:
        """The jitted function for these clamped nodes and this kind ("states" or "moments")."""
        layout = self.graph.layout(clamp_nodes)
        signature = (tuple(int(node) for node in layout.clamped_nodes), kind)
        if signature not in self._staged:
            self._staged[signature] = self._stage(layout, kind)
        return self._staged[signature]

    def _stage(self, layout: ClampedLayout, kind: str) -> _Staged:
        graph, shape, edges = self.graph, self.shape, self.graph.topology.edges
        if kind == "states":
            observer, finish = state_observer(graph), _finish_states
        elif shape.is_spin:
            observer, finish = WithFinalState(spin_moment_observer(graph), graph), _finish_moments
        else:
            observer = WithFinalState(CategoricalMomentObserver(graph), graph)
            finish = _finish_moments
        structure = _Structure(
            layout.program,
            observer,
            tuple(jnp.asarray(nodes) for nodes in layout.free_nodes),
            jnp.asarray(edges[:, 0]),
            jnp.asarray(edges[:, 1]),
        )
        return _Staged(structure, functools.partial(_sample_and_finish, shape, finish))


class ThrmlProgram:
    """A topology compiled for thrml (see the module docstring)."""

    def __init__(
        self, topology: Topology, backend: ThrmlBackend, compiled: CompiledTopology | None = None
    ) -> None:
        self.topology = topology
        self.backend = backend
        self.compiled = CompiledTopology(topology) if compiled is None else compiled

    @property
    def graph(self) -> ThrmlGraph:
        return self.compiled.graph

    def sample(self, parameters: Parameters, **options: Any) -> Samples:
        """Block Gibbs through thrml; see `tsu_core.protocol.Program.sample`."""
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        states, energies = self._run(request, "states")
        return Samples(states, energies, states[:, -1])

    def moments(self, parameters: Parameters, **options: Any) -> Moments:
        """The same run as `sample`, accumulating moments with thrml's moment observer."""
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        nodes, edges, mean_energy, final_state = self._run(request, "moments")
        count = request.num_chains * request.num_samples
        return Moments(nodes, edges, mean_energy, count, final_state)

    def _run(self, request: SampleRequest, kind: str) -> Any:
        staged = self.compiled.staged(request.clamp_nodes, kind)
        config = RunConfig(
            request.num_chains,
            request.num_samples,
            request.burn_in,
            request.thinning,
            annealed=not request.schedule.is_constant,
        )
        # One dtype and one (C, k) clamp shape whatever the caller gave, so nothing retraces.
        dtype = jnp.int8 if self.topology.is_spin else jnp.int32
        initial = None
        if request.initial_state is not None:
            initial = to_jax(request.initial_state, dtype)
        clamp = None
        if request.clamp_values is not None:
            shape = (request.num_chains, request.clamp_nodes.size)
            clamp = jnp.broadcast_to(to_jax(request.clamp_values, dtype), shape)
        return staged(
            to_jax(request.parameters.biases, jnp.float32),
            to_jax(request.parameters.weights, jnp.float32),
            jnp.asarray(request.betas, dtype=jnp.float32),
            jax_key(request.key),
            initial,
            clamp,
            config=config,
        )


# -- what runs inside jit ------------------------------------------------------------------------
def _random_states(key: jax.Array, shape: _Shape, num_chains: int) -> jax.Array:
    """Uniformly random initial states in thrml's encoding."""
    size = (num_chains, shape.num_nodes)
    if shape.is_spin:
        return jax.random.bernoulli(key, 0.5, size)
    return encode_states(jax.random.randint(key, size, 0, shape.num_categories), False)


def _sample_and_finish(
    shape: _Shape,
    finish: Callable[..., Any],
    structure: _Structure,
    biases: jax.Array,
    weights: jax.Array,
    betas: jax.Array,
    key: jax.Array,
    initial: jax.Array | None,
    clamp: jax.Array | None,
    *,
    config: RunConfig,
) -> Any:
    initial_key, run_key = jax.random.split(key)
    if initial is None:
        states = _random_states(initial_key, shape, config.num_chains)
    else:
        states = encode_states(initial, shape.is_spin)
    free = [states[:, nodes] for nodes in structure.free_nodes]
    clamped = []
    if clamp is not None:
        clamped.append(encode_states(clamp, shape.is_spin))
    memory, observed = run_chains(
        structure.program,
        structure.observer,
        flat_parameters(biases, weights),
        betas,
        jax.random.split(run_key, config.num_chains),
        free,
        clamped,
        config,
    )
    return finish(shape, structure, biases, weights, memory, observed, config)


def _energy_function(shape: _Shape) -> Callable[..., jax.Array]:
    return spin_energy if shape.is_spin else categorical_energy


def _finish_states(shape, structure, biases, weights, memory, observed, config):
    """(C, S, N) states in tsu-core's encoding and their (C, S) energies."""
    states = decode_states(observed[0], shape.is_spin)
    energies = _energy_function(shape)(states, weights, biases, structure.first, structure.second)
    return states, energies


def _finish_moments(shape, structure, biases, weights, memory, observed, config):
    """Means over chains and samples; the mean energy is linear in them (exactly)."""
    sums, final = memory
    count = config.num_chains * config.num_samples
    if shape.is_spin:
        nodes = sums[0].sum(0) / count
        edges = sums[1].sum(0) / count if len(sums) > 1 else jnp.zeros(0, nodes.dtype)
        mean_energy = -(edges @ weights) - nodes @ biases
    else:
        nodes, edges = sums[0].sum(0) / count, sums[1].sum(0) / count
        mean_energy = -(edges * weights).sum() - (nodes * biases).sum()
    return nodes, edges, mean_energy, decode_states(final, shape.is_spin)
