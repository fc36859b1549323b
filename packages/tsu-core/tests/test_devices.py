"""Device names in the protocol's spelling, from JAX's and torch's devices."""

from types import SimpleNamespace

import pytest

from tsu_core.devices import device_name, device_names


def test_jax_spelling_becomes_the_protocols():
    gpu = SimpleNamespace(platform="gpu", id=1)
    cpus = [SimpleNamespace(platform="cpu", id=index) for index in range(4)]
    assert device_name(gpu) == "cuda:1"
    assert device_name(SimpleNamespace(platform="tpu", id=0)) == "tpu:0"
    assert device_names(cpus) == ("cpu",), "simulated host devices are one CPU"
    assert device_names([SimpleNamespace(platform="gpu", id=i) for i in (0, 1)]) == (
        "cuda:0",
        "cuda:1",
    )


def test_torch_spelling_is_kept():
    torch = pytest.importorskip("torch")
    assert device_name(torch.device("cpu")) == "cpu"
    assert device_name(torch.device("cuda", 2)) == "cuda:2"
    assert device_name(torch.device("cuda")) == "cuda"


def test_jax_devices():
    jax = pytest.importorskip("jax")
    names = device_names(jax.devices())
    expected = "cpu" if jax.devices()[0].platform == "cpu" else "cuda:0"
    assert names[0] == expected
