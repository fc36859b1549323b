"""Explicit random keys, independent of any framework.

A `Key` is 64 bits of entropy. Backends turn it into their own generator (a numpy `Generator`,
a JAX key, a device seed), so the same key, model and backend always give the same samples.
Keys are split and folded deterministically with numpy's `SeedSequence` hashing, which is
well mixed: children of one key are statistically independent streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsu_core.errors import InvalidRequest, describe

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Key:
    """A 64-bit random key.

    Arguments:
        value: an integer in [0, 2**64).
    """

    value: int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, np.integer)):
            raise InvalidRequest(f"key: expected an integer, got {describe(self.value)}")
        if not 0 <= int(self.value) <= _MASK64:
            raise InvalidRequest(f"key: expected an integer in [0, 2**64), got {int(self.value)}")
        object.__setattr__(self, "value", int(self.value))

    def split(self, num: int = 2) -> tuple[Key, ...]:
        """`num` independent child keys."""
        if num < 1:
            raise InvalidRequest(f"split: expected num >= 1, got {num}")
        words = np.random.SeedSequence(self.value).generate_state(2 * num, dtype=np.uint32)
        return tuple(Key((int(words[2 * i]) << 32) | int(words[2 * i + 1])) for i in range(num))

    def fold_in(self, data: int) -> Key:
        """A child key determined by this key and an integer (a step number, a layer index)."""
        words = np.random.SeedSequence([self.value & 0xFFFFFFFF, self.value >> 32, int(data)])
        high, low = words.generate_state(2, dtype=np.uint32)
        return Key((int(high) << 32) | int(low))

    def words(self) -> tuple[int, int]:
        """The key as two unsigned 32-bit words (high, low), e.g. to seed a JAX key."""
        return self.value >> 32, self.value & 0xFFFFFFFF

    def generator(self) -> np.random.Generator:
        """A numpy generator seeded by this key."""
        return np.random.Generator(np.random.Philox(self.value))


def as_key(key: object) -> Key:
    """Accept a `Key` or an integer seed in [0, 2**64); anything else is an error (a larger
    seed is refused rather than reduced, so that two different seeds never name one key)."""
    if isinstance(key, Key):
        return key
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= key <= _MASK64:
            raise InvalidRequest(
                f"key: expected a tsu_core.Key or a seed in [0, 2**64), got {int(key)}; a key "
                "holds 64 bits, so reduce a larger seed yourself (seed % 2**64) if that is meant"
            )
        return Key(int(key))
    raise InvalidRequest(
        f"key: expected a tsu_core.Key or a non-negative integer seed, got {describe(key)}; "
        "build one with tsu_core.Key(seed)"
    )
