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


def test_four_devices_equal_one() -> None:
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = (
        environment.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    )
    environment["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, timeout=600
    )
    assert "SHARDED-OK" in done.stdout, done.stderr[-3000:]
