"""Text data: any UTF-8 file, tokenised once, cut into sequences of consecutive turns.

A training sequence is `num_turns` consecutive turns of `turn_length` tokens each. With
probability `recall_probability` its last turn repeats its first: the multi-turn task whose
answer depends on an earlier turn (only the thought stack can carry it across turns).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch


def read_text(path: str | Path) -> str:
    """The text of a file, with a clear error when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no file at {path}; pass --data PATH to a UTF-8 text file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"data: {path} is empty")
    return text


def generated_text(num_lines: int = 400, seed: int = 0) -> str:
    """Small English-like text made in code (for tests and demos without any file)."""
    rng = random.Random(seed)
    subjects = ["the king", "a fool", "my lord", "the queen", "good friar", "this knight"]
    verbs = ["speaks of", "dreams of", "rides to", "sings for", "waits by", "fights for"]
    objects = ["the sea", "a crown", "old rome", "the night", "her ring", "his honour"]
    lines = []
    for _ in range(num_lines):
        lines.append(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}.")
    return "\n".join(lines) + "\n"


class TokenData:
    """Token ids split into train (first 90%) and validation (last 10%)."""

    def __init__(self, ids: list[int], validation_fraction: float = 0.1) -> None:
        tokens = torch.tensor(ids, dtype=torch.long)
        split = int(len(tokens) * (1 - validation_fraction))
        self.train, self.validation = tokens[:split], tokens[split:]

    def batch(
        self,
        split: str,
        batch_size: int,
        num_turns: int,
        turn_length: int,
        generator: torch.Generator,
        recall_probability: float = 0.0,
    ) -> torch.Tensor:
        """(B, T, L) token ids: B sequences of T consecutive turns of L tokens."""
        source = self.train if split == "train" else self.validation
        length = num_turns * turn_length
        if len(source) <= length:
            raise ValueError(
                f"data: the {split} split has {len(source)} tokens, fewer than one sequence of "
                f"{num_turns} turns x {turn_length} tokens; use a longer text or shorter turns"
            )
        starts = torch.randint(0, len(source) - length, (batch_size,), generator=generator)
        batch = torch.stack([source[s : s + length] for s in starts.tolist()])
        batch = batch.view(batch_size, num_turns, turn_length)
        if num_turns > 1 and recall_probability > 0:
            recall = torch.rand(batch_size, generator=generator) < recall_probability
            batch[recall, -1] = batch[recall, 0]
        return batch

    def recall_episodes(
        self, batch_size: int, num_turns: int, turn_length: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Validation sequences whose last turn repeats the first (the recall evaluation)."""
        return self.batch("validation", batch_size, num_turns, turn_length, generator, 1.0)
