"""Deliberately wrong backends: the conformance suite must catch each of them.

Each wraps the exact reference backend and breaks one thing, so a failing test can only be
caused by that one thing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tsu_core import Samples
from tsu_core.arrays import to_numpy
from tsu_core.backends.reference import ReferenceBackend, ReferenceProgram
from tsu_core.request import SampleRequest
from tsu_core.schedule import custom


class _BrokenBackend(ReferenceBackend):
    program_class: type[ReferenceProgram]

    def compile(self, topology):
        return self.program_class(topology, self)


class _HotProgram(ReferenceProgram):
    def _draw(self, request: SampleRequest) -> np.ndarray:
        return super()._draw(replace(request, betas=1.25 * request.betas))


class WrongTemperatureBackend(_BrokenBackend):
    """Samples at 1.25 times the requested beta."""

    name = "broken-temperature"
    program_class = _HotProgram


class _UnclampedProgram(ReferenceProgram):
    def _draw(self, request: SampleRequest) -> np.ndarray:
        states = super()._draw(
            replace(request, clamp_nodes=np.zeros(0, np.int64), clamp_values=None)
        )
        if request.clamp_values is not None:
            values = to_numpy(request.clamp_values)
            states[..., request.clamp_nodes] = values[:, None, :] if values.ndim == 2 else values
        return states


class IgnoresClampBackend(_BrokenBackend):
    """Samples every node freely, then writes the clamp values over the clamped nodes."""

    name = "broken-clamp"
    program_class = _UnclampedProgram


class _SharedProgram(ReferenceProgram):
    def _draw(self, request: SampleRequest) -> np.ndarray:
        values = request.clamp_values
        if values is not None and np.ndim(values) == 2:
            values = values[:1]
        states = super()._draw(replace(request, num_chains=1, clamp_values=values))
        return np.repeat(states, request.num_chains, axis=0)


class SharedRandomnessBackend(_BrokenBackend):
    """Every chain receives chain 0's random numbers."""

    name = "broken-chains"
    program_class = _SharedProgram


class _SignFlippedProgram(ReferenceProgram):
    def sample(self, parameters: Any, **options: Any) -> Samples:
        result = super().sample(parameters, **options)
        return Samples(result.states, -result.energies, result.final_state)


class WrongEnergyBackend(_BrokenBackend):
    """Samples correctly but reports energies with the opposite sign."""

    name = "broken-energy"
    program_class = _SignFlippedProgram


class _IgnoresScheduleProgram(ReferenceProgram):
    def _draw(self, request: SampleRequest) -> np.ndarray:
        flat = np.full_like(request.betas, request.betas[0])
        return super()._draw(replace(request, betas=flat, schedule=custom(flat)))


class IgnoresScheduleBackend(_BrokenBackend):
    """Uses the first sweep's beta for the whole run (annealing does nothing)."""

    name = "broken-schedule"
    program_class = _IgnoresScheduleProgram
