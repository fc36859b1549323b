import math

import numpy as np
import pytest
import torch

from tsu_core import get_backend
from tsu_torch import ThermalContext, ThermalLinear, active_context, cosine, geometric, linear
from tsu_torch.context import TemperatureSchedule, constant


def test_schedules_match_closed_forms() -> None:
    steps = 11
    for step in range(15):
        u = min(step / 10, 1.0)
        assert linear(2.0, 0.5, steps).temperature(step) == pytest.approx(2.0 - 1.5 * u)
        assert geometric(2.0, 0.5, steps).temperature(step) == pytest.approx(2.0 * 0.25**u)
        expected = 0.5 + 0.75 * (1 + math.cos(math.pi * u))
        assert cosine(2.0, 0.5, steps).temperature(step) == pytest.approx(expected)
    assert constant(0.7).temperature(1000) == 0.7
    assert cosine(2.0, 0.5, 1).temperature(0) == 0.5


def test_schedule_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="temperature > 0"):
        TemperatureSchedule(0.0, 1.0, 5, "linear")
    with pytest.raises(ValueError, match="kind"):
        TemperatureSchedule(1.0, 1.0, 5, "exponential")  # type: ignore[arg-type]


def test_context_follows_backend_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ThermalContext(0).backend is get_backend()
    assert ThermalContext(0, backend="reference").backend.name == "reference"


def test_step_anneals_the_beta() -> None:
    context = ThermalContext(0, schedule=linear(4.0, 1.0, 4))
    assert context.beta == pytest.approx(0.25)
    assert context.step() == pytest.approx(3.0)
    context.step(10)
    assert context.beta == pytest.approx(1.0)


def test_keys_are_reproducible_from_the_seed_only() -> None:
    fields = torch.linspace(-1, 1, 200)
    layer_a, layer_b = ThermalContext(7), ThermalContext(7)
    torch.manual_seed(0)
    first = [layer_a.backend.pbit(fields, key=layer_a.next_key()) for _ in range(3)]
    torch.manual_seed(99)  # torch's generator does not govern the keys
    second = [layer_b.backend.pbit(fields, key=layer_b.next_key()) for _ in range(3)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(
            np.asarray(torch.from_dlpack(a)), np.asarray(torch.from_dlpack(b))
        )
    # successive calls and other seeds give different draws
    assert not np.array_equal(np.asarray(first[0]), np.asarray(first[1]))
    other = ThermalContext(8)
    assert not np.array_equal(
        np.asarray(other.backend.pbit(fields, key=other.next_key())), np.asarray(first[0])
    )


def test_state_dict_resumes_the_sequence() -> None:
    context = ThermalContext(3)
    for _ in range(5):
        context.next_key()
    context.step(2)
    resumed = ThermalContext(0)
    resumed.load_state_dict(context.state_dict())
    assert resumed.next_key() == context.next_key()
    assert resumed.training_step == 2


def test_with_block_and_attach() -> None:
    layer = ThermalLinear(3, 2)
    with pytest.raises(RuntimeError, match="no ThermalContext"):
        layer(torch.zeros(1, 3))
    outer, inner = ThermalContext(1), ThermalContext(2)
    with outer:
        assert active_context() is outer
        with inner:
            assert active_context() is inner
            layer(torch.zeros(1, 3))
            assert inner.calls == 1 and outer.calls == 0
        assert active_context() is outer
    assert active_context() is None
    model = torch.nn.Sequential(ThermalLinear(3, 2), torch.nn.Linear(2, 2), ThermalLinear(2, 2))
    outer.attach(model)
    assert model[0].thermal_context is outer and model[2].thermal_context is outer
    model(torch.zeros(4, 3))
    assert outer.calls == 2
