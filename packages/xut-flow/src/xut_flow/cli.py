"""Command line: `xut-flow params | prepare | train | sample`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from xut_flow.config import PRESETS, TrainConfig, preset

ATTENTION_HELP = "attention kernel (default auto: cuDNN flash attention on NVIDIA GPUs, else XLA)"


def _model_config(options: argparse.Namespace):
    changes = {}
    if getattr(options, "text_dim", None):
        changes["text_dim"] = options.text_dim
    if getattr(options, "tread_rate", None) is not None:
        changes["tread_rate"] = options.tread_rate
    if getattr(options, "attention", None):
        changes["attention"] = options.attention
    return preset(options.preset, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xut-flow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    params = commands.add_parser("params", help="print a preset's parameter count")
    params.add_argument("--preset", default="xut-small", choices=sorted(PRESETS))

    prepare = commands.add_parser("prepare", help="build shards from digits / MNIST / a folder")
    prepare.add_argument("source", help="digits | mnist:DIR | folder:DIR")
    prepare.add_argument("output")
    prepare.add_argument("--text-encoder", default="minilm", choices=["minilm", "random"])
    prepare.add_argument("--held-out", type=int, default=2000)
    prepare.add_argument("--autoencoder-steps", type=int, default=2000)

    train = commands.add_parser("train", help="train (resumes from OUTPUT's checkpoints)")
    train.add_argument("shards", nargs="+", help="shard files (.npz, .safetensors, .pt)")
    train.add_argument("--output", required=True)
    train.add_argument("--preset", default="xut-small", choices=sorted(PRESETS))
    train.add_argument("--tread-rate", type=float)
    train.add_argument("--attention", choices=["auto", "xla", "cudnn"], help=ATTENTION_HELP)
    train.add_argument("--stream", action="store_true", help="stream shards instead of preloading")
    for name, field in TrainConfig.__dataclass_fields__.items():
        if field.type in ("int", "float", "str") or name in ("noise_source", "parameter_sharding"):
            kind = {"int": int, "float": float}.get(field.type, str)
            train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=field.default)
    train.add_argument("--max-steps", type=int)
    train.add_argument("--max-seconds", type=float)
    train.add_argument("--num-devices", type=int)
    train.add_argument("--distributed", action="store_true")

    sample = commands.add_parser("sample", help="sample a grid from a trained run")
    sample.add_argument("run", help="the training output directory")
    sample.add_argument("--preset", default="xut-small", choices=sorted(PRESETS))
    sample.add_argument("--text-dim", type=int)
    sample.add_argument("--attention", choices=["auto", "xla", "cudnn"], help=ATTENTION_HELP)
    sample.add_argument("--shard", required=True, help="shard whose text embeddings to use")
    sample.add_argument("--count", type=int, default=16)
    sample.add_argument("--steps", type=int, default=50)
    sample.add_argument("--method", default="euler", choices=["euler", "heun"])
    sample.add_argument("--cfg-scale", type=float, default=3.0)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--noise-source", default="tsu", choices=["tsu", "jax"])
    sample.add_argument("--autoencoder", help="autoencoder.safetensors to decode latents")
    sample.add_argument("--out", default="samples.png")

    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if options.command == "params":
        from xut_flow.model import parameter_count

        print(
            json.dumps(
                {"preset": options.preset, "parameters": parameter_count(preset(options.preset))}
            )
        )
    elif options.command == "prepare":
        from xut_flow.prepare import build_shards

        build_shards(
            options.source,
            options.output,
            text_encoder=options.text_encoder,
            held_out=options.held_out,
            autoencoder_steps=options.autoencoder_steps,
        )
    elif options.command == "train":
        from xut_flow.data import ShardDataset
        from xut_flow.train import train as run_training

        dataset = ShardDataset(options.shards, preload=not options.stream, seed=options.seed)
        values = {
            name: getattr(options, name)
            for name in TrainConfig.__dataclass_fields__
            if hasattr(options, name)
        }
        config = TrainConfig(**values)
        model = _model_config(options).replace(
            text_dim=dataset.text_dim, latent_channels=dataset.latent_shape[0]
        )
        result = run_training(model, config, dataset, options.output)
        print(json.dumps({"global_step": result.global_step, "last": result.losses[-1:]}))
    elif options.command == "sample":
        _sample(options)


def _sample(options: argparse.Namespace) -> None:
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from xut_flow.data import load_shard
    from xut_flow.model import XUT
    from xut_flow.sample import generate, save_grid
    from xut_flow.train import Checkpoints

    shard = load_shard(options.shard)
    config = preset(
        options.preset,
        text_dim=shard.text_embeddings.shape[1],
        latent_channels=shard.latents.shape[1],
    )
    graphdef, params = nnx.split(XUT(config, rngs=nnx.Rngs(0)))
    checkpoints = Checkpoints(Path(options.run) / "checkpoints", keep_steps=3)
    step = checkpoints.latest()
    if step is None:
        raise SystemExit(f"{options.run}: no checkpoint found")
    # The checkpoint holds (params, opt_state); the optimiser state's structure is the template.
    template = (params, _optimizer_template(params))
    params, _ = checkpoints.restore(step, template)
    checkpoints.close()
    model = nnx.merge(graphdef, params)
    text = jnp.asarray(shard.text_embeddings[: options.count])
    latents = generate(
        model,
        text,
        tuple(shard.latents.shape[2:]) + (shard.latents.shape[1],),
        steps=options.steps,
        method=options.method,
        cfg_scale=options.cfg_scale,
        seed=options.seed,
        noise_source=options.noise_source,
    )
    images = np.asarray(latents)[..., 0]
    if options.autoencoder:
        from xut_flow.autoencoder import load_autoencoder

        images = np.asarray(load_autoencoder(options.autoencoder).decode(latents))
    save_grid(images, options.out, columns=int(np.ceil(np.sqrt(options.count))))
    print(json.dumps({"checkpoint_step": step, "grid": options.out}))


def _optimizer_template(params):
    from xut_flow.train import make_optimizer

    return make_optimizer(TrainConfig(), preset("tiny")).init(params)


if __name__ == "__main__":
    main()
