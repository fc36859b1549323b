"""Checking and normalising the arguments of a sampling call, once for every backend.

Backends call `SampleRequest.build(...)` at the top of `sample` / `moments` and read the
normalised fields, so every backend rejects bad input with the same clear message and declares
missing features with the same `NotSupported` error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsu_core.arrays import (
    LOGITS_NAN_OR_POSITIVE_INFINITY,
    LOGITS_ROW_IMPOSSIBLE,
    all_categories,
    all_finite,
    all_spins,
    array_problem,
    logits_status,
    shape_of,
    to_numpy,
)
from tsu_core.errors import InvalidRequest, NotSupported, describe
from tsu_core.keys import Key, as_key
from tsu_core.parameters import Parameters
from tsu_core.protocol import Capabilities, Clamp
from tsu_core.schedule import BetaSchedule, as_schedule
from tsu_core.topology import Topology


@dataclass(frozen=True, eq=False)
class SampleRequest:
    """A validated sampling call.

    Arguments:
        betas: float64 array (num_sweeps,), the beta of every sweep.
        clamp_nodes: sorted int64 array of clamped nodes (empty when nothing is clamped).
        clamp_values: the clamp values as given, in the order of `clamp_nodes`, with shape
            (num_chains, k) or (k,), or None.
        initial_state: as given, shape (num_chains, N), or None.
    """

    topology: Topology
    parameters: Parameters
    key: Key
    num_chains: int
    num_samples: int
    burn_in: int
    thinning: int
    schedule: BetaSchedule
    betas: np.ndarray
    clamp_nodes: np.ndarray
    clamp_values: Any
    initial_state: Any

    @property
    def num_sweeps(self) -> int:
        return self.burn_in + self.num_samples * self.thinning

    @property
    def free_nodes(self) -> np.ndarray:
        mask = np.ones(self.topology.num_nodes, dtype=bool)
        mask[self.clamp_nodes] = False
        return np.flatnonzero(mask)

    @property
    def record_sweeps(self) -> np.ndarray:
        """Indices (0-based) of the sweeps after which a state is recorded."""
        return self.burn_in + (np.arange(self.num_samples) + 1) * self.thinning - 1

    @classmethod
    def build(
        cls,
        topology: Topology,
        capabilities: Capabilities,
        parameters: Parameters,
        *,
        key: Any,
        num_chains: int = 1,
        num_samples: int = 1,
        burn_in: int = 0,
        thinning: int = 1,
        schedule: Any = 1.0,
        clamp: Clamp | None = None,
        initial_state: Any = None,
        check_finite: bool = True,
    ) -> SampleRequest:
        """Validate a `sample` / `moments` call into a request.

        `check_finite=False` skips the NaN / infinity check of the parameters, for a backend
        that makes it inside its compiled program (one device round trip less per call) and
        raises `tsu_core.parameters.not_finite` itself.
        """
        check_supported(topology, capabilities)
        if not isinstance(parameters, Parameters):
            raise InvalidRequest(
                f"parameters: expected tsu_core.Parameters, got {describe(parameters)}"
            )
        parameters.validate(topology, check_finite=check_finite)
        key = as_key(key)
        num_chains = _count("num_chains", num_chains, minimum=1)
        num_samples = _count("num_samples", num_samples, minimum=1)
        burn_in = _count("burn_in", burn_in, minimum=0)
        thinning = _count("thinning", thinning, minimum=1)
        schedule = as_schedule(schedule)
        num_sweeps = burn_in + num_samples * thinning
        check_memory(
            estimate_bytes(topology, num_chains, num_samples, num_sweeps),
            f"num_chains={num_chains} x num_samples={num_samples} x {topology.num_nodes} nodes, "
            f"{num_sweeps} sweeps",
            capabilities,
        )
        if schedule.kind not in capabilities.schedules:
            raise NotSupported(
                f"schedule: this backend does not support '{schedule.kind}' beta schedules "
                f"(it supports {sorted(capabilities.schedules)})"
            )
        betas = schedule.betas(num_sweeps)
        clamp_nodes, clamp_values = _checked_clamp(topology, capabilities, clamp, num_chains)
        if initial_state is not None:
            if not capabilities.initial_state:
                raise NotSupported(
                    "initial_state: this backend cannot start chains from given states"
                )
            _check_states(
                "initial_state", topology, initial_state, (num_chains, topology.num_nodes)
            )
        return cls(
            topology,
            parameters,
            key,
            num_chains,
            num_samples,
            burn_in,
            thinning,
            schedule,
            betas,
            clamp_nodes,
            clamp_values,
            initial_state,
        )


def check_supported(topology: Topology, capabilities: Capabilities) -> None:
    """Raise `NotSupported` if the backend cannot take this topology at all."""
    if topology.node_kind not in capabilities.node_kinds:
        raise NotSupported(
            f"topology: this backend does not sample {topology.node_kind} nodes "
            f"(it supports {sorted(capabilities.node_kinds)})"
        )
    if capabilities.max_nodes is not None and topology.num_nodes > capabilities.max_nodes:
        raise NotSupported(
            f"topology: {topology.num_nodes} nodes exceed this backend's limit of "
            f"{capabilities.max_nodes}"
        )
    limit = capabilities.max_categories
    if not topology.is_spin and limit is not None and topology.num_categories > limit:
        raise NotSupported(
            f"topology: {topology.num_categories} categories exceed this backend's limit of {limit}"
        )


MEMORY_LIMIT_VARIABLE = "TSU_MAX_REQUEST_BYTES"
# Per recorded state: an energy (8 bytes) and the working draws of an exact or Gibbs sampler (16).
_BYTES_PER_RECORD = 24
# Per sweep: the beta of the sweep, float64 on the host and float32 on a device.
_BYTES_PER_SWEEP = 12


def estimate_bytes(topology: Topology, num_chains: int, num_samples: int, num_sweeps: int) -> int:
    """What a sampling call needs, estimated before it starts (a bound, not a measurement).

    `C S (N b + 24) + 8 C N K + 12 W` bytes for C chains, S recorded samples, N nodes of b bytes
    (1 for spins, 4 for categorical indices), K states per node (1 for spins) and W sweeps: the
    recorded states with their energies and draws, one float64 field or logit per node, state
    and chain, and one beta per sweep. `moments` is held to the same bound, since a backend may
    keep every state it averages (the reference backend does).
    """
    state_bytes = 1 if topology.is_spin else 4
    categories = 1 if topology.is_spin else topology.num_categories
    records = num_chains * num_samples * (topology.num_nodes * state_bytes + _BYTES_PER_RECORD)
    working = 8 * num_chains * topology.num_nodes * categories
    return records + working + _BYTES_PER_SWEEP * num_sweeps


def memory_limit(capabilities: Capabilities | None = None) -> int:
    """The most bytes one call may need: `capabilities.max_request_bytes` if the backend
    declares it; else the `TSU_MAX_REQUEST_BYTES` environment variable; else half of the
    host's physical memory (8 GiB where the platform does not tell)."""
    if capabilities is not None and capabilities.max_request_bytes is not None:
        return int(capabilities.max_request_bytes)
    given = os.environ.get(MEMORY_LIMIT_VARIABLE)
    if given:
        try:
            return int(float(given))
        except ValueError:
            raise InvalidRequest(
                f"{MEMORY_LIMIT_VARIABLE}: expected a number of bytes, got {given!r}"
            ) from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def check_memory(needed: int, what: str, capabilities: Capabilities | None = None) -> None:
    """Refuse, before anything is allocated, a request that needs more than `memory_limit`."""
    limit = memory_limit(capabilities)
    if needed > limit:
        raise InvalidRequest(
            f"request too large: needs about {_bytes(needed)} of memory ({what}), over the "
            f"limit of {_bytes(limit)} (Capabilities.max_request_bytes, else {MEMORY_LIMIT_VARIABLE}, "
            "else half the host's memory); ask for fewer chains or samples per call, or take "
            "moments instead of states"
        )


