"""Shards: round trips in every format, and a data order that depends only on the step."""

from __future__ import annotations

import numpy as np
import pytest

from xut_flow.data import Shard, ShardDataset, load_shard, save_shard, synthetic_shard


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    shard = synthetic_shard(6, (4, 8, 8), 5, seed=2)
    loaded = load_shard(save_shard(shard, tmp_path / f"shard{suffix}"))
    assert loaded.keys == shard.keys
    np.testing.assert_array_equal(loaded.latents, shard.latents)
    np.testing.assert_array_equal(loaded.text_embeddings, shard.text_embeddings)
    assert not list(tmp_path.glob("*.tmp"))


def test_seed_pt_layout(tmp_path):
    torch = pytest.importorskip("torch")
    shard = synthetic_shard(3, (4, 8, 8), 5)
    torch.save(
        {
            "keys": shard.keys,
            "latents": torch.from_numpy(shard.latents).half(),
            "embeddings": torch.from_numpy(shard.text_embeddings),
        },
        tmp_path / "seed.pt",
    )
    loaded = load_shard(tmp_path / "seed.pt")
    assert loaded.keys == shard.keys
    np.testing.assert_allclose(loaded.latents, shard.latents, rtol=1e-3, atol=1e-3)


def test_rejects_mismatched_counts():
    with pytest.raises(ValueError, match="latents"):
        Shard(["a", "b"], np.zeros((3, 4, 2, 2)), np.zeros((2, 5)))


def _dataset(tmp_path, preload):
    paths = []
    for index in range(3):
        shard = synthetic_shard(7, (4, 2, 2), 3, seed=index)
        shard.latents[:, 0, 0, 0] = np.arange(7) + 100 * index  # an identifier per example
        paths.append(save_shard(shard, tmp_path / f"s{index}.npz"))
    return ShardDataset(paths, preload=preload, seed=5)


@pytest.mark.parametrize("preload", [True, False])
def test_epochs_visit_examples_once_and_order_depends_only_on_step(tmp_path, preload):
    dataset = _dataset(tmp_path, preload)
    per_epoch = dataset.steps_per_epoch(4)
    assert per_epoch == 5  # 21 examples, last partial batch dropped
    stream = dataset.batches(4)
    first = [next(stream) for _ in range(2 * per_epoch + 2)]
    ids = np.concatenate([latents[:, 0, 0, 0] for _, _, latents, _ in first[:per_epoch]])
    assert len(set(ids.tolist())) == 20
    assert first[0][2].shape == (4, 2, 2, 4)  # NHWC
    assert [step for step, *_ in first] == list(range(len(first)))
    assert [epoch for _, epoch, *_ in first] == [0] * 5 + [1] * 5 + [2] * 2
    epoch_two = np.concatenate([latents[:, 0, 0, 0] for _, _, latents, _ in first[5:10]])
    assert not np.array_equal(ids, epoch_two)
    for start in (3, 7):
        resumed = dataset.batches(4, start)
        for expected in first[start:]:
            step, epoch, latents, text = next(resumed)
            assert (step, epoch) == expected[:2]
            np.testing.assert_array_equal(latents, expected[2])
            np.testing.assert_array_equal(text, expected[3])
