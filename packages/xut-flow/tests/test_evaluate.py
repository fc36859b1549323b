"""The feature-extractor classifier on synthetic images, and the image FID built on it (the
Fréchet distance itself is tested in tsu-core)."""

from __future__ import annotations

import numpy as np
import pytest

from xut_flow.evaluate import (
    ClassifierConfig,
    accuracy,
    extract_features,
    image_fid,
    labels_from_keys,
    load_classifier,
    save_classifier,
    train_classifier,
)


def _bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16x16 images in [-1, 1]: class 0 a horizontal bar, class 1 a vertical bar, at random
    positions, with noise."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 2, count)
    images = -np.ones((count, 16, 16, 1), np.float32)
    for index, (label, position) in enumerate(
        zip(labels, generator.integers(2, 14, count), strict=True)
    ):
        if label == 0:
            images[index, position - 1 : position + 1, :, 0] = 1.0
        else:
            images[index, :, position - 1 : position + 1, 0] = 1.0
    images += 0.3 * generator.standard_normal(images.shape).astype(np.float32)
    return images, labels


@pytest.fixture(scope="module")
def bar_classifier():
    images, labels = _bars(256, seed=0)
    config = ClassifierConfig(width=8, feature_dim=16, steps=60, batch_size=32, learning_rate=3e-3)
    return train_classifier(images, labels, config, progress=False)


def test_classifier_separates_two_classes(bar_classifier):
    images, labels = _bars(200, seed=1)  # unseen images
    assert accuracy(bar_classifier, images, labels) > 0.9
    assert float(bar_classifier.train_accuracy[...]) > 0.9


def test_features_have_the_documented_shape(bar_classifier, tmp_path):
    images, _ = _bars(10, seed=2)
    features = extract_features(bar_classifier, images)
    assert features.shape == (10, 16)
    with pytest.raises(ValueError, match="expected"):
        extract_features(bar_classifier, np.zeros((2, 8, 8, 1), np.float32))
    loaded = load_classifier(save_classifier(bar_classifier, tmp_path / "classifier.safetensors"))
    np.testing.assert_allclose(extract_features(loaded, images), features, rtol=1e-5, atol=1e-6)
    assert float(loaded.train_accuracy[...]) == float(bar_classifier.train_accuracy[...])


def test_image_fid_names_its_extractor_and_orders_sets(bar_classifier):
    images, labels = _bars(400, seed=3)
    horizontal, vertical = images[labels == 0], images[labels == 1]
    half = len(horizontal) // 2
    same = image_fid(horizontal[:half], horizontal[half:], bar_classifier)
    different = image_fid(horizontal[:half], vertical, bar_classifier)
    assert same["fid"] < different["fid"]
    assert same["num_generated"] == half and same["num_reference"] == len(horizontal) - half
    assert "16-d penultimate features" in same["extractor"]
    assert "not Inception" in same["extractor"]


def test_labels_come_from_prepared_shard_keys():
    np.testing.assert_array_equal(labels_from_keys(["train-0-label7", "heldout-3-label0"]), [7, 0])
    with pytest.raises(ValueError, match="label"):
        labels_from_keys(["example-0"])
