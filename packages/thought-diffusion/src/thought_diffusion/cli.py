"""`thought-diffusion train | generate | evaluate | chat`: a thin layer over the library.

    thought-diffusion train --data text.txt --out runs/td --max-minutes 8
    thought-diffusion generate --checkpoint runs/td/checkpoint.safetensors --prompt "ROMEO:"

`train` resumes from the newest intact checkpoint in `--out` when there is one: the run's
stored settings apply, and a flag that disagrees with them is an error naming it (only the
budget and reporting flags, `--data`, `--device` and `--backend` may change). The first SIGINT
or SIGTERM saves a checkpoint at the end of the step and exits with status 0; a second one exits
at once. Options follow the command (docs/cli.md); an error is one line on stderr, status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

import tsu_core
from thought_diffusion.checkpoint import NEWEST, Checkpoint, latest_intact, read_checkpoint
from thought_diffusion.config import MEMORY_HISTORIES, PRESETS, ModelConfig, TrainConfig, preset
from thought_diffusion.data import TokenData, read_text
from thought_diffusion.generate import GenerationConfig, generate, prepare_prompt, remember
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import build_tokenizer, tokenizer_from_json
from thought_diffusion.train import evaluate, recall_accuracy, train_model, training_memory
from tsu_core.cli_convention import (
    IGNORE_MEMORY_FLAG,
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
from tsu_core.interrupt import StopRequest

logger = logging.getLogger("thought_diffusion")

# `train`'s flags that are not TrainConfig fields, with their values for a new run (the
# TrainConfig fields' defaults are the dataclass's).
RUN_DEFAULTS: dict[str, Any] = {
    "preset": "tiny",
    "tokenizer": "byte",
    "vocab_size": 4096,
    "no_thoughts": False,
    "gradient_checkpointing": False,
}
# Flags that may change when a run resumes: how long it trains, how often it saves and reports,
# memory traded for compute, where the data file is and which device and backend run it. Any
# other flag would change what the run trains.
RESUMABLE = (
    "steps",
    "max_minutes",
    "checkpoint_interval",
    "eval_interval",
    "eval_batches",
    "gradient_checkpointing",
    "data",
    "device",
    "backend",
)
TRAIN_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))


def _device(name: str | None) -> str:
    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def check_memory(model_config: ModelConfig, train: TrainConfig, device: str) -> None:
    """Refuse, before any training, a run whose estimated peak (`train.training_memory`) is
    more than `device` has free.

    Raises:
        Unmet: it does not fit; one line with the estimate, what is free and what to change.
    """
    half = torch.device(device).type == "cuda" and train.precision in ("bf16", "fp16")
    require_memory(
        training_memory(model_config, train, half),
        available_memory(torch.device(device)),
        what=f"thought-diffusion train (batch {train.batch_size} x {train.num_turns} turns x "
        f"{train.turn_length} tokens, width {model_config.width}, depth {model_config.depth})",
        where=device,
        fix="use a smaller --batch-size, --turn-length or --num-turns, --gradient-checkpointing "
        "or a smaller --preset",
    )


def _require_tokenizer(kind: str, needed_by: str) -> None:
    """Check that a tokenizer of `kind` can be built here: BPE needs the [bpe] extra."""
    if kind == "bpe":
        require_module("tokenizers", package="thought-diffusion", extra="bpe", needed_by=needed_by)


def _require_file(path: str | Path, option: str) -> None:
    if not Path(path).is_file():
        raise Unmet(f"{option} {path}: no such file")


def _load(arguments: argparse.Namespace, command: str) -> tuple[Any, dict]:
    """The checkpoint's model on the chosen device and the rest of the checkpoint, after
    checking what the command needs and printing where it runs. Generation names the backend
    that draws tokens; evaluation draws none."""
    _require_file(arguments.checkpoint, "--checkpoint")
    checkpoint = read_checkpoint(arguments.checkpoint)
    kind = json.loads(checkpoint.tokenizer)["kind"]
    _require_tokenizer(kind, f"thought-diffusion {command} on a run with a BPE tokenizer")
    if getattr(arguments, "stack", None):
        _require_file(arguments.stack, "--stack")
    if getattr(arguments, "data", None):
        _require_file(arguments.data, "--data")
    device = _device(arguments.device)
    backend = tsu_core.get_backend().name if command in ("generate", "chat") else None
    announce("thought-diffusion", device, backend)
    return checkpoint.model(device), checkpoint.extra()


def _add_placement(parser: argparse.ArgumentParser) -> None:
    """`--device`, `--backend` and `-v`, which every subcommand takes."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show JAX's and absl's INFO logs too"
    )
    parser.add_argument(
        "--device", help="torch device: cpu, cuda, cuda:N (default: cuda when present, else cpu)"
    )
    parser.add_argument(
        "--backend",
        help="tsu-core backend that draws tokens (default: TSU_BACKEND, else the best installed)",
    )


