"""Torch tensors a backend cannot read fail with tsu-core's errors, naming the argument."""

import numpy as np
import pytest
import torch

import tsu_core


def test_meta_tensors_are_refused_by_name():
    backend = tsu_core.get_backend()
    with pytest.raises(tsu_core.InvalidRequest, match="fields: .*meta tensor"):
        backend.pbit(torch.zeros(3, device="meta"), key=0)
    program = backend.compile(tsu_core.Topology(2, [[0, 1]]))
    meta = tsu_core.Parameters(torch.zeros(1, device="meta"), np.zeros(2))
    with pytest.raises(tsu_core.InvalidModel, match="weights: .*meta tensor"):
        program.sample(meta, key=0)


def test_complex_tensors_are_refused_by_name():
    backend = tsu_core.get_backend()
    with pytest.raises(tsu_core.InvalidRequest, match="logits: .*complex"):
        backend.categorical(torch.ones(2, 3, dtype=torch.complex64), key=0)
