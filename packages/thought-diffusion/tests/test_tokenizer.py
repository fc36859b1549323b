"""Tokenizers round-trip text and put the mask token last."""

from __future__ import annotations

import pytest

from thought_diffusion.data import generated_text
from thought_diffusion.tokenizer import ByteTokenizer, build_tokenizer, tokenizer_from_json


def test_byte_round_trip():
    tokenizer = ByteTokenizer()
    text = "To be, or not to be — that is the question.\n"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.mask_id == tokenizer.vocab_size - 1 == 256
    assert isinstance(tokenizer_from_json(tokenizer.to_json()), ByteTokenizer)


def test_bpe_trained_locally_round_trips():
    pytest.importorskip("tokenizers")
    text = generated_text(300)
    tokenizer = build_tokenizer("bpe", text, vocab_size=300)
    assert tokenizer.mask_id == tokenizer.vocab_size - 1
    sample = "the king rides to the sea.\nmy lord waits by her ring."
    ids = tokenizer.encode(sample)
    assert len(ids) < len(sample.encode())  # merges learned
    assert max(ids) < tokenizer.mask_id
    assert tokenizer.decode(ids) == sample
    again = tokenizer_from_json(tokenizer.to_json())
    assert again.encode(sample) == ids
    with pytest.raises(ValueError, match="expected 'byte' or 'bpe'"):
        build_tokenizer("wordpiece")