def _bytes(count: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit} ({count} bytes)"
    return f"{count} bytes"


def check_beta(beta: Any) -> float:
    """A positive finite beta, or an `InvalidRequest` naming it."""
    return as_schedule(beta).start


def check_primitive_input(name: str, array: Any, allow_negative_infinity: bool = False) -> None:
    """Fields or logits given to a p-bit or categorical draw must be finite arrays."""
    if not hasattr(array, "shape") and not isinstance(array, (list, tuple, float, int)):
        raise InvalidRequest(f"{name}: expected an array, got {describe(array)}")
    problem = array_problem(array)
    if problem:
        raise InvalidRequest(f"{name}: {problem}")
    if name == "logits" and len(shape_of(array)) == 0:
        raise InvalidRequest("logits: expected at least one axis (the categories), got a scalar")
    if not allow_negative_infinity:
        if not all_finite(array):
            raise InvalidRequest(f"{name}: expected finite values, got NaN or +inf")
        return
    status = logits_status(array)
    if status == LOGITS_NAN_OR_POSITIVE_INFINITY:
        raise InvalidRequest(f"{name}: expected finite values or -inf, got NaN or +inf")
    if status == LOGITS_ROW_IMPOSSIBLE:
        raise InvalidRequest(
            f"{name}: expected a finite value in every row of the last axis (the categories), "
            "got a row of only -inf (or no categories), where no category can be drawn"
        )


