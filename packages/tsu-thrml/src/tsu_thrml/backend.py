"""`ThrmlBackend`: Extropic's thrml as a tsu-core backend, registered as `thrml`.

The whole plugin contract is three things:

1. an entry point in `pyproject.toml`, group `tsu.backends`, name `thrml`, pointing at this class;
2. `capabilities`, declared honestly (the conformance suite skips what is declared missing, and
   `SampleRequest.build` raises `NotSupported` for it);
3. `compile(topology) -> Program` plus three primitives: `pbit`, `categorical`, `gaussian`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import jax
import jax.numpy as jnp
from thrml.models.discrete_ebm import CategoricalGibbsConditional, SpinGibbsConditional

from tsu_core.arrays import to_jax
from tsu_core.devices import device_names
from tsu_core.keys import as_key
from tsu_core.protocol import Capabilities
from tsu_core.request import check_beta, check_primitive_input, check_shape, check_supported
from tsu_core.topology import Topology
from tsu_thrml.convert import MAX_CATEGORIES, decode_states, jax_key
from tsu_thrml.program import CompiledTopology, ThrmlProgram

CACHE_SIZE = 16


def _fingerprint(topology: Topology) -> tuple:
    """What makes two topologies the same wiring (`structure` is only a hint, so left out)."""
    blocks = tuple(block.tobytes() for block in topology.blocks)
    return (topology.num_nodes, topology.num_categories, topology.edges.tobytes(), blocks)


class ThrmlBackend:
    """Block Gibbs sampling with thrml (JAX): spin and categorical nodes, every schedule,
    clamping with per-chain values, persistent chains."""

    name = "thrml"
    # The tsu-core protocol version implemented, as in pyproject.toml's "tsu.protocol" entry.
    protocol_version = "1.0"

    def __init__(self) -> None:
        self.capabilities = Capabilities(
            node_kinds=frozenset({"spin", "categorical"}),
            max_nodes=None,
            # thrml stores a categorical node as uint8 (its default node dtype).
            max_categories=MAX_CATEGORIES,
            # Constant beta is thrml's SamplingSchedule; the others run one thrml sweep per beta.
            schedules=frozenset({"constant", "linear", "geometric", "custom"}),
            clamping=True,
            initial_state=True,
            devices=device_names(jax.devices()),
            # jax.random.normal: exact standard normals, not an approximation (thrml has none).
            gaussian="native",
            exact=False,
        )
        self._compiled: OrderedDict[tuple, CompiledTopology] = OrderedDict()

    def compile(self, topology: Topology) -> ThrmlProgram:
        """Build thrml's nodes, blocks, factors and program once for this wiring.

        An identical wiring (same nodes, edges, categories and colouring) compiled again reuses
        what was built, including XLA's compiled sampler: the last `CACHE_SIZE` are kept.
        """
        check_supported(topology, self.capabilities)
        fingerprint = _fingerprint(topology)
        compiled = self._compiled.pop(fingerprint, None) or CompiledTopology(topology)
        self._compiled[fingerprint] = compiled
        while len(self._compiled) > CACHE_SIZE:
            self._compiled.popitem(last=False)
        return ThrmlProgram(topology, self, compiled)

    def pbit(self, fields: Any, *, key: Any, beta: float = 1.0) -> jax.Array:
        """Independent spins, P(s = +1) = sigmoid(2 beta f): thrml's spin conditional
        (`SpinGibbsConditional`) given the field gamma = beta f."""
        check_primitive_input("fields", fields)
        beta = check_beta(beta)
        key = jax_key(as_key(key))
        gamma = beta * to_jax(fields, jnp.float32)
        spins, _ = SpinGibbsConditional().sample_given_parameters(key, gamma, None, None)
        return decode_states(spins, is_spin=True)

    def categorical(self, logits: Any, *, key: Any, beta: float = 1.0) -> jax.Array:
        """Indices over the last axis with P(k) ~ exp(beta logits[k]): thrml's softmax
        conditional (`CategoricalGibbsConditional`). Logits of -inf are never drawn."""
        check_primitive_input("logits", logits, allow_negative_infinity=True)
        beta = check_beta(beta)
        key = jax_key(as_key(key))
        logits = to_jax(logits, jnp.float32)
        # Rows shifted to a maximum of 0: float32 logits of 1e8 would absorb thrml's noise.
        theta = beta * (logits - logits.max(axis=-1, keepdims=True))
        sampler = CategoricalGibbsConditional(theta.shape[-1])
        output = jax.ShapeDtypeStruct(theta.shape[:-1], jnp.int32)
        indices, _ = sampler.sample_given_parameters(key, theta, None, output)
        return indices

    def gaussian(self, shape: tuple[int, ...], *, key: Any, dtype: str = "float32") -> jax.Array:
        """Standard normal draws from `jax.random.normal` (exact; thrml samples no Gaussians)."""
        shape = check_shape("shape", shape, self.capabilities)
        return jax.random.normal(jax_key(as_key(key)), shape, dtype=jnp.dtype(dtype))
