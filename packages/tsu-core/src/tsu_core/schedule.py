r"""Inverse-temperature schedules: the value of beta at every sweep.

A schedule is a small value, not a flag: `constant(1.0)`, `linear(0.1, 3.0)`,
`geometric(0.1, 10.0)`, or `custom(betas)`. A sampling call runs
`burn_in + num_samples * thinning` sweeps and sweep `t` uses `schedule.betas(num_sweeps)[t]`.
Linear and geometric schedules go from `start` at the first sweep to `end` at the last:

$$\beta_t = \beta_0 + (\beta_1 - \beta_0)\,\frac{t}{T-1}, \qquad
\beta_t = \beta_0 \left(\beta_1 / \beta_0\right)^{t / (T - 1)}.$$
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tsu_core.errors import InvalidRequest, describe

ScheduleKind = Literal["constant", "linear", "geometric", "custom"]
KINDS = ("constant", "linear", "geometric", "custom")
# Backends compute in float32; a larger beta would become infinite there (and 0 * inf = NaN).
MAX_BETA = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class BetaSchedule:
    """Beta per sweep; build one with `constant`, `linear`, `geometric` or `custom`."""

    kind: ScheduleKind
    start: float
    end: float
    values: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """The checks of the helper constructors, for a schedule built directly."""
        if self.kind not in KINDS:
            raise InvalidRequest(f"schedule.kind: expected one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "start", _positive("schedule.start", self.start))
        object.__setattr__(self, "end", _positive("schedule.end", self.end))
        if self.kind == "custom":
            object.__setattr__(self, "values", _checked_betas(self.values))
        elif self.values is not None:
            raise InvalidRequest(
                f"schedule.values: only a custom schedule has values, got a {self.kind} one"
            )

    def betas(self, num_sweeps: int) -> np.ndarray:
        """The beta used at each of `num_sweeps` sweeps (float64)."""
        if self.kind == "constant":
            return np.full(num_sweeps, self.start)
        if self.kind == "custom":
            if self.values.size != num_sweeps:
                raise InvalidRequest(
                    f"schedule: a custom schedule has {self.values.size} betas but the call runs "
                    f"{num_sweeps} sweeps (burn_in + num_samples * thinning); give one per sweep"
                )
            return self.values
        if num_sweeps == 1:
            return np.array([self.end])
        fraction = np.arange(num_sweeps) / (num_sweeps - 1)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * fraction
        return self.start * (self.end / self.start) ** fraction

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"


def _positive(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InvalidRequest(f"{name}: expected a positive number, got {describe(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name}: expected a positive number, got {describe(value)}") from None
    if not np.isfinite(number) or number <= 0 or number > MAX_BETA:
        raise InvalidRequest(
            f"{name}: expected beta > 0 and finite in float32 (at most {MAX_BETA:.4g}; beta = "
            f"1 / temperature), got {number}"
        )
    return number


def _checked_betas(betas: Any) -> np.ndarray:
    """A custom schedule's betas: a non-empty read-only float64 array of valid betas."""
    if betas is None:
        raise InvalidRequest("schedule: a custom schedule needs its betas, got None")
    try:
        values = np.array(betas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InvalidRequest(
            f"schedule: expected an array of betas, got {describe(betas)}"
        ) from None
    if values.size == 0:
        raise InvalidRequest("schedule: expected at least one beta, got an empty array")
    bad = ~np.isfinite(values) | (values <= 0) | (values > MAX_BETA)
    if bad.any():
        first = int(np.argmax(bad))
        raise InvalidRequest(
            f"schedule: expected every beta > 0 and finite in float32, got {float(values[first])} "
            f"at sweep {first}"
        )
    values.setflags(write=False)
    return values


def constant(beta: float) -> BetaSchedule:
    """The same beta at every sweep."""
    value = _positive("beta", beta)
    return BetaSchedule("constant", value, value)


def linear(start: float, end: float) -> BetaSchedule:
    """Beta moving linearly from `start` to `end`."""
    return BetaSchedule(
        "linear", _positive("schedule.start", start), _positive("schedule.end", end)
    )


def geometric(start: float, end: float) -> BetaSchedule:
    """Beta moving geometrically from `start` to `end` (the usual annealing schedule)."""
    return BetaSchedule(
        "geometric", _positive("schedule.start", start), _positive("schedule.end", end)
    )


def custom(betas: Any) -> BetaSchedule:
    """An explicit beta for every sweep."""
    values = _checked_betas(betas)
    return BetaSchedule("custom", float(values[0]), float(values[-1]), values)


def as_schedule(value: Any) -> BetaSchedule:
    """Accept a `BetaSchedule` or a number (a constant beta)."""
    if isinstance(value, BetaSchedule):
        return value
    return constant(value)
