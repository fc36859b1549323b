"""Padding sizes to a few buckets, so that backends which compile per shape (JAX's jit)
compile a handful of programs instead of one per batch size or sequence length.

A size n is rounded up to a multiple of 2**(floor(log2 n) - 2): four buckets per octave, at
most 25% padding.
"""

from __future__ import annotations

import torch


def bucket(size: int) -> int:
    """The smallest bucket >= size (sizes up to 8 are their own buckets)."""
    if size <= 8:
        return max(size, 1)
    step = 1 << (size.bit_length() - 3)
    return -(-size // step) * step


def pad_rows(values: torch.Tensor, fill: float = 0.0) -> tuple[torch.Tensor, int]:
    """Flatten to (rows, last) and pad the rows to a bucket; returns the padded 2-D tensor and
    the original row count."""
    flat = values.reshape(-1, values.shape[-1]) if values.dim() > 1 else values.reshape(-1, 1)
    rows = flat.shape[0]
    padded_rows = bucket(rows)
    if padded_rows == rows:
        return flat.contiguous(), rows
    padding = flat.new_full((padded_rows - rows, flat.shape[1]), fill)
    return torch.cat([flat, padding], 0), rows
