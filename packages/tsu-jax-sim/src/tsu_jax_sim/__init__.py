"""tsu-jax-sim: the JAX simulator backend of the TSU stack (registered as `jax-sim`).

Block Gibbs, Metropolis and parallel tempering over a topology's colouring, compiled once per
topology; three interaction layouts (stencil, dense, neighbour lists); chains sharded over every
visible device; a bit-packed multispin kernel for the 2D Ising lattice.
"""

from tsu_jax_sim.backend import JaxSimBackend, metropolis_backend, tempering_backend
from tsu_jax_sim.multispin import PackedIsing

__version__ = "0.1.0"

__all__ = ["JaxSimBackend", "PackedIsing", "metropolis_backend", "tempering_backend"]
