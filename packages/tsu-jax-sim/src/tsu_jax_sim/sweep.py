r"""One sweep of the chains: every block updated in turn, on device.

Samplers (each leaves the Boltzmann distribution $p(s) \propto e^{-\beta E(s)}$ invariant):

* ``gibbs`` (heat bath): a spin is drawn from its conditional,
  $P(s_i = +1 \mid \text{rest}) = \sigma(2 \beta f_i)$ (the p-bit); a categorical node by the
  Gumbel-max trick, $x_i = \arg\max_k (\beta \ell_i[k] + g_k)$ with $g_k$ standard Gumbel.
* ``metropolis``: every node proposes a change (a spin flip; for categorical nodes, a uniform
  other state) accepted with probability $\min(1, e^{-\beta \Delta E})$, $\Delta E = 2 s_i f_i$
  for a spin flip. The nodes of one block share no edge, so updating them at once is the same
  as single-spin Metropolis over the block in any order.

Parallel tempering adds, after every sweep, replica exchanges between neighbouring rungs of a
beta ladder (even pairs on even sweeps, odd pairs on odd sweeps), accepted with probability
$\min(1, e^{(\beta_r - \beta_{r+1})(E_r - E_{r+1})})$.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tsu_jax_sim import gather
from tsu_jax_sim.layouts import LayoutParameters

SAMPLERS = ("gibbs", "metropolis")


def draw_noise(layout: Any, key: jax.Array, rows: int, sampler: str) -> jax.Array:
    """All random numbers of one sweep in a single draw: every node is updated once per sweep,
    so each entry is used once. Spins: uniforms (rows, N); categorical Gibbs: Gumbels
    (rows, N, K); categorical Metropolis: uniforms (2, rows, N) (proposal, acceptance)."""
    topology = layout.topology
    shape = (rows, topology.num_nodes)
    if topology.is_spin:
        return jax.random.uniform(key, shape, jnp.float32)
    if sampler == "gibbs":
        return jax.random.gumbel(key, shape + (topology.num_categories,), jnp.float32)
    return jax.random.uniform(key, (2,) + shape, jnp.float32)


def heat_bath_spins(fields: jax.Array, uniforms: jax.Array, beta: jax.Array) -> jax.Array:
    r"""Heat-bath spins: +1 where the uniform is below $\sigma(2 \beta f)$, else -1 (float32)."""
    return jnp.where(uniforms < jax.nn.sigmoid(2.0 * beta * fields), 1.0, -1.0)


def update_block(
    layout: Any,
    prepared: LayoutParameters,
    states: jax.Array,
    index: int,
    noise: jax.Array,
    betas: jax.Array,
    free: jax.Array,
    sampler: str,
) -> jax.Array:
    """Update block `index` of every chain; clamped nodes (`free` False) keep their value.

    Arguments:
        states: (rows, N), float32 spins or int32 categories.
        noise: this sweep's random numbers (`draw_noise`).
        betas: (rows,) the beta of each row (chain or replica).
        free: (N,) bool, False at clamped nodes.
    """
    spin = layout.topology.is_spin
    fields = layout.block_fields(prepared, states, index)
    if layout.masked_update:
        current = states
        keep = ~(free & layout.block_masks[index])
    else:
        block = layout.blocks[index]
        current = gather.take(states, block, 1)
        keep = ~free[block]
        noise = gather.take(noise, block, 2 if (not spin and sampler != "gibbs") else 1)
    beta = betas.reshape((-1,) + (1,) * (fields.ndim - 1))
    if spin:
        if sampler == "gibbs":
            proposal = heat_bath_spins(fields, noise, beta)
        else:
            accept = noise < jnp.exp(-2.0 * beta * current * fields)
            proposal = jnp.where(accept, -current, current)
    else:
        num_categories = fields.shape[-1]
        if sampler == "gibbs":
            proposal = jnp.argmax(beta * fields + noise, axis=-1).astype(states.dtype)
        else:
            shift = 1 + jnp.minimum(
                (noise[0] * (num_categories - 1)).astype(jnp.int32), num_categories - 2
            )
            candidate = (current + shift) % num_categories
            gain = jnp.take_along_axis(fields, candidate[..., None], -1)[..., 0]
            gain = gain - jnp.take_along_axis(fields, current[..., None], -1)[..., 0]
            accept = noise[1] < jnp.exp(beta[..., 0] * gain)
            proposal = jnp.where(accept, candidate, current).astype(states.dtype)
    proposal = jnp.where(keep, current, proposal).astype(states.dtype)
    if layout.masked_update:
        return proposal
    block = layout.blocks[index]
    if gather.contiguous(block):
        return jax.lax.dynamic_update_slice_in_dim(states, proposal, int(block[0]), axis=1)
    return states.at[:, block].set(proposal)


def sweep(
    layout: Any,
    prepared: LayoutParameters,
    states: jax.Array,
    key: jax.Array,
    betas: jax.Array,
    free: jax.Array,
    sampler: str,
) -> jax.Array:
    """Update every block once, in the topology's block order."""
    noise = draw_noise(layout, key, states.shape[0], sampler)
    if getattr(layout, "sequential", False):
        return _sequential_sweep(layout, prepared, states, noise, betas, free, sampler)
    for index in range(len(layout.blocks)):
        states = update_block(layout, prepared, states, index, noise, betas, free, sampler)
    return states


