"""Configuration dataclasses: the model (XUT-Small by default, `tiny` for CPU) and training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the XUT (cross-U-transformer) velocity model.

    Defaults are the seed's XUT-Small: width 896, SwiGLU hidden 3072, 14 heads of 64, depth 4,
    one encoder block and two decoder blocks per layer, 2x2 patches on 32x32x4 latents.
    """

    latent_channels: int = 4
    patch_size: int = 2
    model_dim: int = 896
    mlp_dim: int = 3072
    num_heads: int = 14
    head_dim: int = 64
    depth: int = 4
    encoder_blocks: int = 1
    decoder_blocks: int = 2
    # Width of the (pooled) text embedding: 640 for the seed's Gemma-3 270M, 384 for MiniLM.
    text_dim: int = 384
    timestep_frequencies: int = 256
    rope_base: float = 100.0
    # Token-grid side that RoPE positions are scaled to (aspect-ratio aware: the longer side of
    # any grid spans this many units), so resolutions share one position range.
    rope_reference: int = 16
    # TREAD: fraction of tokens that skip the middle layers during training (0 disables).
    tread_rate: float = 0.5
    compute_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    # Attention kernel: "cudnn" (flash attention: the scores are never stored; bf16 only),
    # "xla" (materialises the B x heads x T x S scores, runs anywhere), or "auto": cuDNN on an
    # NVIDIA GPU when compute_dtype is bf16, XLA otherwise. Both compute the same function.
    attention: Literal["auto", "xla", "cudnn"] = "auto"

    def __post_init__(self) -> None:
        if self.head_dim % 4:
            raise ValueError(
                f"head_dim: expected a multiple of 4 (axial RoPE), got {self.head_dim}"
            )
        if not 0.0 <= self.tread_rate < 1.0:
            raise ValueError(f"tread_rate: expected a value in [0, 1), got {self.tread_rate}")
        if self.depth < 1 or self.encoder_blocks < 1 or self.decoder_blocks < 1:
            raise ValueError("depth, encoder_blocks and decoder_blocks must all be >= 1")
        if self.attention not in ("auto", "xla", "cudnn"):
            raise ValueError(
                f"attention: expected 'auto', 'xla' or 'cudnn', got {self.attention!r}"
            )
        if self.attention == "cudnn" and self.compute_dtype != "bfloat16":
            raise ValueError(
                "attention='cudnn' needs compute_dtype='bfloat16' (cuDNN flash attention takes "
                f"half-precision inputs), got {self.compute_dtype!r}; use 'auto' or 'xla'"
            )

    def replace(self, **changes: object) -> ModelConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    "xut-small": ModelConfig(),
    "tiny": ModelConfig(
        model_dim=64,
        mlp_dim=128,
        num_heads=2,
        head_dim=32,
        depth=2,
        text_dim=16,
        timestep_frequencies=32,
        rope_reference=4,
        compute_dtype="float32",
    ),
}
"""The model presets by name (`preset(name)` returns one with fields overridden)."""


def preset(name: str, **changes: object) -> ModelConfig:
    """A named model preset (`xut-small`, `tiny`) with optional field overrides."""
    if name not in PRESETS:
        raise KeyError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name].replace(**changes)


@dataclass(frozen=True)
class TrainConfig:
    """Rectified-flow training settings (AdamW, warmup + cosine, muP learning rate)."""

    batch_size: int = 256
    # muP-style scaling: the AdamW learning rate is base_learning_rate / model_dim.
    base_learning_rate: float = 0.25
    warmup_steps: int = 500
    total_steps: int = 50_000
    # Stop this run after this global step (None: total_steps); lets a run stop early.
    max_steps: int | None = None
    # Stop (with a checkpoint) after this many seconds of training, counted from the end of
    # the first (compiling) step (None: no time limit).
    max_seconds: float | None = None
    weight_decay: float = 1e-4
    gradient_clip: float = 1.0
    # Probability that the text embedding is zeroed (classifier-free guidance training).
    text_dropout: float = 0.5
    # Logit-normal timesteps: t = sigmoid(mean + std * N(0, 1)).
    timestep_mean: float = 0.0
    timestep_std: float = 1.0
    # "tsu": Gaussian noise from tsu_core.get_backend().gaussian (runs on every backend);
    # "jax": jax.random.normal inside the jitted step (the fast on-device path).
    noise_source: Literal["tsu", "jax"] = "tsu"
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_step_checkpoints: int = 3
    # Save an epoch-end checkpoint (all kept) every this many epochs; 0 turns them off (short
    # runs on small data sets, where every epoch would write a full copy of the state).
    epoch_checkpoint_every: int = 1
    # Parameter layout on the mesh: "replicated" (pure data parallel) or "fsdp".
    parameter_sharding: Literal["replicated", "fsdp"] = "replicated"
    # Number of devices on the data axis (None: all).
    num_devices: int | None = None
    # Call jax.distributed.initialize() first (multi-host).
    distributed: bool = False

    def replace(self, **changes: object) -> TrainConfig:
        return dataclasses.replace(self, **changes)
