"""Timing JAX calls: dispatch is asynchronous, so a clock is read only once results are ready."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def block(value: Any) -> Any:
    """Wait for every array in a result (JAX dispatch is asynchronous)."""
    return jax.block_until_ready(jax.tree_util.tree_map(lambda x: x, value))


def time_call(call: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall time in seconds of `call()` after one warm-up call (compilation)."""
    block(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(call())
        times.append(time.perf_counter() - start)
    return statistics.median(times)
