"""Philox-4x32-10 against Random123's known answers, its products against numpy's 64-bit
integers, and the layout of its bits over nodes and chains."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tsu_jax_sim.philox import mulhilo_portable, philox4x32, philox_bits

# Random123 tests/kat_vectors, the "philox4x32 10" lines: counter (4 words), key (2), result (4).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _words(values) -> tuple[jax.Array, ...]:
    return tuple(jnp.asarray(np.uint32(value)) for value in values)


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_known_answers(counter, key, expected) -> None:
    words = philox4x32(_words(key), _words(counter))
    assert [int(word) for word in words] == list(expected)


def test_mulhilo_against_64_bit_products() -> None:
    generator = np.random.default_rng(0)
    a = generator.integers(0, 2**32, 10_000, dtype=np.uint64)
    a[:3] = [0, 1, 2**32 - 1]
    for m in (0xD2511F53, 0xCD9E8D57, 0xFFFFFFFF, 1):
        high, low = mulhilo_portable(jnp.asarray(a.astype(np.uint32)), m)
        product = a * np.uint64(m)
        assert np.array_equal(np.asarray(high), (product >> np.uint64(32)).astype(np.uint32))
        assert np.array_equal(np.asarray(low), (product & np.uint64(0xFFFFFFFF)).astype(np.uint32))


def test_bits_layout_and_tiles() -> None:
    """Chain c of node r is word c % 4 of the call at counter (r, c // 4, 0, 0); a tile at an
    offset gives the same bits as the whole array there."""
    key = _words((0x1234, 0xABCD))
    whole = np.asarray(philox_bits(key, (12, 32)))
    for node, chain in [(0, 0), (3, 5), (11, 31), (7, 18)]:
        counter = _words((node, chain // 4, 0, 0))
        assert whole[node, chain] == int(philox4x32(key, counter)[chain % 4])
    tile = np.asarray(philox_bits(key, (4, 8), first_row=8, first_chain=24))
    assert np.array_equal(tile, whole[8:12, 24:32])
    # roughly uniform: the mean of 384 uniform words is 2^31 within 5 standard errors
    assert abs(whole.astype(np.float64).mean() / 2**32 - 0.5) < 5 * np.sqrt(1 / 12 / whole.size)


@pytest.mark.skipif(jax.devices()[0].platform != "gpu", reason="PTX runs on a CUDA GPU only")
def test_ptx_high_half_in_a_kernel() -> None:
    """The kernel's `mul.hi.u32` gives the words of the portable product (CUDA GPUs only)."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    from tsu_jax_sim.philox import mulhilo_ptx

    key = jnp.asarray([0x9E37, 0x79B9], jnp.uint32)

    def kernel(key_ref, out_ref):
        out_ref[...] = philox_bits((key_ref[0], key_ref[1]), out_ref.shape, 16, 64, mulhilo_ptx)

    ours = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((16, 64), jnp.uint32),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(key)
    reference = philox_bits((key[0], key[1]), (16, 64), 16, 64)
    assert np.array_equal(np.asarray(ours), np.asarray(reference))
