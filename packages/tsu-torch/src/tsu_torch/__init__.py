"""tsu-torch: PyTorch layers that sample through a thermodynamic sampling unit backend.

Every layer samples through the backend that `tsu_core.get_backend()` names (TSU_BACKEND),
with keys and temperature held by a `ThermalContext`; tensors cross with DLPack.
"""

from tsu_torch.adapter import IsingLayer, convert_linear_to_ising, replace_linear_layers
from tsu_torch.attention import ThermodynamicAttention, sample_attention_weights
from tsu_torch.context import (
    TemperatureSchedule,
    ThermalContext,
    active_context,
    constant,
    cosine,
    geometric,
    linear,
)
from tsu_torch.functional import sample_categorical, sample_spins, thermal_activation
from tsu_torch.ising import IsingModel, ising_energy, ising_fields
from tsu_torch.layers import ThermalActivation, ThermalLinear, TSUBinaryLayer
from tsu_torch.lm import LMConfig, TinyThermoLM
from tsu_torch.noise import TSUDropout, TSUGaussianNoise
from tsu_torch.objectives import (
    ContrastiveDivergence,
    TSUNegativeSampler,
    conditional_fields,
    denoising_score_matching,
    flip_noise,
    gibbs_sweeps,
    info_nce,
    info_nce_loss,
)
from tsu_torch.rbm import RBM, PersistentContrastiveDivergence, ais_log_partition

__version__ = "0.1.0"

__all__ = [
    "ContrastiveDivergence",
    "IsingLayer",
    "IsingModel",
    "LMConfig",
    "PersistentContrastiveDivergence",
    "RBM",
    "TSUBinaryLayer",
    "TSUDropout",
    "TSUGaussianNoise",
    "TSUNegativeSampler",
    "TemperatureSchedule",
    "ThermalActivation",
    "ThermalContext",
    "ThermalLinear",
    "ThermodynamicAttention",
    "TinyThermoLM",
    "active_context",
    "ais_log_partition",
    "conditional_fields",
    "constant",
    "convert_linear_to_ising",
    "cosine",
    "denoising_score_matching",
    "flip_noise",
    "geometric",
    "gibbs_sweeps",
    "info_nce",
    "info_nce_loss",
    "ising_energy",
    "ising_fields",
    "linear",
    "replace_linear_layers",
    "sample_attention_weights",
    "sample_categorical",
    "sample_spins",
    "thermal_activation",
]