def _add_generation(parser: argparse.ArgumentParser, length_help: str | None = None) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.safetensors from train")
    parser.add_argument(
        "--length",
        type=int,
        default=None if length_help else 64,
        help=length_help or "tokens to generate",
    )
    parser.add_argument(
        "--mode",
        choices=["low_confidence", "threshold"],
        default="threshold",
        help="low_confidence: --steps steps, most confident tokens first; threshold: commit "
        "every token more confident than --threshold",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="low_confidence steps (default: --length)"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.9, help="confidence at which threshold commits"
    )
    parser.add_argument(
        "--block-length",
        type=int,
        default=None,
        help="generate in blocks of this many tokens (default: one block)",
    )
    parser.add_argument("--cache", action="store_true", help="prefix cache (needs --block-length)")
    parser.add_argument(
        "--temperature", type=float, default=0.8, help="0: the most likely token; > 0: draw at 1/T"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="draw from the k most likely tokens only (default: all tokens)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument(
        "--stack",
        default=None,
        help="a saved thought stack to start from (default: an empty stack)",
    )
    _add_placement(parser)


def _generation_config(arguments: argparse.Namespace) -> GenerationConfig:
    return GenerationConfig(
        length=arguments.length or 1,  # chat without --length sets it per turn
        mode=arguments.mode,
        steps=arguments.steps,
        threshold=arguments.threshold,
        block_length=arguments.block_length,
        cache=arguments.cache,
        temperature=arguments.temperature,
        top_k=arguments.top_k,
    )


def _flag(name: str, value: Any) -> str:
    """A flag as a user types it: `--learning-rate 0.001`, `--memory-facts 1,4`."""
    if isinstance(value, tuple):
        value = ",".join(str(item) for item in value)
    return f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}")


def _architecture(config: ModelConfig) -> tuple:
    return (
        config.width,
        config.depth,
        config.num_heads,
        config.thought_height,
        config.thought_width,
        config.thought_channels,
        config.stack_size,
    )


def resume_conflicts(checkpoint: Checkpoint, given: dict[str, Any]) -> list[str]:
    """The flags given on resume (`given`: only those the user typed) that disagree with the run
    in `checkpoint`, each with the run's value; flags in `RESUMABLE` never conflict."""
    stored: dict[str, Any] = dataclasses.asdict(checkpoint.train_config)
    stored["tokenizer"] = json.loads(checkpoint.tokenizer)["kind"]
    stored["no_thoughts"] = not checkpoint.model_config.use_thoughts
    if "vocab_size" in checkpoint.run:
        stored["vocab_size"] = checkpoint.run["vocab_size"]
    conflicts = []
    name = given.get("preset")
    recorded = checkpoint.run.get("preset")
    if name is not None and recorded is not None and name != recorded:
        conflicts.append(f"--preset {name} (the run has {recorded})")
    elif name is not None and _architecture(PRESETS[name]) != _architecture(
        checkpoint.model_config
    ):
        conflicts.append(f"--preset {name} (the run's model is not {name})")
    for key, value in given.items():
        if key in RESUMABLE or key not in stored or value == stored[key]:
            continue
        if key == "no_thoughts":
            conflicts.append("--no-thoughts (the run has thoughts)")
        else:
            conflicts.append(f"{_flag(key, value)} (the run has {_flag(key, stored[key])})")
    return conflicts


