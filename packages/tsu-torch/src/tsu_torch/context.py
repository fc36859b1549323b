r"""The thermal context: backend, reproducible keys and the temperature every layer follows.

A `ThermalContext` is an ordinary object, handed to layers as a module attribute
(`context.attach(model)`) or made active for a block of code (`with context: ...`). It never
lives in a module-level variable of this package: several contexts (two models, two seeds) can
coexist, and a layer without one fails with a message saying how to give it one.

Keys come from one seed, `tsu_core.Key(seed)`, folded with a call counter, so the sequence of
samples of a model is reproducible from the seed alone; `torch.manual_seed` does not touch it.

Annealing schedules give the temperature at training step t of `steps` (holding `end` after):

$$T_t = T_0 + (T_1 - T_0)\,u, \qquad T_t = T_0 (T_1 / T_0)^u, \qquad
T_t = T_1 + \tfrac12 (T_0 - T_1)(1 + \cos \pi u), \qquad u = \min(t / (\text{steps} - 1), 1).$$
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tsu_core import Backend, Key, get_backend

ScheduleKind = Literal["constant", "linear", "geometric", "cosine"]

_ACTIVE: contextvars.ContextVar[tuple[ThermalContext, ...]] = contextvars.ContextVar(
    "tsu_torch_active_contexts", default=()
)


@dataclass(frozen=True)
class TemperatureSchedule:
    """Temperature as a function of the training step.

    Arguments:
        start: the temperature at step 0 (> 0).
        end: the temperature from step `steps - 1` on (> 0).
        steps: the number of steps over which the temperature moves (>= 1).
        kind: "constant", "linear", "geometric" or "cosine".
    """

    start: float = 1.0
    end: float = 1.0
    steps: int = 1
    kind: ScheduleKind = "constant"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"TemperatureSchedule.{name}: expected a temperature > 0, got {value}"
                )
        if self.steps < 1:
            raise ValueError(f"TemperatureSchedule.steps: expected >= 1, got {self.steps}")
        if self.kind not in ("constant", "linear", "geometric", "cosine"):
            raise ValueError(
                "TemperatureSchedule.kind: expected 'constant', 'linear', 'geometric' or "
                f"'cosine', got {self.kind!r}"
            )

    def temperature(self, step: int) -> float:
        """The temperature at a training step (the end value after the last step)."""
        if self.kind == "constant":
            return self.start
        fraction = 1.0 if self.steps == 1 else min(max(step, 0) / (self.steps - 1), 1.0)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * fraction
        if self.kind == "geometric":
            return self.start * (self.end / self.start) ** fraction
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * fraction))


def constant(temperature: float) -> TemperatureSchedule:
    """The same temperature at every step."""
    return TemperatureSchedule(temperature, temperature, 1, "constant")


def linear(start: float, end: float, steps: int) -> TemperatureSchedule:
    """Temperature moving linearly from `start` to `end` over `steps` steps."""
    return TemperatureSchedule(start, end, steps, "linear")


def geometric(start: float, end: float, steps: int) -> TemperatureSchedule:
    """Temperature moving geometrically (the usual annealing) from `start` to `end`."""
    return TemperatureSchedule(start, end, steps, "geometric")


def cosine(start: float, end: float, steps: int) -> TemperatureSchedule:
    """Temperature following half a cosine from `start` to `end`."""
    return TemperatureSchedule(start, end, steps, "cosine")


class ThermalContext:
    """Backend, keys and temperature shared by the thermal layers of a model.

    Arguments:
        seed: the one seed every key derives from.
        backend: a backend object or name; None takes `tsu_core.get_backend()` (which honours
            the TSU_BACKEND environment variable).
        schedule: a `TemperatureSchedule` or a number (a constant temperature).

    Usage:
        context = ThermalContext(seed=0, schedule=geometric(2.0, 0.5, steps=1000))
        context.attach(model)       # every thermal layer of `model` now follows it
        ...
        context.step()              # once per training step: advances the annealing
    """

    def __init__(
        self,
        seed: int = 0,
        backend: Backend | str | None = None,
        schedule: TemperatureSchedule | float = 1.0,
    ) -> None:
        self.seed = int(seed)
        self.backend: Backend = (
            backend
            if backend is not None and not isinstance(backend, str)
            else get_backend(backend)
        )
        self.schedule = (
            schedule if isinstance(schedule, TemperatureSchedule) else constant(schedule)
        )
        self.root_key = Key(self.seed)
        self.calls = 0
        self.training_step = 0

    # keys -----------------------------------------------------------------------------------
    def next_key(self) -> Key:
        """A fresh key for one sampling call: the root key folded with the call counter."""
        key = self.root_key.fold_in(self.calls)
        self.calls += 1
        return key

    def reset(self, seed: int | None = None) -> None:
        """Restart the key sequence (and the annealing) from the seed."""
        if seed is not None:
            self.seed = int(seed)
            self.root_key = Key(self.seed)
        self.calls = 0
        self.training_step = 0

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint needs to resume the same key and temperature sequence."""
        return {"seed": self.seed, "calls": self.calls, "training_step": self.training_step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.reset(int(state["seed"]))
        self.calls = int(state["calls"])
        self.training_step = int(state["training_step"])

    # temperature ----------------------------------------------------------------------------
    @property
    def temperature(self) -> float:
        """The current temperature from the schedule."""
        return self.schedule.temperature(self.training_step)

    @property
    def beta(self) -> float:
        """The current inverse temperature, 1 / temperature."""
        return 1.0 / self.temperature

    def step(self, count: int = 1) -> float:
        """Advance the annealing by `count` training steps; returns the new temperature."""
        self.training_step += count
        return self.temperature

    # attaching ------------------------------------------------------------------------------
    def attach(self, model: torch.nn.Module) -> torch.nn.Module:
        """Make every thermal layer inside `model` (those with a `thermal_context` attribute) use this."""
        for module in model.modules():
            if hasattr(module, "thermal_context"):
                module.thermal_context = self
        return model

    def __enter__(self) -> ThermalContext:
        _ACTIVE.set((*_ACTIVE.get(), self))
        return self

    def __exit__(self, *exception: Any) -> None:
        stack = _ACTIVE.get()
        _ACTIVE.set(stack[:-1])

    def __repr__(self) -> str:
        return (
            f"ThermalContext(seed={self.seed}, backend={self.backend.name!r}, "
            f"temperature={self.temperature:.4g}, calls={self.calls})"
        )


def active_context() -> ThermalContext | None:
    """The innermost context entered with `with context:`, or None."""
    stack = _ACTIVE.get()
    return stack[-1] if stack else None


def resolve_context(context: ThermalContext | None, who: str) -> ThermalContext:
    """The layer's own context, else the active one; a clear error when there is neither."""
    if context is not None:
        return context
    found = active_context()
    if found is None:
        raise RuntimeError(
            f"{who}: no ThermalContext; give one with `ThermalContext(seed).attach(model)`, "
            "the layer's `context=` argument, or `with ThermalContext(seed): ...`"
        )
    return found
