"""Bad configurations give errors that name the field."""

import pytest

from bitflip_dtm.config import Config, ConfigError, preset


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image_size": 0}, "image_size"),
        ({"num_steps": -3}, "num_steps"),
        ({"bits_per_channel": 9}, "bits_per_channel"),
        ({"encoding": "jpeg"}, "encoding"),
        ({"schedule": "exponential"}, "schedule"),
        ({"final_flip": 0.7}, "final_flip"),
        ({"channels": 2}, "channels"),
        ({"channels": 1, "encoding": "rgb"}, "encoding"),
        ({"encoding": "threshold", "channels": 1, "bits_per_channel": 3}, "bits_per_channel"),
        ({"fantasy_chains": 0}, "fantasy_chains"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"window_radius": -1}, "window_radius"),
        ({"graph": "hexagonal"}, "graph"),
        ({"graph": "torus", "grid_size": 71}, "grid_size"),
        ({"graph": "torus", "grid_size": 20}, "grid_size"),  # 12,288 bits on 200 sites
        ({"graph": "torus", "grid_degree": 10}, "grid_degree"),
        ({"label_copies": 2}, "label_copies"),  # labels need the torus
        ({"chains": "eternal"}, "chains"),
        ({"noise_step_backend": None}, "noise_step_backend"),
        ({"learning_rate_floor": 0.0}, "learning_rate_floor"),
        ({"correlation_penalty": -1.0}, "correlation_penalty"),
        ({"generation_beta_start": 0.0}, "generation_beta_start"),
    ],
)
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        Config(**changes)


def test_unknown_preset_and_fields():
    with pytest.raises(ConfigError, match="preset"):
        preset("cifar")
    with pytest.raises(ConfigError, match="unknown config fields"):
        Config.from_dict({"image_size": 8, "learning_rat": 0.1})


def test_defaults_are_the_seeds():
    config = Config()
    assert (config.image_size, config.block_size, config.num_steps, config.batch_size) == (
        64,
        8,
        100,
        16,
    )
    assert (config.fantasy_chains, config.train_samples, config.sweeps_per_step) == (64, 5, 6)
    assert Config.from_dict(config.to_dict()) == config