def _new_run(given: dict[str, Any]) -> tuple[ModelConfig, TrainConfig, Any, dict[str, Any]]:
    """Model config, train config, tokenizer and run record of a run started from `given`."""
    if "data" not in given:
        raise ValueError("a new run needs --data PATH: a UTF-8 text file to train on")
    settings = {**RUN_DEFAULTS, **given}
    train = TrainConfig(**{key: given[key] for key in TRAIN_FIELDS if key in given})
    text = read_text(settings["data"])
    tokenizer = build_tokenizer(settings["tokenizer"], text, settings["vocab_size"])
    model_config = preset(
        settings["preset"],
        vocab_size=tokenizer.vocab_size,
        use_thoughts=not settings["no_thoughts"],
        max_length=max(
            train.turn_length * (train.num_turns if train.context == "all" else 1),
            preset(settings["preset"]).max_length,
        ),
        gradient_checkpointing=settings["gradient_checkpointing"],
    )
    run = {
        "preset": settings["preset"],
        "tokenizer": settings["tokenizer"],
        "data": settings["data"],
    }
    if settings["tokenizer"] == "bpe":
        run["vocab_size"] = settings["vocab_size"]
    return model_config, train, tokenizer, run


def _resumed_run(
    checkpoint: Checkpoint, given: dict[str, Any]
) -> tuple[ModelConfig, TrainConfig, Any, dict[str, Any]]:
    """The stored run's settings, with the `RESUMABLE` flags in `given` applied.

    Raises:
        ValueError: other flags in `given` disagree with the run, naming each.
    """
    conflicts = resume_conflicts(checkpoint, given)
    if conflicts:
        raise ValueError(
            f"{checkpoint.path.parent}: flags conflict with the run being resumed (step "
            f"{checkpoint.step}): {', '.join(conflicts)}; drop them to resume, or train into "
            "another --out"
        )
    changes = {key: given[key] for key in TRAIN_FIELDS if key in given and key in RESUMABLE}
    train = dataclasses.replace(checkpoint.train_config, **changes)
    model_config = dataclasses.replace(
        checkpoint.model_config,
        gradient_checkpointing=given.get(
            "gradient_checkpointing", checkpoint.model_config.gradient_checkpointing
        ),
    )
    data = given.get("data", checkpoint.run.get("data"))
    if data is None:
        raise ValueError(f"{checkpoint.path.parent}: the run records no data file; pass --data")
    run = {**checkpoint.run, "data": data}
    return model_config, train, tokenizer_from_json(checkpoint.tokenizer), run


