"""Convert a trained MNIST MLP to thermal layers and watch accuracy as samples grow.

Trains `784 -> 256 (tanh) -> 10` on the first 8,000 images of the MNIST test set (the only MNIST
file in `../shared/data`), holds out the last 2,000, then replaces the hidden `Linear -> Tanh` by a
`ThermalLinear` (spins from the backend, mean tanh(Wx + b)) with `replace_linear_layers` and
reports held-out accuracy, deterministic vs thermal, for k = 1, 2, 4, ... samples. It also turns
the hidden layer into a bipartite Ising model with `convert_linear_to_ising` and reports the edges
kept at a few sparsity thresholds.

    python examples/tsu-torch/convert_mlp.py --data ../shared/data/mnist            # any backend
    python examples/tsu-torch/convert_mlp.py --quick

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch
from tqdm import tqdm

from tsu_torch import ThermalContext, convert_linear_to_ising, replace_linear_layers
from tsu_torch.data import load_mnist


def emit(what: str, config: dict, device: torch.device, value: float, unit: str) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        json.dumps({"what": what, "config": config, "device": name, "value": value, "unit": unit}),
        flush=True,
    )


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default="../shared/data/mnist", help="folder with MNIST idx files"
    )
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--quick", action="store_true", help="2 epochs, k up to 16")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(arguments.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (train_x, train_y), (test_x, test_y) = load_mnist(arguments.data)
    train_x, test_x = (torch.from_numpy(x).to(device) for x in (train_x, test_x))
    train_y, test_y = (torch.from_numpy(y.astype(np.int64)).to(device) for y in (train_y, test_y))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, arguments.hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(arguments.hidden, 10),
    ).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = 2 if arguments.quick else arguments.epochs
    for _ in tqdm(range(epochs), desc="train"):
        order = torch.randperm(len(train_x), device=device)
        for start in range(0, len(order), 100):
            rows = order[start : start + 100]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(train_x[rows]), train_y[rows]).backward()
            optimiser.step()
    config = {
        "split": "MNIST t10k: first 8000 train, last 2000 held out",
        "hidden": arguments.hidden,
        "epochs": epochs,
    }
    emit("mlp_deterministic_accuracy", config, device, accuracy(model, test_x, test_y), "fraction")

    for threshold in (0.0, 0.05, 0.1, 0.2, 0.4):
        ising = convert_linear_to_ising(model[0], sparsity_threshold=threshold, input_kind="binary")
        emit(
            "ising_edges_kept",
            {**config, "threshold": threshold, "sparsity": ising.sparsity},
            device,
            ising.num_edges,
            "edges",
        )

    context = ThermalContext(seed=arguments.seed, backend=arguments.backend)
    replaced = replace_linear_layers(model, context=context)
    config["backend"] = context.backend.name
    config["replaced"] = replaced
    for num_samples in (1, 2, 4, 8, 16) if arguments.quick else (1, 2, 4, 8, 16, 32, 64, 128):
        model[0].num_samples = num_samples
        emit(
            "mlp_thermal_accuracy",
            {**config, "num_samples": num_samples},
            device,
            accuracy(model, test_x, test_y),
            "fraction",
        )


if __name__ == "__main__":
    main()
