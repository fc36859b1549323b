"""Inputs from numpy, JAX and torch are read without copies; outputs support DLPack."""

import subprocess
import sys

import numpy as np
import pytest

from tsu_core import InvalidModel, Parameters, get_backend, lattice_2d
from tsu_core.arrays import (
    all_categories,
    all_finite,
    all_spins,
    framework,
    shape_of,
    to_jax,
    to_numpy,
    to_torch,
)


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


# -- conversion between numpy, JAX and torch -----------------------------------------------------
# Values are checked through `.tolist()` (plain Python), dtypes by name, so the check does not
# rest on the conversions it tests.
DTYPES = ["bool", "int8", "uint8", "int32", "float16", "float32"]


def _values(dtype: str) -> np.ndarray:
    values = np.array([[0, 1, -1], [2, -3, 5]]) if dtype != "uint8" else np.arange(6).reshape(2, 3)
    return values.astype(dtype)


def _dtype_name(array) -> str:
    return str(array.dtype).removeprefix("torch.").replace("bool_", "bool")


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_torch_numpy(dtype):
    pytest.importorskip("torch")
    values = _values(dtype)
    tensor = to_torch(values)
    assert _dtype_name(tensor) == dtype and tensor.device.type == "cpu"
    assert tensor.tolist() == values.tolist()
    back = to_numpy(tensor)
    assert back.dtype == values.dtype and back.tolist() == values.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_jax_numpy(dtype):
    pytest.importorskip("jax")
    values = _values(dtype)
    array = to_jax(values)
    assert _dtype_name(array) == dtype and array.tolist() == values.tolist()
    assert framework(array) == "jax"
    back = to_numpy(array)
    assert back.dtype == values.dtype and back.tolist() == values.tolist()


@pytest.mark.parametrize("dtype", [*DTYPES, "bfloat16"])
def test_torch_jax_torch(dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    tensor = torch.tensor(_values("float32" if dtype == "bfloat16" else dtype).tolist())
    tensor = tensor.to(getattr(torch, dtype))
    array = to_jax(tensor)
    assert _dtype_name(array) == dtype and array.shape == (2, 3)
    assert list(array.devices())[0].platform == "cpu"
    back = to_torch(array)
    assert back.dtype == tensor.dtype and back.device == tensor.device
    assert back.tolist() == tensor.tolist()


def test_conversion_through_dlpack_shares_memory():
    """Where the layout allows, the arrays are views of one buffer, not copies."""
    torch = pytest.importorskip("torch")
    values = np.arange(12, dtype=np.float32)
    tensor = to_torch(values)
    values[0] = 7.0
    assert tensor[0].item() == 7.0, "a writeable numpy array is shared"
    assert to_torch(tensor) is tensor
    pytest.importorskip("jax")
    shared = torch.arange(12, dtype=torch.float32)
    assert to_jax(shared).unsafe_buffer_pointer() == shared.data_ptr()
    array = to_jax(np.arange(4, dtype=np.float32))
    assert to_torch(array).data_ptr() == array.unsafe_buffer_pointer()
    assert to_jax(array) is array


def test_conversion_copies_what_dlpack_cannot_share():
    """Read-only and strided numpy arrays, lists, scalars, strided and grad-tracking tensors."""
    torch = pytest.importorskip("torch")
    frozen = np.arange(6, dtype=np.int8).reshape(2, 3)
    frozen.flags.writeable = False
    assert to_torch(frozen).tolist() == frozen.tolist()
    assert to_torch(frozen.T).tolist() == frozen.T.tolist()
    assert to_torch([1, -1]).tolist() == [1, -1] and to_torch(np.float32(2.5)).item() == 2.5
    pytest.importorskip("jax")
    tracked = torch.arange(6, dtype=torch.float32, requires_grad=True).reshape(2, 3)
    assert to_jax(tracked.T).tolist() == tracked.T.tolist()
    assert to_jax([[1, 2]]).tolist() == [[1, 2]]


def test_conversion_to_a_given_device_and_dtype():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    tensor = to_torch(jnp.asarray([1, -1], dtype=jnp.int8), device="cpu", dtype=torch.float32)
    assert tensor.dtype == torch.float32 and tensor.device == torch.device("cpu")
    assert tensor.tolist() == [1.0, -1.0]
    array = to_jax(torch.tensor([0.5, 2.0]), dtype=jnp.int32)
    assert array.dtype == jnp.int32 and array.tolist() == [0, 2]
    assert to_jax(np.array([0.25]), dtype="float16").dtype == jnp.float16


def test_gpu_arrays_stay_on_their_gpu():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    if not torch.cuda.is_available() or jax.devices()[0].platform != "gpu":
        pytest.skip("needs a CUDA GPU that both torch and JAX see")
    tensor = torch.arange(8, dtype=torch.float32, device="cuda:0")
    array = to_jax(tensor)
    assert list(array.devices())[0].platform == "gpu"
    back = to_torch(array)
    assert back.device == tensor.device and back.tolist() == tensor.tolist()


def test_tsu_core_loads_no_framework():
    """Importing tsu-core (and converting numpy) imports neither torch nor JAX."""
    code = (
        "import sys, numpy, tsu_core, tsu_core.arrays as arrays\n"
        "arrays.to_numpy(numpy.zeros(2))\n"
        "print(*(name for name in ('torch', 'jax') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported: {result.stdout}"