def command_train(arguments: argparse.Namespace) -> None:
    out = require_writable(arguments.out, "--out")
    given = {
        key: value
        for key, value in vars(arguments).items()
        if key not in ("command", "handler", "out", "verbose", "ignore_memory_check")
    }
    checkpoint = latest_intact(out)
    kind = (
        json.loads(checkpoint.tokenizer)["kind"]
        if checkpoint is not None
        else given.get("tokenizer", RUN_DEFAULTS["tokenizer"])
    )
    _require_tokenizer(kind, "thought-diffusion train --tokenizer bpe")
    data = given.get("data", checkpoint.run.get("data") if checkpoint is not None else None)
    if data is not None:
        _require_file(data, "--data")
    if checkpoint is None:
        model_config, train, tokenizer, run = _new_run(given)
    else:
        model_config, train, tokenizer, run = _resumed_run(checkpoint, given)
    if not getattr(arguments, "ignore_memory_check", False):
        check_memory(model_config, train, _device(given.get("device")))
    announce("thought-diffusion", _device(given.get("device")))
    data = TokenData(tokenizer.encode(read_text(run["data"])))
    with StopRequest("thought-diffusion") as interrupt:
        model, rows = train_model(
            model_config,
            train,
            data,
            out,
            tokenizer.to_json(),
            device=given.get("device"),
            stop=lambda: interrupt.requested,
            checkpoint=checkpoint,
            run=run,
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if interrupt.requested and rows and rows[-1]["step"] < train.steps:
        print(
            f"thought-diffusion: stopped by {interrupt.signal_name} at step {rows[-1]['step']}; "
            f"checkpoint saved to {out / NEWEST} (run the same command to resume)",
            file=sys.stderr,
        )
        return
    summary = {
        "steps": rows[-1]["step"] if rows else 0,
        "seconds": rows[-1]["seconds"] if rows else 0,
        "parameters": model.num_parameters(),
        "thought_parameters": model.num_parameters(True),
        "val_nats_per_token": rows[-1].get("val_nats") if rows else None,
        "checkpoint": str(out / NEWEST),
    }
    print(json.dumps(summary))


def command_generate(arguments: argparse.Namespace) -> None:
    model, extra = _load(arguments, "generate")
    model.eval()
    tokenizer = tokenizer_from_json(extra["tokenizer"])
    stack = ThoughtStack.load(arguments.stack, model.config) if arguments.stack else None
    prompt = tokenizer.encode(arguments.prompt)
    config = _generation_config(arguments)
    started = time.perf_counter()
    tokens, counts = generate(model, prompt, config, arguments.seed, stack)
    seconds = time.perf_counter() - started
    print(arguments.prompt + tokenizer.decode(tokens[0].tolist()))
    logger.info(
        "%d tokens in %.2f s (%d model calls)", config.length, seconds, counts["model_calls"]
    )


def command_evaluate(arguments: argparse.Namespace) -> None:
    model, extra = _load(arguments, "evaluate")
    tokenizer = tokenizer_from_json(extra["tokenizer"])
    train = extra["train_config"]
    path = arguments.data or extra.get("run", {}).get("data")
    if path is None:
        raise ValueError(f"{arguments.checkpoint}: the run records no data file; pass --data")
    data = TokenData(tokenizer.encode(read_text(path)))
    result = evaluate(model, data, train, arguments.batches)
    result["recall_accuracy"] = recall_accuracy(model, data, train, arguments.batches)
    result["objective"] = train.objective
    result["use_thoughts"] = model.config.use_thoughts
    result["step"] = extra["step"]
    print(json.dumps(result))


CHAT_HELP = "commands: /save PATH, /load PATH, /reset, /stack, /help, /quit"


def command_chat(arguments: argparse.Namespace) -> None:
    """An interactive loop: each turn's prompt and answer are written to the thought stack."""
    model, extra = _load(arguments, "chat")
    model.eval()
    device = next(model.parameters()).device
    tokenizer = tokenizer_from_json(extra["tokenizer"])
    config = _generation_config(arguments)
    stack = (
        ThoughtStack.load(arguments.stack, model.config, device)
        if arguments.stack
        else ThoughtStack.empty(1, model.config, device)
    )
    print(
        f"thought-diffusion chat ({'with' if model.config.use_thoughts else 'without'} thoughts). {CHAT_HELP}"
    )
    turn = 0
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            break
        if not sys.stdin.isatty():
            print(line)  # piped input: echo it so the output reads as the session's transcript
        command = line.strip()
        if not command:
            print("(empty message: type some text, or /help)")
            continue
        if command in ("/quit", "/exit"):
            break
        if command == "/help":
            print(CHAT_HELP)
            continue
        if command == "/reset":
            stack = ThoughtStack.empty(1, model.config, device)
            print("(thought stack cleared)")
            continue
        if command == "/stack":
            print(f"(thoughts held: {stack.describe()})")
            continue
        if command.startswith(("/save", "/load")):
            parts = command.split(maxsplit=1)
            if len(parts) != 2:
                print(f"(usage: {parts[0]} PATH)")
                continue
            try:
                if parts[0] == "/save":
                    stack.save(parts[1])
                    print(f"(thought stack saved to {parts[1]})")
                else:
                    stack = ThoughtStack.load(parts[1], model.config, device)
                    print(
                        f"(thought stack loaded from {parts[1]}: {int(stack.count()[0])} thoughts)"
                    )
            except (OSError, ValueError) as error:
                print(f"(error: {error})")
            continue
        ids = tokenizer.encode(line + "\n")
        length = arguments.length
        if length is None:
            length = extra["train_config"].turn_length - len(ids)
            if length < 1:
                print(
                    f"(error: the message is {len(ids)} tokens; this model's turns are "
                    f"{extra['train_config'].turn_length}: shorten it, or pass --length)"
                )
                continue
        try:
            prompt = prepare_prompt(model, ids, length)
        except ValueError as error:
            print(f"(error: {error})")
            continue
        config = dataclasses.replace(config, length=length)
        answer, _ = generate(model, prompt, config, arguments.seed + turn, stack)
        print("model> " + tokenizer.decode(answer[0].tolist()).replace("\n", "\n       "))
        if model.config.use_thoughts:
            stack = remember(model, torch.cat([prompt.to(device), answer], 1), stack)
        turn += 1


def _facts(text: str) -> tuple[int, ...]:
    """`--memory-facts 1,4` as a tuple."""
    return tuple(int(item) for item in text.split(","))


# What each `train` flag does; `_show_defaults` appends its default.
TRAIN_HELP = {
    "preset": "model size",
    "tokenizer": "byte: one token per byte; bpe: a BPE vocabulary learnt from --data",
    "vocab_size": "BPE vocabulary size",
    "objective": "diffusion: the masked-diffusion bound; autoregressive: the baseline",
    "schedule": "the mask schedule",
    "steps": "total steps; a resumed run may be given more",
    "batch_size": "sequences per step",
    "turn_length": "tokens per turn",
    "num_turns": "turns per sequence; a thought is written after each but the last",
    "recall_probability": "fraction of sequences whose last turn repeats the first",
    "memory_probability": "fraction of sequences that are fact-recall episodes: a fact, then a "
    "question about it",
    "memory_facts": "facts per episode, drawn from this list, e.g. 1,4",
    "memory_history": "where a fact-recall conversation starts: varied, anywhere up to the fact "
    "turn (a question is asked of stacks of every fill, as in a chat); full, the first turn",
    "answer_weight": "weight of the fact answer's loss",
    "context": "all: the long-context twin, every earlier turn in the context; use it "
    "with --no-thoughts",
    "learning_rate": "peak learning rate (after warmup; cosine decay to a tenth of it)",
    "warmup_steps": "steps of linear learning-rate warmup",
    "accumulation_steps": "batches whose gradients are averaged into one step",
    "precision": "bf16 autocasts on CUDA",
    "progressive_steps": "steps over which the largest mask ratio ramps up to 1; 0: no ramp",
    "next_thought_weight": "weight of the next-thought prediction loss",
    "reconstruction_weight": "weight of the thought reconstruction loss",
    "written_tokens_weight": "weight of the loss that ties a thought's cells to its turn's tokens",
    "eval_interval": "steps between validation bounds",
    "eval_batches": "batches per validation bound",
    "checkpoint_interval": "steps between checkpoints",
    "max_minutes": "wall-clock budget in minutes, then a checkpoint and a stop; 0: none",
    "seed": "seed of the initial weights, the data order and the masks",
}


def _show_defaults(train: argparse.ArgumentParser) -> None:
    """Append each `train` flag's new-run default to its help (the parser's own defaults are
    suppressed, so that a flag the user did not type is absent, not a conflict on resume)."""
    defaults = {**dataclasses.asdict(TrainConfig()), **RUN_DEFAULTS}
    for action in train._actions:
        if action.dest in defaults and not isinstance(action, argparse._StoreTrueAction):
            value = _flag(action.dest, defaults[action.dest]).split(" ", 1)[-1]
            action.help = f"{action.help or ''} (default: {value}; on resume, the run's)".lstrip()


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a model on a text file (resumes the run in --out)",
        description="Train a model on a text file; resume the run in --out when it holds one.",
        formatter_class=HelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    train.add_argument(
        "--data",
        help="a UTF-8 text file (required for a new run; default on resume: the run's file)",
    )
    train.add_argument("--out", required=True, help="the run directory (checkpoint, log.csv)")
    train.add_argument("--preset", choices=sorted(PRESETS), help=TRAIN_HELP["preset"])
    train.add_argument("--tokenizer", choices=["byte", "bpe"], help=TRAIN_HELP["tokenizer"])
    train.add_argument("--vocab-size", type=int, help=TRAIN_HELP["vocab_size"])
    train.add_argument(
        "--objective", choices=["diffusion", "autoregressive"], help=TRAIN_HELP["objective"]
    )
    train.add_argument("--no-thoughts", action="store_true", help="the baseline without thoughts")
    train.add_argument("--schedule", choices=["linear", "cosine"], help=TRAIN_HELP["schedule"])
    for name in ("steps", "batch_size", "turn_length", "num_turns"):
        train.add_argument(f"--{name.replace('_', '-')}", type=int, help=TRAIN_HELP[name])
    for name in ("recall_probability", "memory_probability"):
        train.add_argument(f"--{name.replace('_', '-')}", type=float, help=TRAIN_HELP[name])
    train.add_argument("--memory-facts", type=_facts, help=TRAIN_HELP["memory_facts"])
    train.add_argument(
        "--memory-history", choices=MEMORY_HISTORIES, help=TRAIN_HELP["memory_history"]
    )
    train.add_argument("--answer-weight", type=float, help=TRAIN_HELP["answer_weight"])
    train.add_argument("--context", choices=["turn", "all"], help=TRAIN_HELP["context"])
    train.add_argument("--learning-rate", type=float, help=TRAIN_HELP["learning_rate"])
    train.add_argument("--warmup-steps", type=int, help=TRAIN_HELP["warmup_steps"])
    train.add_argument("--accumulation-steps", type=int, help=TRAIN_HELP["accumulation_steps"])
    train.add_argument(
        "--precision", choices=["bf16", "fp16", "fp32"], help=TRAIN_HELP["precision"]
    )
    train.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (less memory, more compute)",
    )
    train.add_argument("--progressive-steps", type=int, help=TRAIN_HELP["progressive_steps"])
    for name in ("next_thought_weight", "reconstruction_weight", "written_tokens_weight"):
        train.add_argument(f"--{name.replace('_', '-')}", type=float, help=TRAIN_HELP[name])
    for name in ("eval_interval", "eval_batches", "checkpoint_interval"):
        train.add_argument(f"--{name.replace('_', '-')}", type=int, help=TRAIN_HELP[name])
    train.add_argument("--max-minutes", type=float, help=TRAIN_HELP["max_minutes"])
    train.add_argument("--seed", type=int, help=TRAIN_HELP["seed"])
    train.add_argument(
        IGNORE_MEMORY_FLAG,
        action="store_true",
        help="start even when the estimated memory of a step is more than the device has free",
    )
    _add_placement(train)
    _show_defaults(train)
    train.set_defaults(handler=command_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thought-diffusion", description=__doc__, formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands)

    generate_parser = commands.add_parser(
        "generate",
        help="generate text after a prompt",
        description="Generate text after a prompt.",
        formatter_class=HelpFormatter,
    )
    generate_parser.add_argument("--prompt", required=True, help="the text to continue")
    _add_generation(generate_parser)
    generate_parser.set_defaults(handler=command_generate)

    evaluate_parser = commands.add_parser(
        "evaluate",
        help="validation bound and recall accuracy",
        description="Print a checkpoint's validation bound and recall accuracy as JSON.",
        formatter_class=HelpFormatter,
    )
    evaluate_parser.add_argument(
        "--checkpoint", required=True, help="a checkpoint.safetensors from train"
    )
    evaluate_parser.add_argument(
        "--data", default=None, help="a UTF-8 text file (default: the one the run trained on)"
    )
    evaluate_parser.add_argument("--batches", type=int, default=16, help="batches to average")
    _add_placement(evaluate_parser)
    evaluate_parser.set_defaults(handler=command_evaluate)

    chat = commands.add_parser(
        "chat",
        help="interactive chat that keeps the thought stack",
        description="Chat with a checkpoint; each turn is written to the thought stack. "
        f"{CHAT_HELP}.",
        formatter_class=HelpFormatter,
    )
    _add_generation(
        chat,
        length_help="tokens the model answers with (default: enough to make each turn, your "
        "message and the answer, as long as a training turn, so its thought has the layout the "
        "model learned to read)",
    )
    chat.set_defaults(handler=command_chat)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    arguments = build_parser().parse_args(argv)
    quiet_libraries(getattr(arguments, "verbose", False))
    try:
        use_backend(getattr(arguments, "backend", None))
        arguments.handler(arguments)
    except (ValueError, FileNotFoundError, tsu_core.TSUError, Unmet) as error:
        print(f"thought-diffusion: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C outside training, where it is not a stop request
        print("thought-diffusion: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
