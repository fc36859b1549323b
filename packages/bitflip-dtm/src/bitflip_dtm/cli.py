"""`bitflip-dtm train | sample | evaluate`: a thin layer over the library.

    bitflip-dtm train --preset mnist28 --data ../shared/data/mnist --out runs/mnist28
    bitflip-dtm sample --checkpoint runs/mnist28 --num-samples 64 --out samples.png
    bitflip-dtm evaluate --checkpoint runs/mnist28 --num-samples 1000 --device cpu

`train` resumes from the latest checkpoint in `--out` when there is one (flags that disagree
with the run are an error); the first SIGINT or SIGTERM saves a checkpoint at the end of the
iteration and exits, a second one exits at once. Under `torchrun --nproc-per-node N bitflip-dtm
train ...` it trains data-parallel over the batch. Every command samples on the backend that
`--backend` names (else `TSU_BACKEND`). Options follow the command (docs/cli.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import torch

import tsu_core
from bitflip_dtm.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    remove_partial_files,
    restore,
    save_checkpoint,
)
from bitflip_dtm.config import Config, ConfigError, preset
from bitflip_dtm.data import (
    bits_to_images,
    check_data,
    data_spins,
    dataset_size,
    images_to_bits,
    load_dataset,
    spins_to_bits,
)
from bitflip_dtm.extractor import ExtractorError, ensure_extractor, extractor_path
from bitflip_dtm.sample import balanced_classes, compile_program, sample
from bitflip_dtm.train import Trainer, training_memory
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
)
from tsu_core.interrupt import StopRequest

log = logging.getLogger("bitflip_dtm")
GRID_EPOCHS = (5, 10, 20, 40, 80, 160, 320, 640)
DEFAULT_PRESET = "mnist28"
# Where the data is, how long to train and how often to save: changing them on resume does not
# change what the run trains.
RESUMABLE_FIELDS = ("data_path", "iterations", "checkpoint_every")


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 8, scale: int = 1) -> Path:
    """Save images (N, C, S, S) in [0, 1] as one PNG grid (matplotlib), each pixel drawn as a
    `scale` x `scale` square."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count, channels, size, _ = images.shape
    rows = math.ceil(count / columns)
    grid = torch.ones(channels, rows * (size + 1) + 1, columns * (size + 1) + 1)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = 1 + row * (size + 1), 1 + column * (size + 1)
        grid[:, top : top + size, left : left + size] = images[index]
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    picture = grid.permute(1, 2, 0).cpu().numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if channels == 1:
        plt.imsave(path, picture[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        plt.imsave(path, picture.clip(0, 1))
    return path


def _parse_overrides(pairs: list[str]) -> dict:
    fields = {field.name: field for field in dataclasses.fields(Config)}
    changes = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in fields or not _:
            raise ConfigError(
                f"--set {pair!r}: expected FIELD=VALUE with FIELD in {sorted(fields)}"
            )
        kind = type(getattr(Config(), name))
        changes[name] = kind(text) if kind is not bool else text.lower() in ("1", "true", "yes")
    return changes


SAMPLING_FIELDS = ("sweeps_per_step", "generation_beta_start", "generation_beta_end", "readout")


def _sampling_model(arguments: argparse.Namespace):
    """The checkpoint's model, with the sampling settings `--set` changes (no others: the
    rest define what was trained)."""
    model = load_model(arguments.checkpoint, arguments.device)
    changes = _parse_overrides(arguments.set)
    other = sorted(set(changes) - set(SAMPLING_FIELDS))
    if other:
        raise ConfigError(
            f"--set {other}: only sampling settings {list(SAMPLING_FIELDS)} can change after "
            "training"
        )
    model.config = model.config.replace(**changes)
    return model


def _backend(name: str | None) -> tsu_core.Backend:
    return tsu_core.get_backend(name)


def _start(arguments: argparse.Namespace, config: Config) -> tsu_core.Backend:
    """The checks every command makes before its long work (its data set can be read, its
    backend is installed), then the line naming its device and backend; the backend."""
    check_data(config)
    backend = _backend(arguments.backend)
    device = torch.device(arguments.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    announce("bitflip-dtm", str(device), backend.name)
    return backend


def check_training_memory(config: Config, device: str, preset_name: str | None) -> None:
    """Refuse, before the data is loaded, a run whose estimated peak (`train.training_memory`)
    is more than `device` has free.

    Raises:
        Unmet: it does not fit; one line with the estimate, what is free and what to change.
    """
    count = dataset_size(config, "train")
    channels, size = config.channels, config.image_size
    require_memory(
        training_memory(config, count),
        available_memory(torch.device(device)),
        what=f"bitflip-dtm train (preset {preset_name}: {count} images of {channels}x{size}x"
        f"{size}, {config.num_steps} steps, {config.steps_per_iteration} per iteration)",
        where=device,
        fix="use a smaller --preset, or --set image_size=, num_steps=, steps_per_iteration=, "
        "fantasy_chains= or batch_size= smaller",
    )


def _start_distributed(arguments: argparse.Namespace) -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group, one GPU per rank; the rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch.distributed as distributed

    if not distributed.is_initialized():
        distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        arguments.device = f"cuda:{local}"
    return distributed.get_rank()


def resumed_config(checkpoint: Checkpoint, preset_name: str | None, changes: dict) -> Config:
    """The config a run resumes with: the checkpoint's, with `changes` to `RESUMABLE_FIELDS`.

    Raises:
        ConfigError: `preset_name` (when given) or `changes` ask for other values than the run
            has, naming each conflicting field.
    """
    stored, recorded = checkpoint.config.to_dict(), checkpoint.metadata.get("preset")
    other_preset = bool(preset_name and recorded and preset_name != recorded)
    # Another preset is named as such rather than by every field it changes.
    conflicts = [f"--preset {preset_name} (the run has {recorded})"] if other_preset else []
    whole = preset_name and not other_preset
    requested = preset(preset_name, **changes).to_dict() if whole else changes
    conflicts += [
        f"{name}={value!r} (the run has {stored[name]!r})"
        for name, value in requested.items()
        if name not in RESUMABLE_FIELDS and value != stored[name]
    ]
    if conflicts:
        raise ConfigError(
            f"{checkpoint.path.parent}: flags conflict with the run being resumed: "
            f"{', '.join(conflicts)}; drop them to resume, or start a new run (--fresh or "
            "another --out)"
        )
    return checkpoint.config.replace(
        **{name: value for name, value in changes.items() if name in RESUMABLE_FIELDS}
    )


def _agreed(trainer: Trainer, flag: bool) -> bool:
    """Whether any rank raised `flag` (every rank must stop at the same iteration)."""
    if trainer.world_size == 1:
        return flag
    value = torch.tensor([float(flag)], device=trainer.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _save_epoch_grids(trainer: Trainer, out: Path, examples: int) -> None:
    """Sample grids at the epochs of `GRID_EPOCHS` that the last iteration crossed."""
    config = trainer.config
    epoch_before = (trainer.iteration - 1) * config.batch_size / examples
    epoch_after = trainer.iteration * config.batch_size / examples
    for epoch in GRID_EPOCHS:
        if epoch_before < epoch <= epoch_after:
            result = sample(trainer.model, trainer.program, 16, key=config.seed + epoch)
            grid = bits_to_images(spins_to_bits(result.spins), config)
            save_grid(grid, out / f"epoch-{epoch:04d}.png")


def command_train(arguments: argparse.Namespace) -> None:
    rank = _start_distributed(arguments)
    out = require_writable(arguments.out, "--out")
    changes = _parse_overrides(arguments.set)
    if arguments.data:
        changes["data_path"] = arguments.data
    if arguments.iterations:
        changes["iterations"] = arguments.iterations
    if arguments.seed is not None:
        changes["seed"] = arguments.seed
    latest = None if arguments.fresh else latest_checkpoint(out)
    checkpoint = load_checkpoint(latest) if latest is not None else None
    if checkpoint is None:
        preset_name = arguments.preset or DEFAULT_PRESET
        config = preset(preset_name, **changes)
    else:
        preset_name = checkpoint.metadata.get("preset")
        config = resumed_config(checkpoint, arguments.preset, changes)
        log.info("resuming from %s (iteration %d)", latest, checkpoint.iteration)
    check_data(config)
    if not arguments.ignore_memory_check:
        check_training_memory(config, arguments.device, preset_name)
    backend = _start(arguments, config)
    images, labels = load_dataset(config, "train")
    trainer = Trainer(config, images, device=arguments.device, backend=backend, labels=labels)
    if checkpoint is not None:
        checkpoint.config = config  # differs from the stored one in RESUMABLE_FIELDS at most
        restore(trainer, checkpoint)
    if rank == 0:
        remove_partial_files(out)
    log.info("graph: %s", json.dumps(trainer.model.graph.statistics))
    started = time.perf_counter()
    interrupt = StopRequest("bitflip-dtm", unit="iteration")

    def after_iteration(trainer: Trainer, stats) -> None:
        budget = arguments.max_minutes
        over_time = bool(budget) and time.perf_counter() - started > 60 * budget
        stop = _agreed(trainer, over_time or interrupt.requested)
        if rank == 0:  # rank 0 writes grids and checkpoints
            _save_epoch_grids(trainer, out, images.shape[0])
            periodic = trainer.iteration % config.checkpoint_every == 0
            if periodic or trainer.iteration == config.iterations or stop:
                save_checkpoint(trainer, out, preset=preset_name)
        if stop:
            raise _Stop

    try:
        with interrupt:
            trainer.train(progress=True, callback=after_iteration)
    except _Stop:
        pass
    if rank:
        return
    if interrupt.requested:
        print(f"bitflip-dtm: stopped by {interrupt.signal_name} at iteration {trainer.iteration}; "
              f"checkpoint saved to {latest_checkpoint(out)} (run the same command to resume)",
              file=sys.stderr)  # fmt: skip
        return
    if trainer.iteration < config.iterations:
        log.info("time limit reached at iteration %d", trainer.iteration)
    result = sample(trainer.model, trainer.program, 64, key=config.seed, progress=True)
    path = save_grid(bits_to_images(spins_to_bits(result.spins), config), out / "final.png")
    print(json.dumps({"iterations": trainer.iteration, "seconds": time.perf_counter() - started,
                      "grid": str(path)}))  # fmt: skip


class _Stop(Exception):
    """Raised after the checkpoint of an interrupted or timed-out run is written."""


def command_sample(arguments: argparse.Namespace) -> None:
    require_writable(arguments.out, "--out", directory=False)
    model = _sampling_model(arguments)
    program = compile_program(model, _start(arguments, model.config))
    result = sample(model, program, arguments.num_samples, key=arguments.seed,
                    sweeps=arguments.sweeps, keep_intermediates=arguments.intermediates,
                    progress=True, classes=_classes(arguments, model.config))  # fmt: skip
    config = model.config
    images = bits_to_images(spins_to_bits(result.spins), config)
    columns = 10 if arguments.by_class else 8  # by class: one column per class
    path = save_grid(images, arguments.out, columns=columns, scale=arguments.scale)
    if arguments.intermediates:
        chosen = result.intermediates[:: max(1, len(result.intermediates) // 10)]
        strip = torch.stack([bits_to_images(spins_to_bits(step[:8]), config) for step in chosen], 1)
        save_grid(strip.flatten(0, 1), Path(arguments.out).with_suffix(".steps.png"), len(chosen))
    print(json.dumps({"images": arguments.num_samples, "grid": str(path)}))


def quantised(images: torch.Tensor, config: Config) -> torch.Tensor:
    """Images as the model sees them: through bits and back."""
    return bits_to_images(images_to_bits(images, config), config)


classifier_path = extractor_path  # the name benchmarks/dtm_train_fid.py imports


def classifier_for(
    config: Config,
    path: Path,
    device: str,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> Path:
    """`path`, holding the FID feature extractor of the config's quantised training images
    (`images` and `labels` when given, else loaded): reused when it was trained on them, trained
    there when missing (one line says how long it took and where it went).

    Raises:
        ExtractorError: the file at `path` was trained on other data.
    """
    if images is None:
        images, labels = load_dataset(config, "train")
        images = quantised(images, config)
    trained = ensure_extractor(path, images, labels, config.dataset, device)
    if trained is not None:
        print(f"bitflip-dtm: trained the FID feature extractor on {len(images)} {config.dataset} "
              f"images in {trained.seconds:.1f} s (training accuracy {trained.accuracy:.3f}); "
              f"saved to {path}", file=sys.stderr)  # fmt: skip
    return path


def command_evaluate(arguments: argparse.Namespace) -> None:
    from bitflip_dtm.evaluate import (
        diagnostics_table,
        fid,
        plot_diagnostics,
        quality,
        step_diagnostics,
    )

    if arguments.inception_weights is not None:
        require_module(
            "torch_fidelity",
            package="bitflip-dtm",
            extra="fid",
            needed_by="bitflip-dtm evaluate --inception-weights",
        )
        if not Path(arguments.inception_weights).is_file():
            raise Unmet(f"--inception-weights {arguments.inception_weights}: no such file")
    model = _sampling_model(arguments)
    config = model.config.replace(data_path=arguments.data) if arguments.data else model.config
    run = Path(arguments.checkpoint)
    run = run if run.is_dir() else run.parent
    require_writable(run, "--checkpoint")  # the samples, plots and feature extractor go there
    if arguments.classifier:
        require_writable(arguments.classifier, "--classifier", directory=False)
    program = compile_program(model, _start(arguments, config))
    held_out, held_out_labels = load_dataset(config, "held-out")
    if arguments.inception_weights is None:  # the extractor is checked before sampling
        chosen = Path(arguments.classifier) if arguments.classifier else extractor_path(run, config)
        train, labels = load_dataset(config, "train")
        train = quantised(train, config)
        path = classifier_for(config, chosen, arguments.device, train, labels)
    started = time.perf_counter()
    result = sample(model, program, arguments.num_samples, key=arguments.seed, progress=True,
                    classes=_classes(arguments, config))  # fmt: skip
    seconds = time.perf_counter() - started
    generated = bits_to_images(spins_to_bits(result.spins), config).cpu()
    reference = quantised(held_out[arguments.reference_start :], config)
    if arguments.inception_weights is not None:
        score = fid(generated, reference[: arguments.num_samples],
                    inception_weights=arguments.inception_weights)  # fmt: skip
    else:
        score = quality(generated, reference, train, path, arguments.device)
        save_grid(generated[:100], run / "evaluate-samples.png", columns=10, scale=2)
    print(json.dumps({"what": "quality", **score, "sampling_seconds": seconds,
                      "by_class": arguments.by_class}))  # fmt: skip
    if arguments.diagnostics:
        spins = data_spins(held_out[:64], held_out_labels[:64], config)
        rows = step_diagnostics(model, program, spins.to(arguments.device), key=arguments.seed)
        for row in rows:
            print(json.dumps({"what": "step_diagnostics", **row}))
        print(diagnostics_table(rows))
        picture = plot_diagnostics(rows, run / "diagnostics.png")
        log.info("diagnostics plot: %s", picture)


def _add_common(command: argparse.ArgumentParser) -> None:
    """`--device`, `--backend` and `-v`, taken by every subcommand. Their values are resolved after
    parsing (`parse_arguments`): a default here would overwrite one given before the
    subcommand, where old scripts put them."""
    command.add_argument(
        "--device",
        default=argparse.SUPPRESS,
        help="torch device: cpu, cuda, cuda:N (default: cuda when present, else cpu)",
    )
    command.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        help="tsu-core backend that samples (default: TSU_BACKEND, else the best installed)",
    )
    command.add_argument(
        "-v", "--verbose", action="store_true", help="show JAX's and absl's INFO logs too"
    )


def _add_sampling_changes(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"change a sampling setting ({', '.join(SAMPLING_FIELDS)}); repeatable",
    )


def _add_by_class(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--by-class",
        action="store_true",
        help="draw image i for class i mod 10 (label bits clamped: class-conditional "
        "generation, every class equally often; needs a model with label bits)",
    )


def _classes(arguments: argparse.Namespace, config: Config) -> torch.Tensor | None:
    """The classes `--by-class` asks for, or None; refused for a model without label bits."""
    if not arguments.by_class:
        return None
    if not config.label_copies:
        raise Unmet("--by-class: this model has no label bits (label_copies=0)")
    return balanced_classes(arguments.num_samples)


def _subcommand(commands, name: str, text: str) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
    _add_common(command)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitflip-dtm", description=__doc__, formatter_class=HelpFormatter
    )
    for name in ("--device", "--backend"):  # the old place, before the subcommand
        parser.add_argument(
            name,
            action=DeprecatedSpelling,
            spelling=f"{name} before the subcommand",
            replacement=f"bitflip-dtm COMMAND {name}",
        )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = _subcommand(
        commands, "train", "train a model (resumes from the latest checkpoint in --out)"
    )
    train.add_argument(
        "--preset",
        default=None,
        help=f"paper, mnist28, rgb64 or tiny (default: {DEFAULT_PRESET}; on resume, the run's)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a config field; repeatable",
    )
    train.add_argument(
        "--data", default=None, help="MNIST idx directory (sets data_path; default: the preset's)"
    )
    train.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="iterations to train (default: the preset's; on resume, the run's)",
    )
    train.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop with a checkpoint after this many minutes (default: no limit)",
    )
    train.add_argument(
        "--time-limit",
        dest="max_minutes",
        type=float,
        action=DeprecatedSpelling,
        replacement="--max-minutes",
        convert=lambda seconds: seconds / 60,
    )
    train.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the data order and of every sampling key (default: the "
        "preset's; on resume, the run's)",
    )
    train.add_argument("--out", default="runs/bitflip-dtm", help="the run directory")
    train.add_argument("--fresh", action="store_true", help="ignore checkpoints in --out")
    train.add_argument(
        IGNORE_MEMORY_FLAG,
        action="store_true",
        help="start even when the estimated memory of the run is more than the device has free",
    )
    train.set_defaults(run=command_train)
    draw = _subcommand(commands, "sample", "draw images from a checkpoint into a PNG grid")
    draw.add_argument("--checkpoint", required=True, help="a checkpoint JSON or its directory")
    draw.add_argument("--num-samples", type=int, default=64, help="images to draw")
    draw.add_argument(
        "--num",
        dest="num_samples",
        type=int,
        action=DeprecatedSpelling,
        replacement="--num-samples",
    )
    draw.add_argument(
        "--sweeps",
        type=int,
        default=None,
        help="sweeps per reverse step (default: the run's sweeps_per_step)",
    )
    draw.add_argument("--seed", type=int, default=0, help="seed of the sampling keys")
    draw.add_argument(
        "--intermediates",
        action="store_true",
        help="also write 8 images at 10 of their reverse steps beside --out (.steps.png)",
    )
    draw.add_argument("--scale", type=int, default=1, help="pixels per image pixel in the PNG")
    _add_by_class(draw)
    draw.add_argument("--out", default="samples.png", help="the PNG grid to write")
    _add_sampling_changes(draw)
    draw.set_defaults(run=command_sample)
    evaluate = _subcommand(commands, "evaluate", "FID against held-out data, and diagnostics")
    evaluate.add_argument("--checkpoint", required=True, help="a checkpoint JSON or its directory")
    evaluate.add_argument("--num-samples", type=int, default=1000, help="images to draw")
    evaluate.add_argument(
        "--classifier",
        default=None,
        help="feature extractor (default: classifier-<dataset>-<size> in the "
        "checkpoint's directory; trained and saved there if missing, refused "
        "if trained on other data)",
    )
    evaluate.add_argument(
        "--inception-weights",
        default=None,
        help="local Inception weights file: FID on Inception features "
        "(default: none, the package's own feature extractor)",
    )
    evaluate.add_argument(
        "--data", default=None, help="MNIST idx directory (default: the run's data_path)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sampling keys")
    evaluate.add_argument(
        "--diagnostics", action="store_true", help="also print per-step diagnostics and plot them"
    )
    _add_sampling_changes(evaluate)
    _add_by_class(evaluate)
    evaluate.add_argument(
        "--reference-start",
        type=int,
        default=0,
        help="the first held-out image compared against (those before it can "
        "be kept for choosing sampling settings)",
    )
    evaluate.set_defaults(run=command_evaluate)
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed, with `device` and `backend` resolved to their defaults."""
    arguments = build_parser().parse_args(argv)
    arguments.device = getattr(arguments, "device", None) or (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    arguments.backend = getattr(arguments, "backend", None)
    return arguments


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    arguments = parse_arguments(argv)
    quiet_libraries(arguments.verbose)
    try:
        arguments.run(arguments)
    except (ConfigError, CheckpointError, ExtractorError, tsu_core.TSUError, Unmet) as error:
        print(f"bitflip-dtm: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bitflip-dtm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
