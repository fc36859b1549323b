"""The configuration of a denoising thermodynamic model: one dataclass with working defaults.

The defaults are the seed's: 64x64 RGB images, 8x8 patches, 100 diffusion steps, batches of 16,
64 persistent fantasy chains, 5 Gibbs sweeps per PCD update and 6 sweeps per reverse step.
`preset(name)` gives the smaller configurations (`mnist28`, `rgb64`, `tiny`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

IMG_SIZE = 64
BLOCK_SIZE = 8
T_STEPS = 100
BATCH_SIZE = 16
FANTASY_CHAINS = 64
PCD_K = 5
SWEEPS_PER_STEP = 6

ENCODINGS = ("threshold", "gray", "rgb")
SCHEDULES = ("linear", "cosine", "mutual-information")
DATASETS = ("mnist", "digits", "coloured-mnist", "two-patterns")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and the fix."""


@dataclass
class Config:
    """Everything that defines a model, its data and its training run.

    Arguments:
        image_size: images are image_size x image_size pixels.
        channels: 1 (grayscale) or 3 (RGB).
        encoding: pixels to bits: "threshold" (1 bit), "gray" (k-bit Gray code), "rgb"
            (k-bit Gray code per channel).
        bits_per_channel: k, the bits per pixel and channel ("threshold" uses 1).
        block_size: the side of the square patches inside which local window edges live.
        window_radius: bits of pixels within this Chebyshev distance (same patch) are joined.
        skip_edges_per_node: long-range edges per visible bit (between different patches).
        latents_per_patch: latent spins per patch, each joined to every bit of its patch and
            of the `latent_halo` pixels around it.
        num_steps: T, the number of diffusion steps.
        schedule: the bit-flip schedule: "linear", "cosine" or "mutual-information".
        final_flip: the cumulative flip probability reached at step T (0.5 is pure noise).
        batch_size: data examples per positive phase.
        fantasy_chains: persistent chains per step for the negative phase.
        pcd_steps: Gibbs sweeps per PCD update (PCD-k).
        sweeps_per_step: Gibbs sweeps per reverse step when sampling.
        learning_rate, weight_decay: AdamW.
        denoising_weight: weight of the binary denoising score-matching term.
        mixing_weight: weight of the optional mixing penalty (0 turns it off).
        steps_per_iteration: diffusion steps trained per iteration (drawn at random).
        iterations: training iterations.
        checkpoint_every: iterations between checkpoints.
        seed: the seed of the graph, the data order and every sampling key.
        dataset: "mnist", "digits", "coloured-mnist" or "two-patterns".
        data_path: where MNIST idx(.gz) files live (for "mnist" and "coloured-mnist").
        graph_seed: the seed of the random skip edges.
    """

    image_size: int = IMG_SIZE
    channels: int = 3
    encoding: str = "rgb"
    bits_per_channel: int = 2
    block_size: int = BLOCK_SIZE
    window_radius: int = 1
    skip_edges_per_node: int = 1
    latents_per_patch: int = 8
    latent_halo: int = 1
    num_steps: int = T_STEPS
    schedule: str = "mutual-information"
    final_flip: float = 0.5
    batch_size: int = BATCH_SIZE
    fantasy_chains: int = FANTASY_CHAINS
    pcd_steps: int = PCD_K
    sweeps_per_step: int = SWEEPS_PER_STEP
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    denoising_weight: float = 1.0
    mixing_weight: float = 0.0
    steps_per_iteration: int = 4
    iterations: int = 2000
    checkpoint_every: int = 500
    seed: int = 0
    dataset: str = "coloured-mnist"
    data_path: str = "../shared/data/mnist"
    graph_seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def bits_per_pixel(self) -> int:
        """Bit planes per pixel: channels x bits per channel."""
        return self.channels * self.bits_per_channel

    @property
    def num_bits(self) -> int:
        """D, the number of visible bits of one image."""
        return self.image_size * self.image_size * self.bits_per_pixel

    def validate(self) -> Config:
        """Raise `ConfigError` naming the first field that is out of range."""
        positive = (
            "image_size",
            "block_size",
            "num_steps",
            "batch_size",
            "fantasy_chains",
            "pcd_steps",
            "sweeps_per_step",
            "steps_per_iteration",
            "iterations",
            "checkpoint_every",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        for name in ("window_radius", "skip_edges_per_node", "latents_per_patch", "latent_halo"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels: expected 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"encoding: expected one of {ENCODINGS}, got {self.encoding!r}")
        if (self.encoding == "rgb") != (self.channels == 3):
            raise ConfigError(
                f"encoding: '{self.encoding}' does not fit channels={self.channels}; use "
                "encoding='rgb' with channels=3, 'threshold' or 'gray' with channels=1"
            )
        if not isinstance(self.bits_per_channel, int) or not 1 <= self.bits_per_channel <= 8:
            raise ConfigError(
                f"bits_per_channel: expected an integer in [1, 8], got {self.bits_per_channel!r}"
            )
        if self.encoding == "threshold" and self.bits_per_channel != 1:
            raise ConfigError(
                f"bits_per_channel: 'threshold' encoding has 1 bit, got {self.bits_per_channel}; "
                "use encoding='gray' for k-bit quantisation"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 < self.final_flip <= 0.5:
            raise ConfigError(
                f"final_flip: expected a cumulative flip probability in (0, 0.5], got "
                f"{self.final_flip!r}"
            )
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset: expected one of {DATASETS}, got {self.dataset!r}")
        for name in ("learning_rate",):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"{name}: expected a positive number, got {getattr(self, name)!r}"
                )
        for name in ("weight_decay", "denoising_weight", "mixing_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """A config from a dict (e.g. a checkpoint's JSON); unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, dict[str, Any]] = {
    # The seed's default: 64x64 coloured MNIST, 2 bits per channel.
    "rgb64": {},
    # 28x28 MNIST by threshold.
    "mnist28": {
        "image_size": 28,
        "channels": 1,
        "encoding": "threshold",
        "bits_per_channel": 1,
        "latents_per_patch": 8,
        "skip_edges_per_node": 2,
        "num_steps": 20,
        "batch_size": 64,
        "dataset": "mnist",
    },
    # A 3x3 image with 4 latents: the reverse-step graph has 9 + 4 + 9 = 22 nodes, small enough
    # for exact enumeration by the reference backend. Too small for the 90% sparsity of the
    # real presets (the whole image is one patch).
    "tiny": {
        "image_size": 3,
        "channels": 1,
        "encoding": "threshold",
        "bits_per_channel": 1,
        "block_size": 3,
        "window_radius": 1,
        "skip_edges_per_node": 0,
        "latents_per_patch": 4,
        "latent_halo": 0,
        "num_steps": 4,
        "schedule": "linear",
        "batch_size": 16,
        "fantasy_chains": 16,
        "pcd_steps": 2,
        "sweeps_per_step": 4,
        "learning_rate": 0.05,
        "weight_decay": 0.0,
        "steps_per_iteration": 4,
        "iterations": 150,
        "checkpoint_every": 50,
        "dataset": "two-patterns",
    },
}


def preset(name: str, **changes: Any) -> Config:
    """The named preset ("rgb64", "mnist28", "tiny") with optional changes."""
    if name not in PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return Config(**{**PRESETS[name], **changes})
