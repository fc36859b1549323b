"""Each benchmark line is one JSON object with the keys benchmarks/README.md names. (`nox -s
results` runs these tests with pytest alone: what needs numpy, JAX or torch skips there.)"""

from __future__ import annotations

import json

import pytest
from _jsonl import emit, emit_jax, emit_torch


def test_a_line_is_one_json_object(capsys):
    np = pytest.importorskip("numpy")
    record = emit("sweep time", {"chains": 8}, np.float32(0.5), "s", "cpu (2 threads)")
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and json.loads(line) == record
    assert record == {
        "what": "sweep time",
        "config": {"chains": 8},
        "device": "cpu (2 threads)",
        "value": 0.5,
        "unit": "s",
    }
    assert emit("count", {}, 3, "", "cpu")["value"] == 3, "integers stay integers"


def test_devices_are_described(capsys):
    pytest.importorskip("jax")
    assert emit_jax("x", {}, 1.0, "s")["device"].split(":")[0] in ("cpu", "gpu")
    pytest.importorskip("torch")
    assert emit_torch("x", {}, 1.0, "s", "cpu")["device"].startswith("cpu (")
    capsys.readouterr()
