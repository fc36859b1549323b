"""Inputs from numpy, JAX and torch are read without copies; outputs support DLPack."""

import numpy as np
import pytest

from tsu_core import InvalidModel, Parameters, get_backend, lattice_2d
from tsu_core.arrays import all_categories, all_finite, all_spins, framework, shape_of, to_numpy


def test_numpy_and_lists():
    assert framework(np.zeros(2)) == "numpy" and framework([1, 2]) == "python"
    assert shape_of([[1, 2, 3]]) == (1, 3)
    assert all_finite(np.array([1.0, -np.inf]), allow_negative_infinity=True)
    assert not all_finite(np.array([1.0, -np.inf]))
    assert all_spins(np.array([1, -1])) and not all_spins(np.array([1, 0]))
    assert all_categories(np.array([0, 2]), 3) and not all_categories(np.array([0.5]), 3)


@pytest.mark.parametrize("module", ["torch", "jax.numpy"])
def test_foreign_arrays_are_checked_in_place(module):
    xp = pytest.importorskip(module)
    values = xp.asarray(np.array([1.0, 2.0, float("nan")]))
    assert framework(values) in ("torch", "jax") and shape_of(values) == (3,)
    assert not all_finite(values)
    assert all_spins(xp.asarray(np.array([1, -1, 1])))
    topology, parameters = lattice_2d(4)
    foreign = Parameters(xp.asarray(np.ones(32)), xp.asarray(np.zeros(16)))
    foreign.validate(topology)
    with pytest.raises(InvalidModel, match="weights"):
        Parameters(xp.asarray(np.full(32, np.nan)), xp.asarray(np.zeros(16))).validate(topology)
    program = get_backend("reference").compile(topology)
    result = program.sample(foreign, key=0, num_chains=2, schedule=0.5)
    assert np.array_equal(to_numpy(result.states), np.asarray(result.states))


def test_outputs_support_dlpack():
    topology, parameters = lattice_2d(4)
    result = get_backend("reference").compile(topology).sample(parameters, key=0, num_chains=2)
    for array in (result.states, result.energies, result.final_state):
        assert np.array_equal(np.from_dlpack(array), array)
