"""Tokenizers: bytes (no training, 256 ids + mask) or a byte-level BPE trained locally.

Both put the mask token at the last id, so `ModelConfig.vocab_size == tokenizer.vocab_size`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

MASK_TOKEN = "<mask>"


class Tokenizer(Protocol):
    vocab_size: int
    mask_id: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def to_json(self) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255; the mask token is 256."""

    vocab_size = 257
    mask_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": "byte"})


class BPETokenizer:
    """A byte-level BPE (Hugging Face `tokenizers`), trained on a local text; mask id last."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.mask_id = tokenizer.token_to_id(MASK_TOKEN)
        if self.mask_id != self.vocab_size - 1:
            raise ValueError(
                f"BPE tokenizer: the mask token must be the last id ({self.vocab_size - 1}), "
                f"got {self.mask_id}"
            )

    @classmethod
    def train(cls, text: str, vocab_size: int = 4096) -> BPETokenizer:
        """Train a byte-level BPE of `vocab_size` ids (mask included) on `text`."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tokenizer = HFTokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - 1,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        lines = text.splitlines(keepends=True)
        tokenizer.train_from_iterator(
            ["".join(lines[i : i + 64]) for i in range(0, len(lines), 64)], trainer
        )
        tokenizer.add_special_tokens([MASK_TOKEN])
        return cls(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids if int(i) != self.mask_id])

    def to_json(self) -> str:
        return json.dumps({"kind": "bpe", "tokenizer": self.tokenizer.to_str()})


def tokenizer_from_json(text: str) -> ByteTokenizer | BPETokenizer:
    """Rebuild a tokenizer saved with `to_json`."""
    spec = json.loads(text)
    if spec["kind"] == "byte":
        return ByteTokenizer()
    if spec["kind"] == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(spec["tokenizer"]))
    raise ValueError(f"unknown tokenizer kind {spec['kind']!r}; expected 'byte' or 'bpe'")


def build_tokenizer(
    kind: str, text: str = "", vocab_size: int = 4096
) -> ByteTokenizer | BPETokenizer:
    """'byte', or 'bpe' trained on `text`."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise ValueError(f"tokenizer: expected 'byte' or 'bpe', got {kind!r}")


def save_tokenizer(tokenizer: ByteTokenizer | BPETokenizer, path: str | Path) -> None:
    Path(path).write_text(tokenizer.to_json())


def load_tokenizer(path: str | Path) -> ByteTokenizer | BPETokenizer:
    return tokenizer_from_json(Path(path).read_text())