def _sequential_sweep(
    layout: Any,
    prepared: LayoutParameters,
    states: jax.Array,
    noise: jax.Array,
    betas: jax.Array,
    free: jax.Array,
    sampler: str,
) -> jax.Array:
    """Spin blocks updated one after another inside a `fori_loop` over padded block indices
    (dense layout with many blocks): the same updates as the unrolled sweep, one compiled copy."""
    num_nodes = layout.topology.num_nodes
    padded = jnp.asarray(layout.padded_blocks)
    free_padded = jnp.concatenate([free, jnp.zeros(1, dtype=bool)])
    beta = betas.reshape(-1, 1)

    def body(index: jax.Array, states: jax.Array) -> jax.Array:
        nodes = padded[index]
        safe = jnp.minimum(nodes, num_nodes - 1)
        fields = layout.padded_block_fields(prepared, states, nodes)
        current = jnp.take(states, safe, axis=1)
        uniform = jnp.take(noise, safe, axis=1)
        if sampler == "gibbs":
            proposal = heat_bath_spins(fields, uniform, beta)
        else:
            accept = uniform < jnp.exp(-2.0 * beta * current * fields)
            proposal = jnp.where(accept, -current, current)
        proposal = jnp.where(free_padded[nodes], proposal, current).astype(states.dtype)
        return states.at[:, nodes].set(proposal, mode="drop")

    return jax.lax.fori_loop(0, padded.shape[0], body, states)


def exchange_replicas(
    states: jax.Array,
    energies: jax.Array,
    ladder_betas: jax.Array,
    key: jax.Array,
    parity: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Replica exchange between rungs (r, r+1) with r = parity (mod 2).

    Arguments:
        states: (C, R, N) replicas, rung R-1 the target beta.
        energies: (C, R) their energies.
        ladder_betas: (R,) the beta of each rung, increasing.
        parity: 0 or 1 (traced).
    """
    num_rungs = ladder_betas.shape[0]
    lower = jnp.arange(num_rungs - 1)
    log_accept = (ladder_betas[:-1] - ladder_betas[1:]) * (energies[:, :-1] - energies[:, 1:])
    uniform = jax.random.uniform(key, log_accept.shape, jnp.float32, minval=1e-38)
    swap = (jnp.log(uniform) < log_accept) & (lower % 2 == parity)  # (C, R-1)
    pad = jnp.zeros((swap.shape[0], 1), dtype=bool)
    up = jnp.concatenate([swap, pad], axis=1)  # rung r takes r+1
    down = jnp.concatenate([pad, swap], axis=1)  # rung r takes r-1
    rungs = np.arange(num_rungs)
    source = jnp.where(up, rungs + 1, jnp.where(down, rungs - 1, rungs))
    states = jnp.take_along_axis(states, source[..., None], axis=1)
    energies = jnp.take_along_axis(energies, source, axis=1)
    return states, energies
