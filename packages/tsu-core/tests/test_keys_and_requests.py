import numpy as np
import pytest

from tsu_core import Clamp, InvalidRequest, Key, as_key, geometric, get_backend, linear
from tsu_core.request import SampleRequest
from tsu_core.schedule import custom
from tsu_core.testing import random_spin_model


def test_key_split_is_deterministic_and_distinct():
    key = Key(7)
    assert key.split(3) == Key(7).split(3)
    values = {child.value for child in key.split(100)}
    assert len(values) == 100 and key.fold_in(1) != key.fold_in(2)
    assert key.fold_in(5) == Key(7).fold_in(5)
    high, low = Key(2**40 + 3).words()
    assert (high, low) == (256, 3)


def test_key_kinds():
    assert as_key(5) == Key(5)
    for bad in ("5", 1.0, -1, None, True):
        with pytest.raises(InvalidRequest, match="key"):
            as_key(bad)


def test_schedules():
    assert np.allclose(linear(1, 3).betas(3), [1, 2, 3])
    assert np.allclose(geometric(1, 100).betas(3), [1, 10, 100])
    with pytest.raises(InvalidRequest, match="custom schedule has 2 betas"):
        custom([1, 2]).betas(3)


def test_request_normalises_clamp_order_and_record_sweeps():
    topology, parameters = random_spin_model(0, 6)
    backend = get_backend("reference")
    request = SampleRequest.build(
        topology,
        backend.capabilities,
        parameters,
        key=1,
        num_chains=2,
        num_samples=3,
        burn_in=4,
        thinning=2,
        clamp=Clamp(np.array([5, 1]), np.array([[1, -1], [-1, 1]])),
    )
    assert request.num_sweeps == 10
    assert request.record_sweeps.tolist() == [5, 7, 9]
    assert request.clamp_nodes.tolist() == [1, 5]
    assert np.array_equal(request.clamp_values, [[-1, 1], [1, -1]])
    assert request.free_nodes.tolist() == [0, 2, 3, 4]


def test_reference_is_deterministic_and_uses_the_recorded_beta():
    topology, parameters = random_spin_model(1, 5)
    program = get_backend("reference").compile(topology)
    first = program.sample(parameters, key=3, num_chains=4, num_samples=5)
    again = program.sample(parameters, key=3, num_chains=4, num_samples=5)
    assert np.array_equal(first.states, again.states)
