"""bitflip-dtm: a denoising thermodynamic model whose every reverse step is sampled on a TSU.

Images become bits, the forward process flips bits, and each reverse step is a block-sparse
Ising model over the previous image's bits and latent spins, sampled by block Gibbs on whichever
`tsu-core` backend is installed (`TSU_BACKEND`).
"""

from bitflip_dtm.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from bitflip_dtm.config import Config, ConfigError, preset
from bitflip_dtm.data import bits_to_images, images_to_bits, load_dataset
from bitflip_dtm.forward import ForwardProcess, bitflip_schedule, coupling
from bitflip_dtm.graph import ReverseGraph, build_graph
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import SampleResult, compile_program, reverse_step, sample
from bitflip_dtm.train import Trainer

__version__ = "0.1.0"

__all__ = [
    "DTM",
    "CheckpointError",
    "Config",
    "ConfigError",
    "ForwardProcess",
    "ReverseGraph",
    "SampleResult",
    "Trainer",
    "bitflip_schedule",
    "bits_to_images",
    "build_graph",
    "compile_program",
    "coupling",
    "images_to_bits",
    "latest_checkpoint",
    "load_checkpoint",
    "load_dataset",
    "preset",
    "restore",
    "reverse_step",
    "sample",
    "save_checkpoint",
]
