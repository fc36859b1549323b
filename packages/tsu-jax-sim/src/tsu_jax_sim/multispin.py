r"""Bit-packed multispin kernel for the periodic 2D Ising lattice (uniform J > 0, no field).

Thirty-two independent chains share one uint32 word per lattice site (bit b of a word is chain
b's spin, 1 = +1), and the lattice is split into its two checkerboard colours, each stored as
(rows, cols / 2, words). One half-sweep updates every site of one colour in all chains with
bitwise logic only, fused by XLA into one kernel (no float per spin, random bits made in the
kernel from a counter hash, nothing but the packed lattice read or written):

1. aligned neighbours: $a_n = \lnot(s \oplus s_n)$ for the four neighbours, summed per bit
   lane with two half adders into the classes "4 aligned", "3 aligned", "at most 2 aligned".
2. Metropolis: a flip changes the energy by $\Delta E = 2J(2a - 4)$, so a site with at most 2
   aligned neighbours flips always; with 3 it flips with $p_3 = e^{-4\beta J}$, with 4 with
   $p_4 = e^{-8\beta J}$.
3. Bernoulli bits per lane: a lane flips when a uniform $u$ is below its threshold $t$; $u$ is
   compared with $t$ bit by bit from the most significant, one random word per level carrying
   one bit of each lane's $u$. After `levels` levels the lanes still tied count as $u \ge t$,
   so a lane flips with probability exactly $\lfloor p\, 2^{L} \rfloor / 2^{L}$
   (L = `levels` = 24: within $6 \cdot 10^{-8}$ of $p$, the resolution of a float32).

Random words: $r = H(h + j \varphi)$ for level j, with $h = H(H(i \oplus k_1) + k_2)$ for word
i and $(k_1, k_2)$ drawn per half-sweep from the seed; H is a 32-bit integer hash (xor-shift /
multiply, "lowbias32") and $\varphi$ the golden-ratio constant.

Each chain is an exact single-spin Metropolis chain (checkerboard order) for the Boltzmann
distribution, chains in one word use independent bits, and the whole kernel is `jax.numpy`, so
it runs on any device (and is tested on the CPU against Kaufman's exact energy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

LANES = 32
LEVELS = 24
GOLDEN = np.uint32(0x9E3779B9)


def _hash(x: jax.Array) -> jax.Array:
    """lowbias32: a bijective 32-bit integer hash with low bias (Wellons)."""
    x = x ^ (x >> 16)
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _threshold_masks(probability: jax.Array, levels: int) -> jax.Array:
    """(levels,) uint32 words, all ones where bit j (most significant first) of
    floor(p 2^levels) is set."""
    integer = jnp.floor(probability * (2.0**levels)).astype(jnp.uint32)
    shifts = jnp.arange(levels - 1, -1, -1, dtype=jnp.uint32)
    bits = (integer >> shifts) & np.uint32(1)
    return np.uint32(0) - bits


def _half_sweep(
    update: jax.Array,
    other: jax.Array,
    colour: int,
    keys: jax.Array,
    three_masks: jax.Array,
    four_masks: jax.Array,
    levels: int,
) -> jax.Array:
    """Metropolis on every site of one colour (`update`, shape (R, C/2, W)) given the other."""
    rows = update.shape[0]
    row_even = (jnp.arange(rows) % 2 == 0)[:, None, None]
    side_minus = jnp.roll(other, 1, axis=1)  # other[r, k - 1]
    side_plus = jnp.roll(other, -1, axis=1)  # other[r, k + 1]
    if colour == 0:  # black (r + c even): horizontal neighbours k and k-1 (even r) / k+1 (odd r)
        side = jnp.where(row_even, side_minus, side_plus)
    else:
        side = jnp.where(row_even, side_plus, side_minus)
    aligned = [
        ~(update ^ jnp.roll(other, 1, axis=0)),
        ~(update ^ jnp.roll(other, -1, axis=0)),
        ~(update ^ other),
        ~(update ^ side),
    ]
    sum_low, carry_low = aligned[0] ^ aligned[1], aligned[0] & aligned[1]
    sum_high, carry_high = aligned[2] ^ aligned[3], aligned[2] & aligned[3]
    bit0 = sum_low ^ sum_high
    bit1 = carry_low ^ carry_high ^ (sum_low & sum_high)
    four = carry_low & carry_high  # bit 2: all four aligned
    three = bit1 & bit0
    index = jax.lax.iota(jnp.uint32, update.size).reshape(update.shape)
    seed = _hash(_hash(index ^ keys[0]) + keys[1])
    undecided = four | three
    accept = jnp.zeros_like(update)
    for level in range(levels):
        random = _hash(seed + np.uint32((level * int(GOLDEN)) & 0xFFFFFFFF))
        threshold = (three & three_masks[level]) | (four & four_masks[level])
        accept = accept | (undecided & ~random & threshold)
        undecided = undecided & ~(random ^ threshold)
    return update ^ (~(four | three) | accept)


@partial(jax.jit, static_argnames=("num_sweeps", "levels"))
def run_packed(
    black: jax.Array,
    white: jax.Array,
    seed: jax.Array,
    beta: jax.Array,
    coupling: jax.Array,
    num_sweeps: int,
    levels: int = LEVELS,
) -> tuple[jax.Array, jax.Array]:
    """`num_sweeps` checkerboard Metropolis sweeps of packed lattices.

    Arguments:
        black, white: (rows, cols / 2, words) uint32, the two colours (see `pack`).
        seed: (2,) uint32.
        beta, coupling: scalars (traced: new values never recompile).
    """
    three_masks = _threshold_masks(jnp.exp(-4.0 * beta * coupling), levels)
    four_masks = _threshold_masks(jnp.exp(-8.0 * beta * coupling), levels)
    seed = seed.astype(jnp.uint32)

    def keys_for(step: jax.Array) -> jax.Array:
        first = _hash(seed[0] ^ _hash(step.astype(jnp.uint32) + seed[1]))
        return jnp.stack([first, _hash(first + seed[1] + GOLDEN)])

    def body(step: jax.Array, state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        black, white = state
        black = _half_sweep(black, white, 0, keys_for(2 * step), three_masks, four_masks, levels)
        white = _half_sweep(
            white, black, 1, keys_for(2 * step + 1), three_masks, four_masks, levels
        )
        return black, white

    return jax.lax.fori_loop(0, num_sweeps, body, (black, white))


def pack(spins: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(chains, rows, cols) +-1 spins, chains a multiple of 32 -> the (black, white) words."""
    spins = np.asarray(spins)
    chains, rows, cols = spins.shape
    if chains % LANES or rows % 2 or cols % 2:
        raise ValueError(
            f"pack: expected chains a multiple of {LANES} and even sides, got {spins.shape}"
        )
    bits = (spins > 0).astype(np.uint64).reshape(chains // LANES, LANES, rows, cols)
    words = (bits << np.arange(LANES, dtype=np.uint64)[None, :, None, None]).sum(1)
    words = np.moveaxis(words.astype(np.uint32), 0, -1)  # (rows, cols, W)
    parity = np.arange(rows)[:, None] % 2
    columns = 2 * np.arange(cols // 2)[None, :]
    row_index = np.arange(rows)[:, None]
    black = words[row_index, columns + parity]
    white = words[row_index, columns + 1 - parity]
    return jnp.asarray(black), jnp.asarray(white)


def unpack(black: jax.Array, white: jax.Array) -> np.ndarray:
    """The inverse of `pack`: (chains, rows, cols) int8 spins."""
    black, white = np.asarray(black), np.asarray(white)
    rows, half, num_words = black.shape
    words = np.zeros((rows, 2 * half, num_words), dtype=np.uint32)
    parity = np.arange(rows)[:, None] % 2
    columns = 2 * np.arange(half)[None, :]
    row_index = np.arange(rows)[:, None]
    words[row_index, columns + parity] = black
    words[row_index, columns + 1 - parity] = white
    bits = (words[..., None] >> np.arange(LANES, dtype=np.uint32)) & 1  # (rows, cols, W, 32)
    spins = np.where(bits == 1, 1, -1).astype(np.int8)
    return np.moveaxis(spins.reshape(rows, 2 * half, num_words * LANES), -1, 0)


@jax.jit
def packed_energy_per_spin(black: jax.Array, white: jax.Array) -> jax.Array:
    """Energy per spin of every chain (J = 1), (words * 32,), from the packed lattices:
    each bond joins a black and a white site, so the four bonds of every black site cover
    the lattice once; E = -(aligned - misaligned) = 2 * misaligned - num_bonds."""
    rows, half, _ = black.shape
    row_even = (jnp.arange(rows) % 2 == 0)[:, None, None]
    side = jnp.where(row_even, jnp.roll(white, 1, axis=1), jnp.roll(white, -1, axis=1))
    lanes = jnp.arange(LANES, dtype=jnp.uint32)
    misaligned = jnp.zeros((black.shape[-1], LANES), jnp.int32)
    for neighbour in (white, side, jnp.roll(white, 1, axis=0), jnp.roll(white, -1, axis=0)):
        bits = ((black ^ neighbour)[..., None] >> lanes) & np.uint32(1)
        misaligned = misaligned + bits.astype(jnp.int32).sum((0, 1))
    num_spins = rows * 2 * half
    return ((2 * misaligned - 2 * num_spins) / num_spins).reshape(-1)


@dataclass(frozen=True)
class PackedIsing:
    """The periodic rows x cols ferromagnet sampled by the multispin kernel.

    Arguments:
        rows: the lattice's rows (even).
        cols: the lattice's columns (even).
        coupling: J > 0 (uniform), no field.
    """

    rows: int
    cols: int
    coupling: float = 1.0

    def initial(self, num_chains: int, ordered: bool, seed: int = 0) -> tuple[jax.Array, jax.Array]:
        """All-up lattices (ordered) or independent random spins, packed."""
        if num_chains % LANES:
            raise ValueError(f"num_chains: expected a multiple of {LANES}, got {num_chains}")
        shape = (self.rows, self.cols // 2, num_chains // LANES)
        if ordered:
            full = jnp.full(shape, np.uint32(0xFFFFFFFF))
            return full, full
        key = jax.random.key(seed)
        first, second = jax.random.split(key)
        return (
            jax.random.bits(first, shape, jnp.uint32),
            jax.random.bits(second, shape, jnp.uint32),
        )

    def run(
        self,
        state: tuple[jax.Array, jax.Array],
        seed: int,
        beta: float,
        num_sweeps: int,
        levels: int = LEVELS,
    ) -> tuple[jax.Array, jax.Array]:
        words = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
        return run_packed(
            state[0],
            state[1],
            jnp.asarray(words),
            jnp.float32(beta),
            jnp.float32(self.coupling),
            num_sweeps=num_sweeps,
            levels=levels,
        )
