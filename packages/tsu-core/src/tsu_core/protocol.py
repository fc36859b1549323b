"""The backend protocol: what every sampler of the stack (simulator, library, chip) provides.

A `Backend` compiles a `Topology` into a `Program` once; the program then samples with new
`Parameters` on every call. Backends also provide the p-bit primitive (independent spins from
given fields, categorical draws from given logits) and a Gaussian source.

Array shapes, with C chains, S samples per chain, N nodes, E edges, K categories:

| result              | spin          | categorical        |
| ------------------- | ------------- | ------------------ |
| `Samples.states`    | (C, S, N) +-1 | (C, S, N) in [0,K) |
| `Samples.energies`  | (C, S)        | (C, S)             |
| `Moments.nodes`     | (N,)  <s_i>   | (N, K)  <[x_i=k]>  |
| `Moments.edges`     | (E,) <s_i s_j>| (E, K, K)          |
| `final_state`       | (C, N)        | (C, N)             |

Arrays returned are the backend's own (numpy, JAX, ...) and support DLPack, so
`torch.from_dlpack(result.states)` takes them without a copy on the same device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tsu_core.keys import Key
from tsu_core.parameters import Parameters
from tsu_core.schedule import BetaSchedule
from tsu_core.topology import Topology

ALL_SCHEDULES = frozenset({"constant", "linear", "geometric", "custom"})


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the conformance suite skips what is declared missing.

    Arguments:
        node_kinds: subset of {"spin", "categorical"}.
        max_nodes: the largest topology it compiles (None: no fixed limit).
        max_categories: the most states a categorical node may have (None: no fixed limit).
        schedules: the beta schedule kinds it follows sweep by sweep.
        clamping: whether nodes can be clamped to given values.
        initial_state: whether chains can start from given states (persistent chains).
        devices: the devices it samples on, e.g. ("cpu",) or ("cuda:0", "cuda:1").
        gaussian: how `gaussian()` is produced: "native", or a description of the
            approximation (e.g. "sum of 64 spins, central limit theorem").
        exact: samples are exact independent draws (burn-in, thinning and initial states then
            change nothing).
        max_request_bytes: the most memory one call may need, as `request.estimate_bytes`
            counts it; larger calls are refused before they start (None: the
            `TSU_MAX_REQUEST_BYTES` environment variable, else half the host's memory).
    """

    node_kinds: frozenset[str] = frozenset({"spin", "categorical"})
    max_nodes: int | None = None
    max_categories: int | None = None
    schedules: frozenset[str] = ALL_SCHEDULES
    clamping: bool = True
    initial_state: bool = True
    devices: tuple[str, ...] = ("cpu",)
    gaussian: str = "native"
    exact: bool = False
    max_request_bytes: int | None = None


@dataclass(frozen=True)
class Clamp:
    """Nodes held at given values while the others are sampled.

    Arguments:
        nodes: integer array (k,) of distinct node indices.
        values: (k,) values shared by every chain, or (C, k) one row per chain;
            +-1 for spins, category indices for categorical nodes.
    """

    nodes: Any
    values: Any


@dataclass(frozen=True, eq=False)
class Samples:
    """States recorded by a sampling call (see the module docstring for shapes)."""

    states: Any
    energies: Any
    final_state: Any


@dataclass(frozen=True, eq=False)
class Moments:
    """First and second moments averaged over chains and recorded samples.

    Arguments:
        nodes: <s_i> (spin) or the marginal one-hot frequencies (categorical).
        edges: <s_i s_j> per edge (spin) or the joint one-hot frequencies per edge (categorical).
        energy: the mean energy.
        num_samples: the number of states averaged (chains x samples).
        final_state: the chains' last states, to continue persistent chains.
    """

    nodes: Any
    edges: Any
    energy: Any
    num_samples: int
    final_state: Any
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Program(Protocol):
    """A topology compiled by one backend; run it with new parameters on every call."""

    topology: Topology

    def sample(
        self,
        parameters: Parameters,
        *,
        key: Key | int,
        num_chains: int = 1,
        num_samples: int = 1,
        burn_in: int = 0,
        thinning: int = 1,
        schedule: BetaSchedule | float = 1.0,
        clamp: Clamp | None = None,
        initial_state: Any = None,
    ) -> Samples:
        """Run block Gibbs (or the backend's sampler) and record states.

        Runs `burn_in + num_samples * thinning` sweeps per chain and records the state after
        sweep `burn_in + (k + 1) * thinning` for k = 0 .. num_samples - 1.
        """
        ...

    def moments(
        self,
        parameters: Parameters,
        *,
        key: Key | int,
        num_chains: int = 1,
        num_samples: int = 1,
        burn_in: int = 0,
        thinning: int = 1,
        schedule: BetaSchedule | float = 1.0,
        clamp: Clamp | None = None,
        initial_state: Any = None,
    ) -> Moments:
        """The same run as `sample`, returning averaged moments without keeping the samples."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A sampler of pairwise models: found by name through the `tsu.backends` entry points."""

    name: str
    capabilities: Capabilities

    def compile(self, topology: Topology) -> Program:
        """Prepare a program for a topology; done once, re-run with new parameters."""
        ...

    def pbit(self, fields: Any, *, key: Key | int, beta: float = 1.0) -> Any:
        """Independent spins with `P(s = +1) = sigmoid(2 * beta * field)`, same shape as fields."""
        ...

    def categorical(self, logits: Any, *, key: Key | int, beta: float = 1.0) -> Any:
        """Indices drawn over the last axis with `P(k) ~ exp(beta * logits[..., k])`.

        Logits of -inf are allowed (masked states); NaN and +inf are not.
        """
        ...

    def gaussian(self, shape: tuple[int, ...], *, key: Key | int, dtype: str = "float32") -> Any:
        """Standard normal draws of the given shape (see `capabilities.gaussian`)."""
        ...
