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


def test_contrast_is_the_digit_mask_scaled_by_the_colour_gap():
    from bitflip_dtm.data import colour_digits
    from bitflip_dtm.evaluate import contrast

    digits = torch.zeros(6, 1, 16, 16)  # the frame stays background
    digits[:, :, 5:11, 6:10] = torch.rand(6, 1, 6, 4, generator=torch.Generator().manual_seed(3))
    digits[:, :, 7, 7] = 1.0
    coloured = colour_digits(digits, 16, torch.Generator().manual_seed(4))  # same size: mask kept
    foreground, background = coloured[..., 7, 7], coloured[..., 0, 0]
    # x = m fg + (1 - m) bg, so |x - bg| = m |fg - bg| at every pixel, over sqrt(3) for [0, 1].
    gap = (foreground - background).norm(dim=1)[:, None, None, None]
    assert torch.allclose(contrast(coloured), digits * gap / 3**0.5, atol=1e-6)


def test_a_colour_classifier_round_trips_and_an_rgb_only_file_is_refused(tmp_path):
    from bitflip_dtm.evaluate import load_classifier

    path = tmp_path / "classifier.safetensors"
    model = Classifier(3)
    save_classifier(model, path)
    images = torch.rand(4, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    loaded = load_classifier(path)
    assert loaded.channels == 3
    assert torch.equal(loaded(images), model.eval()(images))
    old = {name: value for name, value in model.state_dict().items()}
    old["body.0.weight"] = old["body.0.weight"][:, :3].contiguous()
    from safetensors.torch import save_file

    save_file(old, str(path))
    with pytest.raises(ValueError, match="before the contrast channel; delete it"):
        load_classifier(path)
