"""Gradient averaging over two gloo processes, against the mean computed by hand."""

import json
import subprocess
import sys
import textwrap

import pytest

# Each rank is a fresh interpreter; rank r holds gradients r + 1 and (r + 1) * [1, 2, 3].
WORKER = textwrap.dedent(
    """
    import json, sys, torch, torch.distributed as distributed
    from tsu_core.distributed import average_gradients
    rank, init_file = int(sys.argv[1]), sys.argv[2]
    distributed.init_process_group("gloo", init_method="file://" + init_file, rank=rank,
                                   world_size=2)
    result = {}
    for zero_missing in (False, True):
        scalar, vector, unused = (torch.nn.Parameter(torch.zeros(n)) for n in (1, 3, 2))
        scalar.grad = torch.full((1,), rank + 1.0)
        vector.grad = (rank + 1.0) * torch.tensor([1.0, 2.0, 3.0])
        average_gradients([scalar, vector, unused], zero_missing=zero_missing)
        result[str(zero_missing)] = [
            None if p.grad is None else p.grad.tolist() for p in (scalar, vector, unused)
        ]
    print(json.dumps(result))
    distributed.destroy_process_group()
    """
)


def test_two_ranks_average_their_gradients(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = tmp_path / "init"
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(init)], stdout=subprocess.PIPE, text=True
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in ranks]
    assert [process.returncode for process in ranks] == [0, 0]
    expected = {
        "False": [[1.5], [1.5, 3.0, 4.5], None],
        "True": [[1.5], [1.5, 3.0, 4.5], [0.0, 0.0]],
    }
    assert [json.loads(output) for output in outputs] == [expected, expected]
