"""The persistent compilation cache: on by default in the directory `TSU_JAX_SIM_CACHE` names,
off when it says so, and JAX's own setting respected. Each case runs in a fresh process (JAX
reads its cache setting once per process)."""

import json
import os
import subprocess
import sys

import pytest

PROGRAM = """
import json, numpy as np, tsu_core
from tsu_jax_sim import JaxSimBackend
backend = JaxSimBackend()
topology, parameters = tsu_core.lattice_2d(8, 8, coupling=0.3)
result = backend.compile(topology).sample(parameters, key=1, num_chains=4, num_samples=2)
np.asarray(result.final_state)
print(json.dumps({"cache": None if backend.compilation_cache is None else str(backend.compilation_cache)}))
"""


def _run(**environment: str) -> str | None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("JAX_") and key != "TSU_JAX_SIM_CACHE"
    }
    env.update({"JAX_PLATFORMS": "cpu", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    env.update(environment)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["cache"]


@pytest.mark.parametrize("setting", ["named", "off", "jax's own"])
def test_cache_directory(tmp_path, setting):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    if setting == "named":
        assert _run(TSU_JAX_SIM_CACHE=str(ours)) == str(ours)
        assert any(ours.iterdir())  # the program's compiled sweeps were written there
    elif setting == "off":
        assert _run(TSU_JAX_SIM_CACHE="off", XDG_CACHE_HOME=str(ours)) is None
        assert not ours.exists()
    else:
        theirs.mkdir()
        assert _run(TSU_JAX_SIM_CACHE=str(ours), JAX_COMPILATION_CACHE_DIR=str(theirs)) == str(
            theirs
        )
        assert not ours.exists() and any(theirs.iterdir())


def test_default_directory_follows_xdg(tmp_path):
    assert _run(XDG_CACHE_HOME=str(tmp_path)) == str(tmp_path / "tsu-jax-sim" / "xla")
