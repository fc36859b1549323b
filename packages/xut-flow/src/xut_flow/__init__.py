"""xut-flow: the XUT rectified-flow image transformer in JAX + Flax NNX.

`ModelConfig`/`preset` describe the model, `XUT` is the velocity network, `flow_loss` the
rectified-flow objective, `train` the checkpointed data-parallel loop, `generate` the ODE sampler.
"""

from xut_flow.config import PRESETS, ModelConfig, TrainConfig, preset
from xut_flow.data import Shard, ShardDataset, load_shard, save_shard, synthetic_shard
from xut_flow.evaluate import (
    ClassifierConfig,
    ImageClassifier,
    image_fid,
    load_classifier,
    save_classifier,
    train_classifier,
)
from xut_flow.flow import flow_loss, interpolate, logit_normal, velocity_target
from xut_flow.model import XUT, forward_flops, parameter_count
from xut_flow.sample import generate, guided_velocity, integrate, save_grid
from xut_flow.train import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "train_classifier",
    "save_classifier",
    "load_classifier",
    "image_fid",
    "ImageClassifier",
    "ClassifierConfig",
    "PRESETS",
    "XUT",
    "ModelConfig",
    "Shard",
    "ShardDataset",
    "TrainConfig",
    "TrainResult",
    "flow_loss",
    "forward_flops",
    "generate",
    "guided_velocity",
    "integrate",
    "interpolate",
    "load_shard",
    "logit_normal",
    "parameter_count",
    "preset",
    "save_grid",
    "save_shard",
    "synthetic_shard",
    "train",
    "velocity_target",
]
