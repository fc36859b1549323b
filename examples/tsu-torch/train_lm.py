"""Train TinyThermoLM (sampled attention and gates) and the same model with exact softmax
attention on the same text, and report validation perplexity (characters, last 10% of the text).

    python examples/tsu-torch/train_lm.py --data ../shared/data/tinyshakespeare.txt --steps 3000 \\
        --embed 256 --layers 4 --heads 8 --length 128 --batch 64            # GPU, TSU_BACKEND=jax-sim
    python examples/tsu-torch/train_lm.py --quick                           # CPU, ~ 2 min

The thermal model is evaluated twice: sampling as trained (k keys per query, sampled gates) and
with exact attention and gates (its expectation). Prints JSON lines and a generated sample.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch
from tqdm import tqdm

from tsu_torch import ThermalContext
from tsu_torch.lm import CharacterData, LMConfig, TinyThermoLM, perplexity


def emit(what: str, config: dict, device: torch.device, value: float, unit: str) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        json.dumps({"what": what, "config": config, "device": name, "value": value, "unit": unit}),
        flush=True,
    )


def set_exact(model: TinyThermoLM, exact: bool) -> None:
    for block in model.blocks:
        block.attention.exact = exact
        block.thermal = not exact


def train(
    thermal: bool, data: CharacterData, arguments: argparse.Namespace, device: torch.device
) -> None:
    torch.manual_seed(arguments.seed)
    config = LMConfig(
        vocab_size=data.vocab_size,
        context_length=arguments.length,
        embed_dim=arguments.embed,
        num_heads=arguments.heads,
        num_layers=arguments.layers,
        thermal=thermal,
        attention_samples=arguments.samples,
    )
    context = ThermalContext(seed=arguments.seed, backend=arguments.backend)
    model = TinyThermoLM(config, context).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=arguments.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(arguments.seed)
    start = time.perf_counter()
    for step in tqdm(range(arguments.steps), desc="thermal" if thermal else "exact"):
        batch = data.batch("train", arguments.batch, arguments.length, generator).to(device)
        optimiser.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        optimiser.step()
        if step % 200 == 0:
            logging.info("step %d loss %.3f", step, float(loss.detach()))
    seconds = time.perf_counter() - start
    summary = {
        "model": "TinyThermoLM" if thermal else "exact-softmax baseline",
        "backend": context.backend.name,
        "steps": arguments.steps,
        "batch": arguments.batch,
        "length": arguments.length,
        "embed": arguments.embed,
        "layers": arguments.layers,
        "heads": arguments.heads,
        "attention_samples": arguments.samples if thermal else None,
        "split": "characters, first 90% train / last 10% validation",
    }
    model.eval()
    emit(
        "lm_validation_perplexity",
        {**summary, "evaluated": "as trained"},
        device,
        perplexity(model, data, arguments.length),
        "perplexity",
    )
    if thermal:
        set_exact(model, True)
        emit(
            "lm_validation_perplexity",
            {**summary, "evaluated": "exact attention and gates"},
            device,
            perplexity(model, data, arguments.length),
            "perplexity",
        )
        set_exact(model, False)
    emit("lm_train_seconds", summary, device, seconds, "s")
    prompt = data.validation[:16].view(1, -1).to(device)
    logging.info("sample: %r", data.decode(model.generate(prompt, 120)[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8, help="keys sampled per query")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--model", choices=["both", "thermal", "exact"], default="both")
    parser.add_argument("--quick", action="store_true", help="200 steps, 16 x 32 windows")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if arguments.quick:
        arguments.steps, arguments.batch, arguments.length = 200, 16, 32
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with open(arguments.data, encoding="utf-8") as handle:
        data = CharacterData(handle.read())
    for thermal in (True, False):
        if arguments.model == "both" or arguments.model == ("thermal" if thermal else "exact"):
            train(thermal, data, arguments, device)


if __name__ == "__main__":
    main()
