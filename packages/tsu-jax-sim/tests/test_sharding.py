"""Chains split over 4 (forced host) devices give the same samples as 1 device, same key."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from tsu_core.constructors import lattice_2d
    from tsu_core.testing import random_spin_model
    from tsu_jax_sim import JaxSimBackend

    assert len(jax.devices()) == 4, jax.devices()
    many, one = JaxSimBackend(), JaxSimBackend(devices=jax.devices()[:1])
    options = dict(key=7, num_chains=64, num_samples=3, burn_in=5, thinning=2, schedule=0.6)
    for topology, parameters in (lattice_2d(8), random_spin_model(seed=3, num_nodes=10)):
        split = many.compile(topology).sample(parameters, **options)
        assert len(split.states.sharding.device_set) == 4, split.states.sharding
        single = one.compile(topology).sample(parameters, **options)
        assert np.array_equal(np.asarray(split.states), np.asarray(single.states))
        assert np.allclose(np.asarray(split.energies), np.asarray(single.energies))
    topology, parameters = lattice_2d(8)
    moments_split = many.compile(topology).moments(parameters, **options)
    moments_single = one.compile(topology).moments(parameters, **options)
    assert np.allclose(np.asarray(moments_split.edges), np.asarray(moments_single.edges))
    print("SHARDED-OK")
    """
)


def _run_on_host_devices(script: str, count: int) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Python on `count` forced CPU devices."""
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = (
        environment.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    )
    environment["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=600
    )


def test_four_devices_equal_one() -> None:
    done = _run_on_host_devices(SCRIPT, 4)
    assert "SHARDED-OK" in done.stdout, done.stderr[-3000:]


PLACEMENT = textwrap.dedent(
    """
    import jax, numpy as np
    from tsu_core import Clamp, Parameters
    from tsu_core.constructors import lattice_2d
    from tsu_jax_sim import JaxSimBackend

    first, second = jax.devices()
    program = JaxSimBackend(devices=[second]).compile(lattice_2d(6)[0])
    parameters = lattice_2d(6)[1]
    elsewhere = Parameters(
        *(jax.device_put(np.asarray(a, np.float32), first)
          for a in (parameters.weights, parameters.biases))
    )
    start = np.where(np.arange(8 * 36).reshape(8, 36) % 3 == 0, 1, -1).astype(np.int8)
    clamp_values = np.tile(np.array([1, -1], np.int8), (8, 1))
    options = dict(key=3, num_chains=8, num_samples=2, burn_in=3, schedule=0.7)
    for given, start_given, values in (
        (parameters, start, clamp_values),
        (elsewhere, jax.device_put(start, first), jax.device_put(clamp_values, first)),
    ):
        result = program.sample(given, initial_state=start_given,
                                clamp=Clamp(np.array([0, 35]), values), **options)
        assert result.states.devices() == {second}, result.states.devices()
        states = np.asarray(result.states)
        if given is parameters:
            expected = states
    assert np.array_equal(states, expected)
    print("PLACED-OK")
    """
)


def test_a_program_runs_on_its_backends_device_wherever_its_inputs_lie() -> None:
    # A jitted program runs where its committed inputs are: parameters on another device (a
    # CPU torch tensor on a GPU machine) must not take the run there.
    done = _run_on_host_devices(PLACEMENT, 2)
    assert "PLACED-OK" in done.stdout, done.stderr[-3000:]
