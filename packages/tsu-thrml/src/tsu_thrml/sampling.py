r"""Running thrml's block Gibbs sampler on many chains, with a fixed or a per-sweep beta.

A tsu-core call runs $T = \text{burn\_in} + S \cdot \text{thinning}$ sweeps and records the state
after sweep $\text{burn\_in} + (k + 1)\,\text{thinning}$, $k = 0 \dots S - 1$.

* Constant beta: one thrml `SamplingSchedule(n_warmup=burn_in + thinning, n_samples=S,
  steps_per_sample=thinning)` run through `thrml.sample_with_observation`, on a program whose
  weights are $\beta\theta$ (beta multiplies the energy, so it multiplies every weight).
* Per-sweep beta (linear, geometric, custom): thrml's schedule has one program for the whole run,
  so the run is cut into single sweeps, each a `thrml.sample_blocks` call on the program scaled
  by that sweep's $\beta_t$, and the same observer is called after each recorded sweep. This is
  exact, not an approximation: every sweep is a Gibbs sweep of $p_t(x) \propto e^{-\beta_t E(x)}$.

Chains are `jax.vmap`ped over the single-chain thrml functions, each with its own key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from thrml import (
    AbstractObserver,
    FactorSamplingProgram,
    SamplingSchedule,
    sample_blocks,
    sample_with_observation,
)

from tsu_thrml.graph import scaled, with_parameters


@dataclass(frozen=True)
class RunConfig:
    """The static shape of a run (a change recompiles; parameters and betas do not)."""

    num_chains: int
    num_samples: int
    burn_in: int
    thinning: int
    annealed: bool

    @property
    def num_sweeps(self) -> int:
        return self.burn_in + self.num_samples * self.thinning

    def thrml_schedule(self) -> SamplingSchedule:
        """The thrml schedule of a constant-beta run (the first record follows warm-up)."""
        return SamplingSchedule(self.burn_in + self.thinning, self.num_samples, self.thinning)


def run_chains(
    program: FactorSamplingProgram,
    observer: AbstractObserver,
    theta: jax.Array,
    betas: jax.Array,
    keys: jax.Array,
    free_states: list[jax.Array],
    clamped_states: list[jax.Array],
    config: RunConfig,
) -> tuple[Any, Any]:
    """Run every chain; returns thrml's (observer carry, observations), chains first.

    Arguments:
        program: the thrml program with parameter positions in its weight slots.
        theta: the flat parameter vector (`graph.flat_parameters`).
        betas: (T,) the beta of every sweep (only the first is read when not annealed).
        keys: (C,) one JAX key per chain.
        free_states: per free block, (C, block size) initial states in thrml's encoding.
        clamped_states: per clamped block, (C, block size) values in thrml's encoding.
    """
    if not config.annealed:
        program = with_parameters(program, theta * betas[0])
        schedule = config.thrml_schedule()

        def chain(key, free, clamped):
            return sample_with_observation(
                key, program, schedule, free, clamped, observer.init(), observer
            )

    else:
        program = with_parameters(program, theta)

        def chain(key, free, clamped):
            return _annealed_chain(key, program, observer, betas, free, clamped, config)

    return jax.vmap(chain)(keys, free_states, clamped_states)


def _annealed_chain(
    key: jax.Array,
    program: FactorSamplingProgram,
    observer: AbstractObserver,
    betas: jax.Array,
    free: list[jax.Array],
    clamped: list[jax.Array],
    config: RunConfig,
) -> tuple[Any, Any]:
    """One chain, one thrml sweep per beta, observing after each recorded sweep."""
    sampler_states = [sampler.init() for sampler in program.samplers]
    sweep_keys = jax.random.split(key, config.num_sweeps)

    def sweep(state, inputs):
        sweep_key, beta = inputs
        block_states, samplers = state
        block_states, samplers = sample_blocks(
            sweep_key, list(block_states), clamped, scaled(program, beta), list(samplers)
        )
        return (block_states, samplers), None

    state = (list(free), sampler_states)
    burn_in = config.burn_in
    if burn_in:
        state, _ = jax.lax.scan(sweep, state, (sweep_keys[:burn_in], betas[:burn_in]))

    def record(carry, inputs):
        state, memory = carry
        sample_keys, sample_betas, index = inputs
        state, _ = jax.lax.scan(sweep, state, (sample_keys, sample_betas))
        memory, output = observer(program, state[0], clamped, memory, index)
        return (state, memory), output

    shape = (config.num_samples, config.thinning)
    inputs = (
        sweep_keys[burn_in:].reshape(shape),
        betas[burn_in:].reshape(shape),
        jnp.arange(config.num_samples),
    )
    (_, memory), outputs = jax.lax.scan(record, (state, observer.init()), inputs)
    return memory, outputs