def check_shape(name: str, shape: Any, capabilities: Capabilities | None = None) -> tuple[int, ...]:
    """A shape for a primitive's output (e.g. `gaussian`): a tuple of integers >= 0, whose
    float64 draws fit the memory limit (`memory_limit`), or an `InvalidRequest` naming it."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(size, (int, np.integer)) and not isinstance(size, bool) for size in shape
    ):
        raise InvalidRequest(f"{name}: expected a tuple of integers, got {describe(shape)}")
    shape = tuple(int(size) for size in shape)
    if any(size < 0 for size in shape):
        raise InvalidRequest(f"{name}: expected sizes >= 0, got {shape}")
    check_memory(
        int(np.prod(shape, dtype=object)) * 8, f"{name}={shape}, float64 draws", capabilities
    )
    return shape


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidRequest(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise InvalidRequest(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_states(name: str, topology: Topology, states: Any, shape: tuple[int, ...]) -> None:
    given = shape_of(states)
    if given != shape:
        raise InvalidRequest(f"{name}: expected shape {shape}, got {describe(states)}")
    if topology.is_spin and not all_spins(states):
        raise InvalidRequest(f"{name}: expected spins of -1 or +1, got other values")
    if not topology.is_spin and not all_categories(states, topology.num_categories):
        raise InvalidRequest(
            f"{name}: expected category indices in [0, {topology.num_categories}), got other values"
        )


def _checked_clamp(
    topology: Topology, capabilities: Capabilities, clamp: Clamp | None, num_chains: int
) -> tuple[np.ndarray, Any]:
    if clamp is None:
        return np.zeros(0, dtype=np.int64), None
    if not isinstance(clamp, Clamp):
        raise InvalidRequest(
            f"clamp: expected tsu_core.Clamp(nodes, values), got {describe(clamp)}"
        )
    if not capabilities.clamping:
        raise NotSupported("clamp: this backend cannot clamp nodes")
    nodes = to_numpy(clamp.nodes)
    if nodes.ndim != 1 or (nodes.size and not np.issubdtype(nodes.dtype, np.integer)):
        raise InvalidRequest(f"clamp.nodes: expected a 1-D integer array, got {describe(nodes)}")
    nodes = nodes.astype(np.int64)
    if ((nodes < 0) | (nodes >= topology.num_nodes)).any():
        raise InvalidRequest(
            f"clamp.nodes: expected node indices in [0, {topology.num_nodes - 1}], got "
            f"{nodes[(nodes < 0) | (nodes >= topology.num_nodes)][:5].tolist()}"
        )
    if nodes.size and np.bincount(nodes, minlength=topology.num_nodes).max() > 1:
        raise InvalidRequest("clamp.nodes: expected distinct nodes, got a node listed twice")
    shape = shape_of(clamp.values)
    if shape not in ((nodes.size,), (num_chains, nodes.size)):
        raise InvalidRequest(
            f"clamp.values: expected shape ({nodes.size},) or ({num_chains}, {nodes.size}) for "
            f"{nodes.size} clamped nodes and {num_chains} chains, got {describe(clamp.values)}"
        )
    _check_states("clamp.values", topology, clamp.values, shape)
    order = np.argsort(nodes)
    values = clamp.values
    if not np.all(order == np.arange(nodes.size)):
        values = values[..., order] if hasattr(values, "shape") else np.asarray(values)[..., order]
    return nodes[order], values
