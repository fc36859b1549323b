"""Make `simulation` importable from the tests (the playground is a folder, not a package), and
write a tiny bitflip-dtm checkpoint for the tests of that model kind."""

import sys
from pathlib import Path

import pytest

PLAYGROUND = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PLAYGROUND))


@pytest.fixture(scope="session")
def dtm_checkpoint(tmp_path_factory) -> Path:
    """The JSON of a bitflip-dtm checkpoint: 3 x 3 images, 3 steps, 2 latents (20 nodes), one
    training iteration on the reference backend, then every parameter redrawn from N(0, 0.5^2)
    so that no energy term is zero. Skips when bitflip-dtm is not installed."""
    pytest.importorskip("bitflip_dtm")
    import torch

    import tsu_core
    from bitflip_dtm import Trainer, load_dataset, preset, save_checkpoint

    config = preset(
        "tiny", num_steps=3, latents_per_patch=2, fantasy_chains=8, batch_size=8, iterations=1
    )
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=tsu_core.get_backend("reference"))
    trainer.train(iterations=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return save_checkpoint(trainer, tmp_path_factory.mktemp("bitflip-dtm"))
