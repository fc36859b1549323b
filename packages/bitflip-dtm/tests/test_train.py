"""A tiny model trained for a few seconds samples the two training patterns far above chance."""

from bitflip_dtm.data import images_to_bits, load_dataset, spins_to_bits
from bitflip_dtm.sample import sample
from bitflip_dtm.train import Trainer


def test_two_patterns_are_learned(backend, tiny_training):
    config = tiny_training
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=backend)
    trainer.train(iterations=20)
    result = sample(trainer.model, trainer.program, 200, key=3, keep_intermediates=True)
    assert len(result.intermediates) == config.num_steps + 1
    bits = spins_to_bits(result.spins)
    patterns = images_to_bits(images[:2], config)
    hits = sum(int((bits == pattern).all(1).sum()) for pattern in patterns)
    # Uniform bits would hit a pattern 2/512 of the time: under one sample in 200.
    assert hits >= 120, hits
