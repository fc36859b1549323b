"""FID and autocorrelation time against closed forms; diagnostics run end to end (the
Fréchet distance itself is tested in tsu-core)."""

import numpy as np
import pytest
import torch

from bitflip_dtm.config import preset
from bitflip_dtm.data import bits_to_spins, images_to_bits, load_dataset
from bitflip_dtm.evaluate import (
    fid,
    integrated_autocorrelation_time,
    save_classifier,
    step_diagnostics,
    train_classifier,
)
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import compile_program


def test_autocorrelation_time_of_an_ar1_chain():
    rho, rng = 0.8, np.random.default_rng(1)
    chains = np.zeros((40, 4000))
    noise = rng.normal(size=chains.shape) * np.sqrt(1 - rho**2)
    for k in range(1, chains.shape[1]):
        chains[:, k] = rho * chains[:, k - 1] + noise[:, k]
    expected = (1 + rho) / (1 - rho)  # 9
    assert integrated_autocorrelation_time(chains) == pytest.approx(expected, rel=0.15)


def test_fid_with_the_package_classifier(tmp_path):
    pytest.importorskip("sklearn")
    config = preset("mnist28", dataset="digits", image_size=8)
    images, labels = load_dataset(config)
    classifier, accuracy = train_classifier(images[:600], labels[:600], epochs=2)
    path = tmp_path / "classifier.safetensors"
    save_classifier(classifier, path)
    same = fid(images[:300], images[300:600], classifier_path=path)
    noise = fid(torch.rand(300, 1, 8, 8), images[300:600], classifier_path=path)
    assert same["num_generated"] == 300 and "classifier" in same["extractor"]
    assert noise["fid"] > 3 * same["fid"]


def test_step_diagnostics_run(backend, tiny_training):
    config = tiny_training
    model = DTM(config)
    images, _ = load_dataset(config)
    spins = bits_to_spins(images_to_bits(images[:8], config))
    rows = step_diagnostics(model, compile_program(model, backend), spins, key=0, steps=[1, 2],
                            num_sweeps=12)  # fmt: skip
    assert [row["step"] for row in rows] == [1, 2]
    assert rows[0]["posterior_bit_error"] == 0.0  # q(x_0 | x_1, x_0) is x_0 itself
    assert all(0 <= row["bit_error"] <= 1 and row["autocorrelation_time"] >= 1 for row in rows)


def test_recognisable_rate_and_class_counts():
    """With outlier exposure the classifier is confident on held-out members of its classes
    (ten bars on 8x8 images, 2% of pixels flipped), not on noise or shuffled pixels."""
    from bitflip_dtm.evaluate import class_counts, outliers, recognisable_rate

    generator = torch.Generator().manual_seed(4)
    prototypes = torch.zeros(10, 1, 8, 8)
    for k in range(8):
        prototypes[k, 0, k] = 1  # a horizontal bar in row k
    prototypes[8, 0, :, 2] = prototypes[9, 0, :, 5] = 1  # two vertical bars
    labels = torch.arange(1200) % 10
    flips = torch.rand(1200, 1, 8, 8, generator=generator) < 0.02
    images = torch.where(flips, 1 - prototypes[labels], prototypes[labels])
    classifier, accuracy = train_classifier(images[:1000], labels[:1000], epochs=3, batch_size=32)
    members = recognisable_rate(classifier, images[1000:])
    noise = (torch.rand(200, 1, 8, 8, generator=generator) < 0.2).float()
    assert accuracy > 0.95 and members > 0.8, (accuracy, members)
    assert recognisable_rate(classifier, noise) < 0.05
    assert recognisable_rate(classifier, outliers(images[1000:], generator)) < 0.1
    # Class counts: 20 held-out images per class read back as 20 each (to within the
    # classifier's errors), and a set drawn from one class lands in that class.
    counts = class_counts(classifier, images[1000:])
    assert sum(counts) == 200 and all(abs(count - 20) <= 2 for count in counts), counts
    assert class_counts(classifier, images[1000:][labels[1000:] == 3])[3] >= 19
