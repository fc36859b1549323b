"""The bad-input table: each malformed call and the error it must raise.

A backend passes when every case raises the named error type and the message names the field,
so a user sees what was expected and what was given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tsu_core.errors import BackendNotFound, InvalidModel, InvalidRequest, TSUError
from tsu_core.parameters import Parameters
from tsu_core.protocol import Backend, Clamp
from tsu_core.schedule import BetaSchedule
from tsu_core.topology import Topology


@dataclass(frozen=True)
class BadInputCase:
    """A call that must fail with `error` and a message containing `field`."""

    name: str
    call: Callable[[Backend], object]
    error: type[TSUError]
    field: str


def _model() -> tuple[Topology, Parameters]:
    topology = Topology(4, np.array([[0, 1], [1, 2], [2, 3], [3, 0]]))
    return topology, Parameters(np.full(4, 0.5), np.zeros(4))


def _sample(backend: Backend, parameters: Parameters | None = None, **options: object) -> object:
    topology, default = _model()
    options.setdefault("key", 0)
    return backend.compile(topology).sample(
        default if parameters is None else parameters, **options
    )


def _categorical_sample(backend: Backend, **options: object) -> object:
    topology = Topology(3, np.array([[0, 1], [1, 2]]), num_categories=3)
    parameters = Parameters(np.zeros((2, 3, 3)), np.zeros((3, 3)))
    if "categorical" not in backend.capabilities.node_kinds:
        pytest.skip(f"{backend.name} declares no support for categorical nodes")
    return backend.compile(topology).sample(parameters, key=0, **options)


BAD_INPUT_CASES = [
    BadInputCase("edge to a missing node", lambda b: Topology(3, [[0, 3]]), InvalidModel, "edges"),
    BadInputCase("negative node index", lambda b: Topology(3, [[-1, 2]]), InvalidModel, "edges"),
    BadInputCase("self-loop", lambda b: Topology(3, [[1, 1]]), InvalidModel, "self-loop"),
    BadInputCase(
        "duplicate edge", lambda b: Topology(3, [[0, 1], [1, 0]]), InvalidModel, "duplicates"
    ),
    BadInputCase(
        "edges of the wrong shape", lambda b: Topology(3, [0, 1, 2]), InvalidModel, "edges"
    ),
    BadInputCase(
        "colouring with an edge inside a block",
        lambda b: Topology(3, [[0, 1], [1, 2]], blocks=[[0, 1], [2]]),
        InvalidModel,
        "inside a block",
    ),
    BadInputCase(
        "colouring that misses a node",
        lambda b: Topology(3, [[0, 1]], blocks=[[0], [1]]),
        InvalidModel,
        "no block",
    ),
    BadInputCase(
        "one category",
        lambda b: Topology(3, [[0, 1]], num_categories=1),
        InvalidModel,
        "num_categories",
    ),
    BadInputCase(
        "weight count mismatch",
        lambda b: _sample(b, Parameters(np.zeros(3), np.zeros(4))),
        InvalidModel,
        "weights",
    ),
    BadInputCase(
        "bias count mismatch",
        lambda b: _sample(b, Parameters(np.zeros(4), np.zeros(5))),
        InvalidModel,
        "biases",
    ),
    BadInputCase(
        "NaN weight",
        lambda b: _sample(b, Parameters(np.array([0.1, np.nan, 0.0, 0.0]), np.zeros(4))),
        InvalidModel,
        "weights",
    ),
    BadInputCase(
        "infinite bias",
        lambda b: _sample(b, Parameters(np.zeros(4), np.array([0.0, np.inf, 0.0, 0.0]))),
        InvalidModel,
        "biases",
    ),
    BadInputCase("beta zero", lambda b: _sample(b, schedule=0.0), InvalidRequest, "beta"),
    BadInputCase("beta negative", lambda b: _sample(b, schedule=-1.0), InvalidRequest, "beta"),
    BadInputCase("beta NaN", lambda b: _sample(b, schedule=float("nan")), InvalidRequest, "beta"),
    BadInputCase("zero chains", lambda b: _sample(b, num_chains=0), InvalidRequest, "num_chains"),
    BadInputCase(
        "zero samples", lambda b: _sample(b, num_samples=0), InvalidRequest, "num_samples"
    ),
    BadInputCase("negative burn-in", lambda b: _sample(b, burn_in=-1), InvalidRequest, "burn_in"),
    BadInputCase("zero thinning", lambda b: _sample(b, thinning=0), InvalidRequest, "thinning"),
    BadInputCase("key of the wrong kind", lambda b: _sample(b, key="seed"), InvalidRequest, "key"),
    BadInputCase("float key", lambda b: _sample(b, key=1.5), InvalidRequest, "key"),
    BadInputCase("negative key", lambda b: _sample(b, key=-3), InvalidRequest, "key"),
    BadInputCase(
        "spin clamp value out of range",
        lambda b: _sample(b, clamp=Clamp(np.array([0]), np.array([2]))),
        InvalidRequest,
        "clamp.values",
    ),
    BadInputCase(
        "spin clamp value zero",
        lambda b: _sample(b, clamp=Clamp(np.array([0, 1]), np.array([1, 0]))),
        InvalidRequest,
        "clamp.values",
    ),
    BadInputCase(
        "clamp node out of range",
        lambda b: _sample(b, clamp=Clamp(np.array([7]), np.array([1]))),
        InvalidRequest,
        "clamp.nodes",
    ),
    BadInputCase(
        "clamp values of the wrong shape",
        lambda b: _sample(b, num_chains=2, clamp=Clamp(np.array([0]), np.ones((3, 1)))),
        InvalidRequest,
        "clamp.values",
    ),
    BadInputCase(
        "categorical clamp value out of range",
        lambda b: _categorical_sample(b, clamp=Clamp(np.array([0]), np.array([3]))),
        InvalidRequest,
        "clamp.values",
    ),
    BadInputCase(
        "initial state of the wrong shape",
        lambda b: _sample(b, num_chains=2, initial_state=np.ones((3, 4), np.int8)),
        InvalidRequest,
        "initial_state",
    ),
    BadInputCase(
        "initial state not spins",
        lambda b: _sample(b, num_chains=1, initial_state=np.zeros((1, 4), np.int8)),
        InvalidRequest,
        "initial_state",
    ),
    BadInputCase(
        "p-bit fields with NaN",
        lambda b: b.pbit(np.array([0.0, np.nan]), key=0),
        InvalidRequest,
        "fields",
    ),
    BadInputCase(
        "p-bit beta zero", lambda b: b.pbit(np.zeros(3), key=0, beta=0.0), InvalidRequest, "beta"
    ),
    BadInputCase(
        "categorical logits with NaN",
        lambda b: b.categorical(np.array([[0.0, np.nan]]), key=0),
        InvalidRequest,
        "logits",
    ),
    BadInputCase(
        "categorical logits +inf",
        lambda b: b.categorical(np.array([[0.0, np.inf]]), key=0),
        InvalidRequest,
        "logits",
    ),
    BadInputCase(
        "p-bit key of the wrong kind",
        lambda b: b.pbit(np.zeros(3), key=None),
        InvalidRequest,
        "key",
    ),
    BadInputCase("key of 2**80", lambda b: _sample(b, key=2**80), InvalidRequest, "key"),
    BadInputCase(
        "p-bit key of 2**64", lambda b: b.pbit(np.zeros(3), key=2**64), InvalidRequest, "key"
    ),
    BadInputCase(
        "categorical row of only -inf",
        lambda b: b.categorical(np.array([[0.0, 1.0], [-np.inf, -np.inf]]), key=0),
        InvalidRequest,
        "logits",
    ),
    BadInputCase(
        "categorical without categories",
        lambda b: b.categorical(np.zeros((2, 0)), key=0),
        InvalidRequest,
        "logits",
    ),
    BadInputCase(
        "gaussian negative size", lambda b: b.gaussian((-1,), key=0), InvalidRequest, "shape"
    ),
    BadInputCase(
        "gaussian size not an integer",
        lambda b: b.gaussian((2.5,), key=0),
        InvalidRequest,
        "shape",
    ),
    BadInputCase(
        "numpy integers in a bad edge list",
        lambda b: Topology(np.int64(3), np.array([[0, 3]], dtype=np.int64)),
        InvalidModel,
        "edges",
    ),
    BadInputCase(
        "numpy integer chains of zero",
        lambda b: _sample(b, num_chains=np.int64(0)),
        InvalidRequest,
        "num_chains",
    ),
    BadInputCase("beta True", lambda b: _sample(b, schedule=True), InvalidRequest, "beta"),
    BadInputCase("beta a string", lambda b: _sample(b, schedule="1.0"), InvalidRequest, "beta"),
    BadInputCase(
        "beta beyond float32", lambda b: _sample(b, schedule=1e39), InvalidRequest, "beta"
    ),
    BadInputCase(
        "p-bit beta beyond float32",
        lambda b: b.pbit(np.zeros(3), key=0, beta=1e39),
        InvalidRequest,
        "beta",
    ),
    BadInputCase(
        "BetaSchedule built directly with NaN",
        lambda b: _sample(b, schedule=BetaSchedule("constant", float("nan"), float("nan"))),
        InvalidRequest,
        "schedule.start",
    ),
    BadInputCase(
        "BetaSchedule built directly with a negative end",
        lambda b: _sample(b, num_samples=3, schedule=BetaSchedule("linear", 1.0, -2.0)),
        InvalidRequest,
        "schedule.end",
    ),
    BadInputCase(
        "custom BetaSchedule built directly with a zero beta",
        lambda b: _sample(b, num_samples=2, schedule=BetaSchedule("custom", 1, 1, np.ones(2) * 0)),
        InvalidRequest,
        "schedule",
    ),
    BadInputCase(
        "custom BetaSchedule without betas",
        lambda b: _sample(b, schedule=BetaSchedule("custom", 1.0, 1.0)),
        InvalidRequest,
        "schedule",
    ),
    BadInputCase(
        "complex weights",
        lambda b: _sample(b, Parameters(np.full(4, 0.5 + 1j), np.zeros(4))),
        InvalidModel,
        "weights",
    ),
    BadInputCase(
        "boolean biases",
        lambda b: _sample(b, Parameters(np.zeros(4), np.ones(4, dtype=bool))),
        InvalidModel,
        "biases",
    ),
    BadInputCase(
        "boolean edge array",
        lambda b: Topology(3, np.array([[True, False]])),
        InvalidModel,
        "edges",
    ),
    BadInputCase(
        "fractional number of categories",
        lambda b: Topology(3, [[0, 1]], num_categories=2.5),
        InvalidModel,
        "num_categories",
    ),
    BadInputCase(
        "ragged weights",
        lambda b: _sample(b, Parameters([[0.5, 0.5], [0.5]], np.zeros(4))),
        InvalidModel,
        "weights",
    ),
    BadInputCase(
        "p-bit fields of strings",
        lambda b: b.pbit(["up", "down"], key=0),
        InvalidRequest,
        "fields",
    ),
    BadInputCase(
        "p-bit fields ragged",
        lambda b: b.pbit([[0.0, 1.0], [2.0]], key=0),
        InvalidRequest,
        "fields",
    ),
    BadInputCase(
        "categorical logits complex",
        lambda b: b.categorical(np.ones((2, 3), dtype=complex), key=0),
        InvalidRequest,
        "logits",
    ),
    BadInputCase(
        "weights whose fields overflow float32",
        lambda b: _sample(b, Parameters(np.full(4, 1e38), np.zeros(4))),
        InvalidModel,
        "overflow float32",
    ),
    BadInputCase(
        "biases beyond float32",
        lambda b: _sample(b, Parameters(np.zeros(4), np.full(4, 1e300))),
        InvalidModel,
        "biases",
    ),
    # Requests beyond any machine's memory are refused before anything is allocated, with the
    # size named ("memory"), never a MemoryError, an XLA RESOURCE_EXHAUSTED or an abort.
    BadInputCase(
        "chains beyond memory", lambda b: _sample(b, num_chains=10**12), InvalidRequest, "memory"
    ),
    BadInputCase(
        "samples beyond memory",
        lambda b: _sample(b, num_chains=1000, num_samples=10**10),
        InvalidRequest,
        "memory",
    ),
    BadInputCase(
        "burn-in beyond memory", lambda b: _sample(b, burn_in=10**13), InvalidRequest, "memory"
    ),
    BadInputCase(
        "moments of chains beyond memory",
        lambda b: b.compile(_model()[0]).moments(_model()[1], key=0, num_chains=10**12),
        InvalidRequest,
        "memory",
    ),
    BadInputCase(
        "categorical chains beyond memory",
        lambda b: _categorical_sample(b, num_chains=10**12),
        InvalidRequest,
        "memory",
    ),
    BadInputCase(
        "gaussian beyond memory",
        lambda b: b.gaussian((10**7, 10**7), key=0),
        InvalidRequest,
        "memory",
    ),
    BadInputCase(
        "unknown backend name",
        lambda b: __import__("tsu_core").get_backend("no-such-backend"),
        BackendNotFound,
        "no-such-backend",
    ),
]


# How numpy 2 writes its scalars (`np.int64(0)`, `np.float32(1.5)`): not what a user wrote.
NUMPY_REPR = re.compile(r"\bnp\.\w+\(")


def check_bad_input(backend: Backend, case: BadInputCase) -> None:
    """Run one case and check the error type, that its message names the field, and that it
    prints numbers as plain values (`0`, not `np.int64(0)`)."""
    with pytest.raises(case.error) as caught:
        case.call(backend)
    message = str(caught.value)
    assert case.field in message, (
        f"{case.name}: the error message should name '{case.field}', got: {message}"
    )
    assert not NUMPY_REPR.search(message), (
        f"{case.name}: the error message prints numpy scalars (use int(x) or .tolist()): {message}"
    )
