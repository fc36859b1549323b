"""The baselines the `jax_sim_*.py` benchmarks measure jax-sim against: thrml's Ising sampler
and a plain PyTorch RBM, each sampling the same model.

thrml (`pip install thrml`) is imported only when a benchmark asks for it; its models are built
through its public API (`IsingEBM`, `IsingSamplingProgram`, `sample_states`), with chains
`jax.vmap`ped over keys and initial states. torch likewise (`torch_rbm_runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def thrml_ising_runner(
    num_nodes: int,
    edges: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
    blocks: list[np.ndarray],
    beta: float,
    num_chains: int,
    num_sweeps: int,
) -> Callable[[int], Any]:
    """A function key -> final states of `num_chains` thrml chains after `num_sweeps` block
    Gibbs sweeps of thrml's IsingEBM over the given colouring (jit-compiled, chains vmapped)."""
    import jax
    import jax.numpy as jnp
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    nodes = [SpinNode() for _ in range(num_nodes)]
    edge_list = [(nodes[int(i)], nodes[int(j)]) for i, j in edges]
    model = IsingEBM(
        nodes,
        edge_list,
        jnp.asarray(biases, jnp.float32),
        jnp.asarray(weights, jnp.float32),
        jnp.asarray(beta, jnp.float32),
    )
    free_blocks = [Block([nodes[int(i)] for i in block]) for block in blocks]
    program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])
    schedule = SamplingSchedule(n_warmup=num_sweeps - 1, n_samples=1, steps_per_sample=1)
    everything = [Block(nodes)]

    def one_chain(key: jax.Array, initial: list[jax.Array]) -> Any:
        return sample_states(key, program, schedule, initial, [], everything)

    @jax.jit
    def run(seed: jax.Array) -> Any:
        key = jax.random.key(seed)
        init_key, sample_key = jax.random.split(key)
        initial = hinton_init(init_key, model, free_blocks, (num_chains,))
        keys = jax.random.split(sample_key, num_chains)
        return jax.vmap(one_chain)(keys, initial)

    return lambda seed: run(jnp.uint32(seed))


def torch_rbm_runner(
    weights: np.ndarray,
    biases: np.ndarray,
    visible: int,
    hidden: int,
    num_chains: int,
    num_sweeps: int,
    dtype: str = "float32",
) -> Callable[[int], Any]:
    """A function seed -> visible spins after `num_sweeps` block Gibbs sweeps (beta 1) of a plain
    PyTorch RBM on torch's GPU if there is one: per half sweep a matrix product in `dtype`
    (float32 accumulation for bfloat16), `torch.rand`, a sigmoid and a compare, as a user would
    write it. Edge v * H + h of `Topology.bipartite` is weights[v * H + h]."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = getattr(torch, dtype)
    matrix = torch.tensor(weights.reshape(visible, hidden), dtype=kind, device=device)
    visible_bias = torch.tensor(biases[:visible], dtype=torch.float32, device=device)
    hidden_bias = torch.tensor(biases[visible:], dtype=torch.float32, device=device)

    def draw(field: Any, generator: Any) -> Any:
        uniform = torch.rand(field.shape, generator=generator, device=device)
        return torch.where(uniform < torch.sigmoid(2.0 * field), 1.0, -1.0).to(kind)

    @torch.no_grad()
    def run(seed: int) -> Any:
        generator = torch.Generator(device).manual_seed(seed)
        spins = draw(torch.zeros(num_chains, visible, device=device), generator)
        for _ in range(num_sweeps):
            hiddens = draw((spins @ matrix).float() + hidden_bias, generator)
            spins = draw((hiddens @ matrix.T).float() + visible_bias, generator)
        if device == "cuda":
            torch.cuda.synchronize()
        return spins

    return run
