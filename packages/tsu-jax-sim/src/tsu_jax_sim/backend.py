"""The `jax-sim` backend: the tsu-core protocol on JAX (CPU, GPU, several devices).

    backend = JaxSimBackend()                          # block Gibbs (heat bath), registered "jax-sim"
    backend = JaxSimBackend(sampler="metropolis")      # block Metropolis, "jax-sim-metropolis"
    backend = JaxSimBackend(sampler="tempering")       # parallel tempering, "jax-sim-tempering"

Simulated annealing is any sampler with a decreasing-temperature schedule
(`schedule=tsu_core.geometric(0.1, 5.0)`); `tsu_jax_sim.anneal` wraps it for optimisation.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from tsu_core.arrays import to_jax
from tsu_core.devices import device_names
from tsu_core.keys import as_key
from tsu_core.protocol import Capabilities
from tsu_core.request import check_beta, check_primitive_input, check_shape, check_supported
from tsu_core.topology import Topology
from tsu_jax_sim import fused_dense
from tsu_jax_sim.arrays import jax_key
from tsu_jax_sim.cache import enable_compilation_cache
from tsu_jax_sim.layouts import choose_layout
from tsu_jax_sim.program import JaxSimProgram

SAMPLERS = ("gibbs", "metropolis", "tempering")
UNROLLED_BLOCKS = 16  # default unrolling: at most this many block updates per loop iteration


class JaxSimBackend:
    """JAX simulator backend.

    Arguments:
        sampler: "gibbs" (block heat bath), "metropolis" (block single-spin Metropolis) or
            "tempering" (parallel tempering: block Gibbs within replicas, exchanges between).
        num_replicas: rungs of the tempering ladder (tempering only).
        ladder_low: the lowest rung's beta as a fraction of the schedule's beta; rungs are
            geometric between `ladder_low * beta` and `beta`.
        layout: force a spin layout ("stencil", "dense", "neighbours"); None chooses from
            the topology (`tsu_jax_sim.layouts.choose_layout`), except that on the CPU 2D
            lattices take the node-major neighbour lists (`layout_for`).
        precision: dense-layout matrix products, "highest" (float32) or "bfloat16" (bfloat16
            weights with float32 accumulation: faster on tensor cores, weights rounded to an
            8-bit mantissa, so sampling is from a slightly perturbed model).
        devices: the devices chains are split over (default: all visible devices).
        unroll: sweeps unrolled per loop iteration; None: 1 on the CPU (fast compiles); on
            accelerators (GPU loops read their condition back to the host every iteration) up
            to 8, fewer for topologies of many blocks (`UNROLLED_BLOCKS` block updates per
            iteration at most: a sweep of many blocks is long already, and the compile time
            grows with the unrolled updates).
        fused: bipartite dense (RBM) heat-bath sweeps in bfloat16 as one Pallas kernel per
            block (`tsu_jax_sim.fused_dense`); None: on a single GPU; True on the CPU runs the
            kernel in Pallas's interpreter (slow: for tests).

    Constructing a backend turns on JAX's persistent compilation cache (`tsu_jax_sim.cache`;
    `TSU_JAX_SIM_CACHE=off` leaves it off), so a program compiled in one process loads in the
    next; `compilation_cache` is the directory in use, or None.
    """

    # The tsu-core protocol version implemented, as in pyproject.toml's "tsu.protocol" entries.
    protocol_version = "1.0"

    def __init__(
        self,
        sampler: str = "gibbs",
        num_replicas: int = 8,
        ladder_low: float = 0.5,
        layout: str | None = None,
        precision: str = "highest",
        devices: Any = None,
        unroll: int | None = None,
        fused: bool | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}")
        if precision not in ("highest", "bfloat16"):
            raise ValueError(f"precision: expected 'highest' or 'bfloat16', got {precision!r}")
        if num_replicas < 2 and sampler == "tempering":
            raise ValueError(f"num_replicas: expected at least 2, got {num_replicas}")
        if not 0 < ladder_low < 1:
            raise ValueError(f"ladder_low: expected a fraction in (0, 1), got {ladder_low}")
        self.compilation_cache = enable_compilation_cache()  # tsu_jax_sim.cache
        self.sampler = sampler
        self.num_replicas = int(num_replicas)
        self.ladder_low = float(ladder_low)
        self.layout = layout
        self.precision = precision
        devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.array(devices), ("chains",))
        self.unroll = unroll if unroll is not None else (1 if devices[0].platform == "cpu" else 8)
        self.unroll_given = unroll is not None
        self.fused = fused
        suffix = "" if sampler == "gibbs" else f"-{sampler}"
        self.name = f"jax-sim{suffix}"
        self.capabilities = Capabilities(
            devices=device_names(devices),
            max_request_bytes=device_memory_limit(devices),
        )

    def layout_for(self, topology: Topology) -> str | None:
        """The layout forced for `topology`, or None to let `choose_layout` pick.

        On the CPU a 2D lattice sampled without replicas takes the node-major neighbour lists
        instead of the stencil, whose rolls XLA fuses into the other colour's update there.
        GPUs keep the stencil.
        """
        if self.layout is not None:
            return self.layout
        on_cpu = self.mesh.devices.flat[0].platform == "cpu"
        if on_cpu and self.sampler != "tempering" and choose_layout(topology) == "stencil":
            return "neighbours"
        return None

    def fused_for(self, layout: Any, sampler: str) -> bool:
        """Whether `layout` is swept by the fused Pallas kernel (`fused`, above)."""
        if not fused_dense.applies(layout, sampler) or self.fused is False:
            return False
        if self.fused:
            return True
        return self.mesh.size == 1 and self.mesh.devices.flat[0].platform == "gpu"

    def unroll_for(self, num_sweeps: int, num_blocks: int = 1) -> int:
        """The unroll depth of a run of `num_sweeps` sweeps of `num_blocks` blocks each."""
        depth = (
            self.unroll if self.unroll_given else min(self.unroll, UNROLLED_BLOCKS // num_blocks)
        )
        return max(1, min(depth, num_sweeps))

    def compile(self, topology: Topology) -> JaxSimProgram:
        check_supported(topology, self.capabilities)
        return JaxSimProgram(topology, self)

    # -- primitives ------------------------------------------------------------------------------
    def pbit(self, fields: Any, *, key: Any, beta: float = 1.0) -> jax.Array:
        """Spins with P(s = +1) = sigmoid(2 beta f), drawn on device (int8)."""
        check_primitive_input("fields", fields)
        beta = check_beta(beta)
        key = as_key(key)
        return _pbit(to_jax(fields), _key_and_beta(key, beta))

    def categorical(self, logits: Any, *, key: Any, beta: float = 1.0) -> jax.Array:
        """Indices with P(k) ~ exp(beta logits[..., k]) by Gumbel-max (int32)."""
        check_primitive_input("logits", logits, allow_negative_infinity=True)
        beta = check_beta(beta)
        key = as_key(key)
        return _categorical(to_jax(logits), _key_and_beta(key, beta))

    def gaussian(self, shape: tuple[int, ...], *, key: Any, dtype: str = "float32") -> jax.Array:
        """Standard normal draws on device."""
        shape = check_shape("shape", shape, self.capabilities)
        key = as_key(key)
        return _gaussian(_key_and_beta(key, 1.0), shape, dtype)


def device_memory_limit(devices: list[Any]) -> int | None:
    """Half the memory of the accelerators chains are split over, where JAX reports it (None on
    the CPU and elsewhere: tsu-core's host limit applies). Half, because a call holds its
    inputs, a sweep's working arrays and the compiled program besides what it returns."""
    if devices[0].platform == "cpu":
        return None
    try:
        return sum(int(device.memory_stats()["bytes_limit"]) for device in devices) // 2
    except (AttributeError, KeyError, TypeError, RuntimeError):
        return None


def _key_and_beta(key: Any, beta: float) -> np.ndarray:
    """(3,) uint32: the key's two words and beta's float32 bits. A primitive's small inputs
    travel to the device as this one array: each host array passed to a jitted function is
    its own transfer, and each eager jnp operation its own dispatch."""
    high, low = key.words()
    return np.array([high, low, np.float32(beta).view(np.uint32)], dtype=np.uint32)


def _unpack(packed: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jax_key(packed[:2]), jax.lax.bitcast_convert_type(packed[2], jnp.float32)


@jax.jit
def _pbit(fields: jax.Array, packed: jax.Array) -> jax.Array:
    key, beta = _unpack(packed)
    uniform = jax.random.uniform(key, fields.shape, jnp.float32)
    field = fields.astype(jnp.float32)
    # beta * field first: 2 * beta overflows float32 for beta above 1.7e38, and inf * 0 is NaN.
    return jnp.where(uniform < jax.nn.sigmoid(2.0 * (beta * field)), 1, -1).astype(jnp.int8)


@jax.jit
def _categorical(logits: jax.Array, packed: jax.Array) -> jax.Array:
    key, beta = _unpack(packed)
    gumbel = jax.random.gumbel(key, logits.shape, jnp.float32)
    # Each row shifted to a maximum of 0 (every row has a finite logit): in float32, logits of
    # 1e8 would absorb the Gumbel noise and argmax would break the ties by position.
    logits = logits.astype(jnp.float32)
    shifted = beta * (logits - logits.max(axis=-1, keepdims=True))
    return jnp.argmax(shifted + gumbel, axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnums=(1, 2))
def _gaussian(packed: jax.Array, shape: tuple[int, ...], dtype: str) -> jax.Array:
    return jax.random.normal(_unpack(packed)[0], shape, jnp.dtype(dtype))


def metropolis_backend() -> JaxSimBackend:
    """The entry point `jax-sim-metropolis`."""
    return JaxSimBackend(sampler="metropolis")


def tempering_backend() -> JaxSimBackend:
    """The entry point `jax-sim-tempering`."""
    return JaxSimBackend(sampler="tempering")
