"""Gradient averaging over two gloo processes (launched by torchrun), against the mean computed
by hand."""

import json
import subprocess
import sys
import textwrap

import pytest

# Rank r holds gradients r + 1 and (r + 1) * [1, 2, 3], and a parameter without a gradient.
WORKER = textwrap.dedent(
    """
    import json, os, sys, torch, torch.distributed as distributed
    from tsu_core.distributed import average_gradients
    distributed.init_process_group("gloo")
    rank = distributed.get_rank()
    result = {}
    for zero_missing in (False, True):
        scalar, vector, unused = (torch.nn.Parameter(torch.zeros(n)) for n in (1, 3, 2))
        scalar.grad = torch.full((1,), rank + 1.0)
        vector.grad = (rank + 1.0) * torch.tensor([1.0, 2.0, 3.0])
        average_gradients([scalar, vector, unused], zero_missing=zero_missing)
        result[str(zero_missing)] = [
            None if p.grad is None else p.grad.tolist() for p in (scalar, vector, unused)
        ]
    with open(os.path.join(sys.argv[1], f"{rank}.json"), "w") as handle:
        json.dump(result, handle)
    distributed.destroy_process_group()
    """
)


def test_two_ranks_average_their_gradients(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    (tmp_path / "worker.py").write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    launched = subprocess.run(
        [*command, str(tmp_path / "worker.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    expected = {
        "False": [[1.5], [1.5, 3.0, 4.5], None],
        "True": [[1.5], [1.5, 3.0, 4.5], [0.0, 0.0]],
    }
    for rank in range(2):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == expected, rank
