"""Data-parallel training over two gloo processes keeps every rank's parameters identical."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as distributed

import tsu_core
from bitflip_dtm.config import preset
from bitflip_dtm.data import load_dataset
from bitflip_dtm.train import Trainer

CHANGES = {"num_steps": 2, "latents_per_patch": 2, "fantasy_chains": 4, "batch_size": 4}

# Each rank is a fresh interpreter (no fork of a process that may hold a JAX runtime). The
# gradient averaging does not depend on the backend, so the workers use the reference backend.
WORKER = textwrap.dedent(
    """
    import json, sys, torch, torch.distributed as distributed, tsu_core
    from bitflip_dtm.config import preset
    from bitflip_dtm.data import load_dataset
    from bitflip_dtm.train import Trainer
    rank, init_file, out, changes = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    torch.set_num_threads(1)
    distributed.init_process_group("gloo", init_method="file://" + init_file, rank=rank,
                                   world_size=2)
    config = preset("tiny", **changes)
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=tsu_core.get_backend("reference"))
    trainer.train(iterations=2)
    torch.save({k: v.detach() for k, v in trainer.model.state_dict().items()}, f"{out}/{rank}.pt")
    distributed.destroy_process_group()
    """
)


def test_two_ranks_stay_in_step(tmp_path):
    if not distributed.is_available():
        pytest.skip("torch.distributed is not available")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = tmp_path / "init"
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(init), str(tmp_path), json.dumps(CHANGES)]
        )
        for rank in range(2)
    ]
    assert [process.wait(timeout=240) for process in ranks] == [0, 0]
    first, second = torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt")
    for name in first:
        assert torch.equal(first[name], second[name]), name
    # The averaged update differs from rank 0 training alone (its own gradient only).
    config = preset("tiny", **CHANGES)
    images, _ = load_dataset(config)
    alone = Trainer(config, images, backend=tsu_core.get_backend("reference"))
    alone.train(iterations=2)
    assert any(
        not torch.equal(value.detach(), first[name])
        for name, value in alone.model.state_dict().items()
    )
