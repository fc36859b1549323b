r"""Philox-4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"), the
counter-based generator of cuRAND's Philox and of PyTorch on CUDA: ten rounds of two 32x32-bit
multiplications and xors turn a 128-bit counter and a 64-bit key into four 32-bit words.

The fused RBM kernel (`fused_dense`) draws its uniforms from it. Per word it needs fewer than
half the integer operations of threefry-2x32-20 (counted from the code). In that kernel the
random bits are computed by the same threads as the product, so their cost adds to its time.

The high half of a product is one PTX instruction inside a Triton kernel (`mulhilo_ptx`) and
four 16-bit products elsewhere (`mulhilo_portable`: XLA, and Pallas's interpreter); both give
the same words. Known-answer vectors of Random123 check the rounds (tests/test_philox.py).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
KEY_STEPS = (0x9E3779B9, 0xBB67AE85)  # golden ratio and sqrt(3) - 1, as 32-bit fractions
ROUNDS = 10
MulHiLo = Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]


def mulhilo_portable(a: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """(high, low) 32-bit halves of the 64-bit product a * m, from uint32 operations only:
    the 16-bit halves of both factors multiplied and the carries added (no sum overflows)."""
    a_low, a_high = a & np.uint32(0xFFFF), a >> np.uint32(16)
    m_low, m_high = np.uint32(m & 0xFFFF), np.uint32(m >> 16)
    middle = a_high * m_low + ((a_low * m_low) >> np.uint32(16))
    other = a_low * m_high + (middle & np.uint32(0xFFFF))
    high = a_high * m_high + (middle >> np.uint32(16)) + (other >> np.uint32(16))
    return high, a * np.uint32(m)


def mulhilo_ptx(a: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """`mulhilo_portable` inside a Pallas Triton kernel: the high half is PTX `mul.hi.u32`."""
    from jax.experimental.pallas import triton as plgpu

    signed = jax.lax.bitcast_convert_type(a, jnp.int32)  # inline asm takes signless words
    (high,) = plgpu.elementwise_inline_asm(
        f"mul.hi.u32 $0, $1, {m};",
        args=[signed],
        constraints="=r,r",
        pack=1,
        result_shape_dtypes=[jax.ShapeDtypeStruct(a.shape, jnp.int32)],
    )
    return jax.lax.bitcast_convert_type(high, jnp.uint32), a * np.uint32(m)


def philox4x32(
    key: tuple[jax.Array, jax.Array],
    counter: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    mulhilo: MulHiLo = mulhilo_portable,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The four uint32 output words of Philox-4x32-10 at `counter` (4 uint32 arrays) under
    `key` (2 uint32 scalars or arrays)."""
    key0, key1 = key
    x0, x1, x2, x3 = counter
    for round_index in range(ROUNDS):
        if round_index:
            key0, key1 = key0 + np.uint32(KEY_STEPS[0]), key1 + np.uint32(KEY_STEPS[1])
        high0, low0 = mulhilo(x0, MULTIPLIERS[0])
        high1, low1 = mulhilo(x2, MULTIPLIERS[1])
        x0, x1, x2, x3 = high1 ^ x1 ^ key0, low1, high0 ^ x3 ^ key1, low0
    return x0, x1, x2, x3


def philox_bits(
    key: tuple[jax.Array, jax.Array],
    shape: tuple[int, int],
    first_row: jax.Array | int = 0,
    first_chain: jax.Array | int = 0,
    mulhilo: MulHiLo = mulhilo_portable,
) -> jax.Array:
    """(rows, chains) uint32 random bits: those of node `first_row + r` and chain
    `first_chain + c` are word c % 4 of Philox at counter (node, chain // 4, 0, 0). One call
    serves four chains; its words are interleaved along the chains by two 2-way stacks (all a
    Triton kernel can do). `chains` and `first_chain` are multiples of 4."""
    rows, chains = shape
    quarter = chains // 4
    node = first_row + jax.lax.broadcasted_iota(jnp.int32, (rows, quarter), 0)
    quad = first_chain // 4 + jax.lax.broadcasted_iota(jnp.int32, (rows, quarter), 1)
    zero = jnp.zeros((rows, quarter), jnp.uint32)
    counter = (node.astype(jnp.uint32), quad.astype(jnp.uint32), zero, zero)
    words = philox4x32(key, counter, mulhilo)
    even = jnp.stack((words[0], words[2]), axis=-1).reshape(rows, chains // 2)
    odd = jnp.stack((words[1], words[3]), axis=-1).reshape(rows, chains // 2)
    return jnp.stack((even, odd), axis=-1).reshape(rows, chains)
