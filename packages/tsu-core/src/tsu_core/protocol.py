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

PROTOCOL_VERSION = "1.0"
"""The version of the backend protocol this tsu-core speaks, "MAJOR.MINOR".

A backend states the version it implements twice: as `protocol_version` on the backend object,
and in its distribution's entry points (group `tsu.protocol`, see `tsu_core.registry`), where
the registry reads it without importing the plugin. A backend is loaded when its major version
equals this one. The major version changes when a backend written for the old protocol would
be wrong under the new one: a method, argument or result removed or renamed, a shape, dtype,
sign or meaning changed (the energy convention, what a key means), or a new method every
backend must provide. The minor version changes for additions that old backends may ignore: a
new optional `Capabilities` field with a default, a new helper in `tsu_core.request`, a new
conformance test of behaviour the protocol already required. docs/backend-guide.md has the list.
"""


def parse_protocol_version(version: object) -> tuple[int, int]:
    """(major, minor) of a "MAJOR.MINOR" string; `ValueError` for anything else."""
    if not isinstance(version, str):
        raise ValueError(f"expected a 'MAJOR.MINOR' string, got {version!r}")
    parts = version.strip().split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected a 'MAJOR.MINOR' string such as '1.0', got {version!r}")
    return int(parts[0]), int(parts[1])


def protocol_mismatch(declared: object) -> str | None:
    """Why a backend declaring `declared` cannot be used by this tsu-core, or None if it can."""
    if declared is None:
        return f"declares no protocol version (this tsu-core speaks {PROTOCOL_VERSION})"
    try:
        major, _ = parse_protocol_version(declared)
    except ValueError as error:
        return f"declares protocol version {declared!r}, which is malformed: {error}"
    speaks = parse_protocol_version(PROTOCOL_VERSION)[0]
    if major == speaks:
        return None
    advice = "upgrade tsu-core" if major > speaks else f"upgrade the backend to protocol {speaks}"
    return (
        f"implements protocol {declared}; this tsu-core speaks {PROTOCOL_VERSION} (major versions "
        f"differ): {advice}"
    )


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
        devices: the devices it samples on, e.g. ("cpu",) or ("cuda:0", "cuda:1")
            (`tsu_core.devices.device_names` spells a framework's devices so).
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
    """A sampler of pairwise models: found by name through the `tsu.backends` entry points,
    loaded when `protocol_version` has the major version of `PROTOCOL_VERSION`."""

    name: str
    capabilities: Capabilities
    protocol_version: str  # the `PROTOCOL_VERSION` it implements, e.g. "1.0"

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
