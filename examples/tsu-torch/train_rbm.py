"""Train a binary RBM on MNIST with persistent CD through the backend; estimate the held-out
log-likelihood with annealed importance sampling (AIS).

Data: the MNIST test set in `../shared/data/mnist`, binarised at 0.5, first 8,000 images train,
last 2,000 held out. The anchor from the literature is about -86 nats per image for a 500-hidden
RBM trained long with PCD (on the 60,000-image training set; our split is smaller). With at
most 24 hidden units the AIS estimate is printed beside the exact log Z (hidden states
enumerated).

    TSU_BACKEND=jax-sim python examples/tsu-torch/train_rbm.py --hidden 500 --epochs 100 \
        --ais-betas 10000     # held-out -91.5 nats; about 5 min on 2 CPU cores
    TSU_BACKEND=jax-sim python examples/tsu-torch/train_rbm.py --quick                    # CPU

Saves the weights with safetensors when --out is given (written atomically). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tsu_torch import ThermalContext
from tsu_torch.data import load_mnist
from tsu_torch.rbm import (
    RBM,
    PersistentContrastiveDivergence,
    ais_log_partition,
    exact_log_partition,
    log_likelihood,
)


def emit(what: str, config: dict, device: torch.device, value: float, unit: str) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        json.dumps({"what": what, "config": config, "device": name, "value": value, "unit": unit}),
        flush=True,
    )


def save(rbm: RBM, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    save_file(
        {name: value.detach().cpu().contiguous() for name, value in rbm.state_dict().items()},
        temporary,
    )
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chains", type=int, default=100, help="persistent chains")
    parser.add_argument("--sweeps", type=int, default=5, help="Gibbs sweeps per update (PCD-k)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument(
        "--optimizer", choices=["sgd", "adam"], default="adam", help="sgd: momentum 0.9"
    )
    parser.add_argument(
        "--lr-schedule",
        choices=["constant", "linear"],
        default="linear",
        help="linear: decay to zero over the run (keeps late PCD updates from outrunning the chains)",
    )
    parser.add_argument("--ais-betas", type=int, default=10000)
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--out", default=None, help="safetensors file for the weights")
    parser.add_argument("--quick", action="store_true", help="64 hidden, 1 epoch, 300 AIS betas")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if arguments.quick:
        arguments.hidden, arguments.epochs, arguments.ais_betas, arguments.ais_chains = (
            64,
            1,
            300,
            50,
        )
    torch.manual_seed(arguments.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (train_x, _), (test_x, _) = load_mnist(arguments.data)
    train = torch.from_numpy(2.0 * (train_x > 0.5) - 1).to(device)
    test = torch.from_numpy(2.0 * (test_x > 0.5) - 1).to(device)
    context = ThermalContext(seed=arguments.seed, backend=arguments.backend)
    rbm = RBM(784, arguments.hidden).to(device)
    rbm.initialise_visible_bias(train)
    trainer = PersistentContrastiveDivergence(
        rbm, context, num_chains=arguments.chains, num_sweeps=arguments.sweeps
    )
    if arguments.optimizer == "sgd":
        optimiser = torch.optim.SGD(rbm.parameters(), lr=arguments.lr, momentum=0.9)
    else:
        optimiser = torch.optim.Adam(rbm.parameters(), lr=arguments.lr)
    total_updates = arguments.epochs * -(-len(train) // arguments.batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda update: (
            1.0
            if arguments.lr_schedule == "constant"
            else max(0.0, 1.0 - update / max(total_updates, 1))
        ),
    )
    start = time.perf_counter()
    for epoch in range(arguments.epochs):
        order = torch.randperm(len(train), device=device)
        for first in tqdm(
            range(0, len(order), arguments.batch), desc=f"epoch {epoch}", leave=False
        ):
            optimiser.zero_grad()
            trainer.loss(train[order[first : first + arguments.batch]]).backward()
            optimiser.step()
            scheduler.step()
    seconds = time.perf_counter() - start
    config = {
        "backend": context.backend.name,
        "hidden": arguments.hidden,
        "epochs": arguments.epochs,
        "pcd_chains": arguments.chains,
        "pcd_sweeps": arguments.sweeps,
        "optimizer": arguments.optimizer,
        "lr": arguments.lr,
        "lr_schedule": arguments.lr_schedule,
        "ais_betas": arguments.ais_betas,
        "ais_chains": arguments.ais_chains,
        "split": "MNIST t10k binarised at 0.5: first 8000 train, last 2000 held out",
    }
    emit("rbm_train_seconds", config, device, seconds, "s")
    result = ais_log_partition(
        rbm, context, arguments.ais_betas, arguments.ais_chains, progress=True
    )
    with torch.no_grad():
        held_out = float(log_likelihood(rbm, test, result.log_partition).mean())
        train_value = float(log_likelihood(rbm, train, result.log_partition).mean())
    emit("rbm_ais_log_partition", config, device, result.log_partition, "nats")
    emit("rbm_ais_log_partition_standard_error", config, device, result.standard_error, "nats")
    if arguments.hidden <= 24:  # few hidden units: check AIS against exact enumeration
        exact = exact_log_partition(rbm)
        emit("rbm_exact_log_partition", config, device, exact, "nats")
    emit("rbm_heldout_log_likelihood", config, device, held_out, "nats per image")
    emit("rbm_train_log_likelihood", config, device, train_value, "nats per image")
    if arguments.out:
        save(rbm, Path(arguments.out))
    logging.info("mean |W| %.4f", float(np.abs(rbm.weights.detach().cpu().numpy()).mean()))


if __name__ == "__main__":
    main()
