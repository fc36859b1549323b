"""Command line: `xut-flow params | prepare | train | sample`.

A run directory is self-describing: `train` records its preset and configs in `run.json`, so
resuming `train` and `sample` need only the directory (a different `--preset` is an error).
The first SIGINT or SIGTERM during `train` saves a checkpoint at the end of the step and exits
with status 0; a second one exits at once. Errors a user can fix (no intact checkpoint, a model
that is not the run's) are one line on stderr and status 2. Orbax's and JAX's INFO logs are
shown only with `-v`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from xut_flow.checkpoints import CheckpointError
from xut_flow.config import PRESETS, ModelConfig, TrainConfig, preset
from xut_flow.run_record import RunConfigError, check_preset, read_run

ATTENTION_HELP = "attention kernel (default auto: cuDNN flash attention on NVIDIA GPUs, else XLA)"
DEFAULT_PRESET = "xut-small"
# Libraries whose INFO logs (Orbax writes through absl: a dozen lines per save) are noise to a
# user; `-v` shows them.
CHATTY_LOGGERS = ("absl", "orbax", "jax")


def _model_config(options: argparse.Namespace, base: ModelConfig) -> ModelConfig:
    """`base` with the model flags a user gave (text width, TREAD rate, attention kernel)."""
    changes = {}
    if getattr(options, "text_dim", None):
        changes["text_dim"] = options.text_dim
    if getattr(options, "tread_rate", None) is not None:
        changes["tread_rate"] = options.tread_rate
    if getattr(options, "attention", None):
        changes["attention"] = options.attention
    return base.replace(**changes)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="xut-flow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="show Orbax's and JAX's INFO logs too"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    params = commands.add_parser(
        "params", help="print a preset's parameter count", parents=[common]
    )
    params.add_argument("--preset", default="xut-small", choices=sorted(PRESETS))

    prepare = commands.add_parser(
        "prepare", help="build shards from digits / MNIST / a folder", parents=[common]
    )
    prepare.add_argument("source", help="digits | mnist:DIR | folder:DIR")
    prepare.add_argument("output")
    prepare.add_argument("--text-encoder", default="minilm", choices=["minilm", "random"])
    prepare.add_argument("--held-out", type=int, default=2000)
    prepare.add_argument("--autoencoder-steps", type=int, default=2000)

    train = commands.add_parser(
        "train", help="train (resumes from OUTPUT's checkpoints)", parents=[common]
    )
    train.add_argument("shards", nargs="+", help="shard files (.npz, .safetensors, .pt)")
    train.add_argument("--output", required=True)
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"model preset (default: the run's when resuming, else {DEFAULT_PRESET})",
    )
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

    sample = commands.add_parser(
        "sample", help="sample a grid from a trained run", parents=[common]
    )
    sample.add_argument("run", help="the training output directory")
    sample.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="model preset (default: the one the run recorded; needed only for runs without "
        "run.json)",
    )
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
    _configure_logging(options.verbose)
    try:
        _run(options)
    except (CheckpointError, RunConfigError) as error:
        print(f"xut-flow: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C outside training, where it is not a stop request
        print("xut-flow: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _run(options: argparse.Namespace) -> None:
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
        record = read_run(options.output)
        name = options.preset or (record.preset if record else None)
        if options.preset is None and record is not None:
            base = record.model  # resuming: the run's model, whatever preset it came from
        else:
            base = preset(name or DEFAULT_PRESET)
            name = name or DEFAULT_PRESET
        model = _model_config(options, base).replace(
            text_dim=dataset.text_dim, latent_channels=dataset.latent_shape[0]
        )
        result = run_training(model, config, dataset, options.output, preset_name=name)
        if result.stopped_by_signal and result.checkpoint is not None:
            print(
                f"xut-flow: stopped by {result.signal_name} at step {result.global_step}; "
                f"checkpoint saved to {result.checkpoint} (run the same command to resume)",
                file=sys.stderr,
            )
            return
        print(json.dumps({"global_step": result.global_step, "last": result.losses[-1:]}))
    elif options.command == "sample":
        _sample(options)


def _sample(options: argparse.Namespace) -> None:
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from xut_flow.checkpoints import Checkpoints
    from xut_flow.data import load_shard
    from xut_flow.model import XUT
    from xut_flow.sample import generate, save_grid

    shard = load_shard(options.shard)
    config = sample_model_config(options, shard.text_embeddings.shape[1], shard.latents.shape[1])
    graphdef, params = nnx.split(XUT(config, rngs=nnx.Rngs(0)))
    checkpoints = Checkpoints(Path(options.run) / "checkpoints", keep_steps=3)
    # The checkpoint holds (params, opt_state); the optimiser state's structure is the template.
    restored = checkpoints.restore_latest((params, _optimizer_template(params)))
    checkpoints.close()
    if restored is None:
        raise CheckpointError(f"{options.run}: no checkpoint found (is it a training --output?)")
    step, (params, _) = restored
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


def sample_model_config(
    options: argparse.Namespace, text_dim: int, latent_channels: int
) -> ModelConfig:
    """The model `sample` builds: the one the run recorded (an explicit `--preset` must be
    its preset), or for a run without `run.json` the `--preset` given, sized to the shard.

    Raises:
        RunConfigError: `--preset` is not the run's, or a run without a record and no preset.
    """
    record = read_run(options.run)
    if record is not None:
        check_preset(record, options.run, options.preset)
        return _model_config(options, record.model)
    if options.preset is None:
        raise RunConfigError(
            f"{options.run} has no run.json (trained before runs recorded their preset): "
            "pass the --preset it was trained with"
        )
    base = preset(options.preset, text_dim=text_dim, latent_channels=latent_channels)
    return _model_config(options, base)


def _optimizer_template(params):
    from xut_flow.train import make_optimizer

    return make_optimizer(TrainConfig(), preset("tiny")).init(params)


if __name__ == "__main__":
    main()
