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


def test_seeds_beyond_64_bits_are_refused_not_reduced():
    assert as_key(2**64 - 1) == Key(2**64 - 1)
    for bad in (2**64, 2**80):
        with pytest.raises(InvalidRequest, match=r"key: .*\[0, 2\*\*64\)"):
            as_key(bad)


def test_error_messages_print_scalars_as_written():
    from tsu_core.errors import describe

    assert describe(np.int64(0)) == "0 (int64)"
    assert describe(np.float32(1.5)) == "1.5 (float32)"
    assert describe(np.zeros((2, 3))) == "ndarray of shape (2, 3) and dtype float64"


def test_memory_estimate_bounds_what_the_reference_returns():
    """The estimate is an upper bound of the arrays a call returns, and the limit is exact:
    a call needing the limit runs, one byte less refuses it, naming the size."""
    from dataclasses import replace

    from tsu_core.backends.reference import ReferenceBackend
    from tsu_core.request import estimate_bytes
    from tsu_core.testing import random_categorical_model

    for topology, parameters in (random_spin_model(0, 6), random_categorical_model(0, 4, 3)):
        chains, samples, burn_in = 7, 5, 3
        needed = estimate_bytes(topology, chains, samples, burn_in + samples)
        backend = ReferenceBackend()
        backend.capabilities = replace(backend.capabilities, max_request_bytes=needed)
        options = dict(key=0, num_chains=chains, num_samples=samples, burn_in=burn_in)
        result = backend.compile(topology).sample(parameters, **options)
        returned = sum(np.asarray(a).nbytes for a in (result.states, result.energies))
        assert returned <= needed
        backend.capabilities = replace(backend.capabilities, max_request_bytes=needed - 1)
        with pytest.raises(InvalidRequest, match=rf"needs about .*\({needed} bytes\) of memory"):
            backend.compile(topology).sample(parameters, **options)


def test_memory_limit_from_the_environment(monkeypatch):
    from tsu_core.request import MEMORY_LIMIT_VARIABLE, memory_limit

    assert memory_limit() > 0
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "1e6")
    assert memory_limit() == 1_000_000
    program = get_backend("reference").compile(random_spin_model(0, 6)[0])
    with pytest.raises(InvalidRequest, match=r"needs about 1\.6 MB .* limit of 1\.0 MB"):
        program.sample(random_spin_model(0, 6)[1], key=0, num_chains=20_000)
    with pytest.raises(InvalidRequest, match="shape"):
        get_backend("reference").gaussian((1000, 1000), key=0)
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "lots")
    with pytest.raises(InvalidRequest, match=MEMORY_LIMIT_VARIABLE):
        memory_limit()


def test_parameters_whose_fields_would_overflow_float32_are_refused():
    from tsu_core import InvalidModel, Parameters, Topology
    from tsu_core.parameters import MAX_ABSOLUTE_SUM

    topology = Topology(3, [[0, 1], [1, 2]])
    at_limit = Parameters(
        np.array([MAX_ABSOLUTE_SUM / 2, 0.0]), np.array([0, MAX_ABSOLUTE_SUM / 2, 0])
    )
    at_limit.validate(topology)
    over = Parameters(at_limit.weights * 1.01, at_limit.biases)
    with pytest.raises(InvalidModel, match="overflow float32, got 8.55e\\+37"):
        over.validate(topology)
    # Every field and the energy stay finite in float32 at the limit.
    fields = np.float32(MAX_ABSOLUTE_SUM) * 2
    assert np.isfinite(fields) and np.isfinite(fields * 2)
