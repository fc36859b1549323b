"""The feature extractor is trained once, reused for the same images, refused for other data."""

import pytest
import torch

from bitflip_dtm.evaluate import Classifier, save_classifier
from bitflip_dtm.extractor import ExtractorError, ensure_extractor, fingerprint, trained_on


def _images(seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(64, 1, 8, 8, generator=generator), torch.arange(64) % 10


def test_trained_once_then_reused_for_the_same_images(tmp_path):
    path = tmp_path / "run" / "classifier.safetensors"
    images, labels = _images(0)
    training = ensure_extractor(path, images, labels, "noise", epochs=1)
    assert training is not None and training.seconds > 0
    assert trained_on(path) == {"dataset": "noise", "images_sha256": fingerprint(images),
                                "num_images": "64"}  # fmt: skip
    assert not list(path.parent.glob("*.tmp"))
    assert ensure_extractor(path, images.clone(), labels, "noise", epochs=1) is None


def test_refused_for_other_images(tmp_path):
    path = tmp_path / "classifier.safetensors"
    ensure_extractor(path, *_images(0), "noise", epochs=1)
    other, labels = _images(1)
    assert fingerprint(other) != fingerprint(_images(0)[0])
    with pytest.raises(ExtractorError, match="trained on 64 noise images .* not on the 64 other"):
        ensure_extractor(path, other, labels, "other", epochs=1)


def test_a_file_without_a_data_record_is_refused(tmp_path):
    path = tmp_path / "classifier.safetensors"
    save_classifier(Classifier(1), path)
    with pytest.raises(ExtractorError, match="records no training data set; delete"):
        ensure_extractor(path, *_images(0), "noise", epochs=1)
