"""The configuration of a denoising thermodynamic model: one dataclass with working defaults.

The defaults are the seed's: 64x64 RGB images, 8x8 patches, 100 diffusion steps, batches of 16,
64 persistent fantasy chains, 5 Gibbs sweeps per PCD update and 6 sweeps per reverse step.
`preset(name)` gives the other configurations (`paper`, `mnist28`, `rgb64`, `tiny`).
"""

from __future__ import annotations

import dataclasses
import math
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
GRAPHS = ("patches", "torus")
SCHEDULES = ("linear", "cosine", "mutual-information", "log-time")
CHAINS = ("persistent", "fresh", "fresh-persistent-noise")
READOUTS = ("sample", "mode")
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
        graph: the reverse-step graph: "patches" (windows inside square patches, skip edges,
            patch latents) or "torus" (the DTM paper's: a square torus grid of latents with the
            visible bits scattered over one colour).
        block_size: ("patches") the side of the square patches inside which local edges live.
        window_radius: ("patches") bits of pixels within this Chebyshev distance are joined.
        skip_edges_per_node: ("patches") long-range edges per visible bit, between patches.
        latents_per_patch: ("patches") latent spins per patch, each joined to every bit of its
            patch and of the `latent_halo` pixels around it.
        grid_size: ("torus") the side of the grid; grid_size**2 nodes hold the visible bits
            and the latents.
        grid_degree: ("torus") 4, 8, 12, 16 or 20 neighbours per grid node.
        label_copies: visible label spins: each copy is a one-hot code of the digit class,
            noised and denoised with the image (0: no labels).
        num_steps: T, the number of diffusion steps.
        schedule: the bit-flip schedule: "linear", "cosine", "mutual-information" or
            "log-time" (the DTM paper's: signal `(1 - t/T) ** rate`).
        final_flip: the cumulative flip probability reached at step T (0.5 is pure noise).
        noise_rate: ("log-time") the rate of image bits; a lower rate keeps a bit informative
            longer.
        label_noise_rate: ("log-time") the rate of label bits.
        batch_size: data examples per positive phase.
        chains: the negative phase's chains: "persistent" (`fantasy_chains` chains per step
            that continue across iterations) or "fresh" (one new chain per example, started
            as sampling starts: x_{t-1} at x_t, latents at random) or "fresh-persistent-noise"
            (fresh, except for the step from pure noise, t = T, whose one chain per example
            continues across iterations: that step's target is an unconditional model of
            $x_{T-1}$, whose modes short chains from a fresh start rarely cross between; with
            the `paper` preset it drew the classes less evenly than "fresh": docs/bitflip-dtm.md,
            experiment 10).
        fantasy_chains: ("persistent") chains per step.
        noise_step_backend: the registered backend (`tsu_core.get_backend`) that runs the
            negative phase of the step from pure noise, t = T, in place of the trainer's;
            "jax-sim-tempering" runs it by parallel tempering (replicas at lower beta exchange
            states with the chains at beta 1), so its chains can cross between the modes of
            different digits within one iteration. Empty: the trainer's backend.
        train_burn_in: sweeps before the first recorded state, in both phases.
        train_samples: states recorded per chain and phase.
        train_thinning: sweeps between recorded states.
        sweeps_per_step: Gibbs sweeps per reverse step when sampling.
        generation_beta_start: beta at the first sweep of each reverse step when sampling;
            beta rises linearly to `generation_beta_end` (both 1: no annealing).
        generation_beta_end: beta at the last sweep of each reverse step when sampling.
        readout: what sampling returns after the last step: "sample" (the chains' final
            bits) or "mode" (each bit at its more probable value given the final latents).
        learning_rate: AdamW's learning rate.
        weight_decay: AdamW's weight decay.
        learning_rate_floor: the learning rate decays along a cosine to this fraction of
            `learning_rate` at `iterations` (1: constant).
        correlation_penalty: the initial weight of the correlation penalty, which pulls every
            learned coupling towards decorrelating its two spins in the model's chains.
        adaptive_penalty: adapt each step's penalty from the measured autocorrelation of its
            chains every `penalty_every` iterations (the DTM paper's adaptive penalty).
        penalty_threshold: the autocorrelation the adaptive penalty aims to stay under.
        penalty_every: iterations between autocorrelation measurements.
        steps_per_iteration: diffusion steps trained per iteration (drawn at random; all T
            when equal to num_steps).
        iterations: training iterations.
        checkpoint_every: iterations between checkpoints.
        seed: the seed of the data order and every sampling key.
        dataset: "mnist", "digits", "coloured-mnist" or "two-patterns".
        data_path: where MNIST idx(.gz) files live (for "mnist" and "coloured-mnist").
        graph_seed: the seed of the random skip edges and of where visible bits sit on the grid.
    """

    image_size: int = IMG_SIZE
    channels: int = 3
    encoding: str = "rgb"
    bits_per_channel: int = 2
    graph: str = "patches"
    block_size: int = BLOCK_SIZE
    window_radius: int = 1
    skip_edges_per_node: int = 1
    latents_per_patch: int = 8
    latent_halo: int = 1
    grid_size: int = 70
    grid_degree: int = 12
    label_copies: int = 0
    num_steps: int = T_STEPS
    schedule: str = "mutual-information"
    final_flip: float = 0.5
    noise_rate: float = 0.8
    label_noise_rate: float = 0.2
    batch_size: int = BATCH_SIZE
    chains: str = "persistent"
    fantasy_chains: int = FANTASY_CHAINS
    noise_step_backend: str = ""
    train_burn_in: int = 0
    train_samples: int = PCD_K
    train_thinning: int = 1
    sweeps_per_step: int = SWEEPS_PER_STEP
    generation_beta_start: float = 1.0
    generation_beta_end: float = 1.0
    readout: str = "sample"
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    learning_rate_floor: float = 1.0
    correlation_penalty: float = 0.0
    adaptive_penalty: bool = False
    penalty_threshold: float = 0.016
    penalty_every: int = 100
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
    def num_image_bits(self) -> int:
        """The bits of one image."""
        return self.image_size * self.image_size * self.bits_per_pixel

    @property
    def num_label_bits(self) -> int:
        """The label spins: `label_copies` one-hot codes of the 10 classes."""
        return NUM_CLASSES * self.label_copies

    @property
    def num_bits(self) -> int:
        """D, the number of visible bits: the image's, then the labels'."""
        return self.num_image_bits + self.num_label_bits

    def validate(self) -> Config:
        """Raise `ConfigError` naming the first field that is out of range."""
        positive = (
            "image_size",
            "block_size",
            "num_steps",
            "batch_size",
            "fantasy_chains",
            "train_samples",
            "train_thinning",
            "sweeps_per_step",
            "penalty_every",
            "steps_per_iteration",
            "iterations",
            "checkpoint_every",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        for name in (
            "window_radius",
            "skip_edges_per_node",
            "latents_per_patch",
            "latent_halo",
            "label_copies",
            "train_burn_in",
        ):
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
        if self.graph not in GRAPHS:
            raise ConfigError(f"graph: expected one of {GRAPHS}, got {self.graph!r}")
        if self.graph == "torus":
            self._validate_torus()
        if self.chains not in CHAINS:
            raise ConfigError(f"chains: expected one of {CHAINS}, got {self.chains!r}")
        if not isinstance(self.noise_step_backend, str):
            raise ConfigError(
                f"noise_step_backend: expected a backend name or '', got "
                f"{self.noise_step_backend!r}"
            )
        if self.readout not in READOUTS:
            raise ConfigError(f"readout: expected one of {READOUTS}, got {self.readout!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 < self.final_flip <= 0.5:
            raise ConfigError(
                f"final_flip: expected a cumulative flip probability in (0, 0.5], got "
                f"{self.final_flip!r}"
            )
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset: expected one of {DATASETS}, got {self.dataset!r}")
        for name in (
            "learning_rate",
            "noise_rate",
            "label_noise_rate",
            "generation_beta_start",
            "generation_beta_end",
            "penalty_threshold",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"{name}: expected a positive number, got {getattr(self, name)!r}"
                )
        for name in ("weight_decay", "correlation_penalty"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if not 0 < self.learning_rate_floor <= 1:
            raise ConfigError(
                f"learning_rate_floor: expected a fraction in (0, 1], got "
                f"{self.learning_rate_floor!r}"
            )
        if self.label_copies and self.graph != "torus":
            raise ConfigError(
                "label_copies: label bits are wired on the torus graph only; use graph='torus' "
                "or label_copies=0"
            )
        if self.label_copies and self.dataset == "two-patterns":
            raise ConfigError("label_copies: the two-pattern set has no digit classes; use 0")
        return self

    def _validate_torus(self) -> None:
        if self.grid_degree not in GRID_OFFSETS:
            raise ConfigError(
                f"grid_degree: expected one of {sorted(GRID_OFFSETS)}, got {self.grid_degree!r}"
            )
        if not isinstance(self.grid_size, int) or self.grid_size < 4 or self.grid_size % 2:
            raise ConfigError(
                f"grid_size: expected an even integer >= 4 (the torus is two-coloured), got "
                f"{self.grid_size!r}"
            )
        room = self.grid_size**2 // 2
        if self.num_bits > room:
            smallest = math.ceil(math.sqrt(2 * self.num_bits))
            raise ConfigError(
                f"grid_size: the {self.num_bits} visible bits must fit on one colour of the "
                f"grid ({room} nodes); use grid_size >= {smallest + smallest % 2}"
            )

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


# The DTM paper's grid wiring: each offset (dr, dc) joins a node to the four nodes at its
# rotations by quarter turns; every offset has an odd dr + dc, so the torus stays two-coloured.
GRID_OFFSETS: dict[int, tuple[tuple[int, int], ...]] = {
    4: ((0, 1),),
    8: ((0, 1), (4, 1)),
    12: ((0, 1), (4, 1), (10, 9)),
    16: ((0, 1), (4, 1), (10, 9), (11, 14)),
    20: ((0, 1), (4, 1), (10, 9), (11, 14), (23, 6)),
}
NUM_CLASSES = 10

PRESETS: dict[str, dict[str, Any]] = {
    # The seed's default: 64x64 coloured MNIST, 2 bits per channel.
    "rgb64": {},
    # The DTM paper's recipe on binarised MNIST: a 70x70 torus of degree 12 with the 784 pixels
    # and 100 label spins scattered over one colour, T = 4 on the paper's log-time schedule,
    # fresh chains of 400 + 50 x 8 sweeps in both phases, Adam with cosine decay, the
    # adaptive correlation penalty. Generation runs 5,000 sweeps per step (the paper: 800) and
    # anneals beta from 0.8 to 2.0 (the paper: to 1.2); docs/bitflip-dtm.md, experiments 3 and
    # 7, say why.
    "paper": {
        "image_size": 28,
        "channels": 1,
        "encoding": "threshold",
        "bits_per_channel": 1,
        "graph": "torus",
        "grid_size": 70,
        "grid_degree": 12,
        "label_copies": 10,
        "num_steps": 4,
        "schedule": "log-time",
        "batch_size": 400,
        "chains": "fresh",
        "train_burn_in": 400,
        "train_samples": 50,
        "train_thinning": 8,
        "sweeps_per_step": 5000,
        "generation_beta_start": 0.8,
        "generation_beta_end": 2.0,
        "learning_rate": 0.022,
        "weight_decay": 0.0,
        "learning_rate_floor": 0.2,
        "adaptive_penalty": True,
        "penalty_every": 20,
        "steps_per_iteration": 4,
        "iterations": 3000,
        "checkpoint_every": 200,
        "dataset": "mnist",
    },
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
        "steps_per_iteration": 20,
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
        "train_samples": 2,
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
    """The named preset ("paper", "mnist28", "rgb64", "tiny") with optional changes."""
    if name not in PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return Config(**{**PRESETS[name], **changes})
