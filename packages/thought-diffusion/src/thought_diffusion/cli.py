"""`thought-diffusion train | generate | evaluate | chat`: a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from thought_diffusion.config import TrainConfig, preset
from thought_diffusion.data import DEFAULT_DATA, TokenData, read_text
from thought_diffusion.generate import GenerationConfig, generate, prepare_prompt, remember
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import build_tokenizer, tokenizer_from_json
from thought_diffusion.train import evaluate, load_checkpoint, recall_accuracy, train_model

logger = logging.getLogger("thought_diffusion")


def _device(name: str | None) -> str:
    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def _add_generation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.safetensors from train")
    parser.add_argument("--length", type=int, default=64, help="tokens to generate")
    parser.add_argument("--mode", choices=["low_confidence", "threshold"], default="threshold")
    parser.add_argument(
        "--steps", type=int, default=None, help="low_confidence steps (default: length)"
    )
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--block-length", type=int, default=None)
    parser.add_argument("--cache", action="store_true", help="prefix cache (needs --block-length)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stack", default=None, help="a saved thought stack to start from")
    parser.add_argument("--device", default=None)


def _generation_config(arguments: argparse.Namespace) -> GenerationConfig:
    return GenerationConfig(
        length=arguments.length,
        mode=arguments.mode,
        steps=arguments.steps,
        threshold=arguments.threshold,
        block_length=arguments.block_length,
        cache=arguments.cache,
        temperature=arguments.temperature,
        top_k=arguments.top_k,
    )


def command_train(arguments: argparse.Namespace) -> None:
    text = read_text(arguments.data)
    tokenizer = build_tokenizer(arguments.tokenizer, text, arguments.vocab_size)
    data = TokenData(tokenizer.encode(text))
    model_config = preset(
        arguments.preset,
        vocab_size=tokenizer.vocab_size,
        use_thoughts=not arguments.no_thoughts,
        max_length=max(
            arguments.turn_length * (arguments.num_turns if arguments.context == "all" else 1),
            preset(arguments.preset).max_length,
        ),
        gradient_checkpointing=arguments.gradient_checkpointing,
    )
    train = TrainConfig(
        objective=arguments.objective,
        schedule=arguments.schedule,
        batch_size=arguments.batch_size,
        turn_length=arguments.turn_length,
        num_turns=arguments.num_turns,
        recall_probability=arguments.recall_probability,
        memory_probability=arguments.memory_probability,
        memory_facts=tuple(int(n) for n in arguments.memory_facts.split(",")),
        answer_weight=arguments.answer_weight,
        context=arguments.context,
        steps=arguments.steps,
        learning_rate=arguments.learning_rate,
        warmup_steps=min(arguments.warmup_steps, arguments.steps),
        accumulation_steps=arguments.accumulation_steps,
        precision=arguments.precision,
        progressive_steps=arguments.progressive_steps,
        eval_interval=arguments.eval_interval,
        eval_batches=arguments.eval_batches,
        checkpoint_interval=arguments.checkpoint_interval,
        max_minutes=arguments.max_minutes,
        seed=arguments.seed,
        next_thought_weight=arguments.next_thought_weight,
        reconstruction_weight=arguments.reconstruction_weight,
    )
    model, rows = train_model(
        model_config, train, data, arguments.out, tokenizer.to_json(), device=arguments.device
    )
    summary = {
        "steps": rows[-1]["step"] if rows else 0,
        "seconds": rows[-1]["seconds"] if rows else 0,
        "parameters": model.num_parameters(),
        "thought_parameters": model.num_parameters(True),
        "val_nats_per_token": rows[-1].get("val_nats") if rows else None,
        "checkpoint": str(Path(arguments.out) / "checkpoint.safetensors"),
    }
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))


def command_generate(arguments: argparse.Namespace) -> None:
    model, extra = load_checkpoint(arguments.checkpoint, _device(arguments.device))
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
    model, extra = load_checkpoint(arguments.checkpoint, _device(arguments.device))
    tokenizer = tokenizer_from_json(extra["tokenizer"])
    train = extra["train_config"]
    data = TokenData(tokenizer.encode(read_text(arguments.data)))
    result = evaluate(model, data, train, arguments.batches)
    result["recall_accuracy"] = recall_accuracy(model, data, train, arguments.batches)
    result["objective"] = train.objective
    result["use_thoughts"] = model.config.use_thoughts
    result["step"] = extra["step"]
    print(json.dumps(result))


CHAT_HELP = "commands: /save PATH, /load PATH, /reset, /stack, /help, /quit"


def command_chat(arguments: argparse.Namespace) -> None:
    """An interactive loop: each turn's prompt and answer are written to the thought stack."""
    model, extra = load_checkpoint(arguments.checkpoint, _device(arguments.device))
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
        try:
            prompt = prepare_prompt(model, tokenizer.encode(line + "\n"), config.length)
        except ValueError as error:
            print(f"(error: {error})")
            continue
        answer, _ = generate(model, prompt, config, arguments.seed + turn, stack)
        print("model> " + tokenizer.decode(answer[0].tolist()).replace("\n", "\n       "))
        if model.config.use_thoughts:
            stack = remember(model, torch.cat([prompt.to(device), answer], 1), stack)
        turn += 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thought-diffusion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a text file")
    train.add_argument("--data", default=str(DEFAULT_DATA), help="a UTF-8 text file")
    train.add_argument("--out", required=True, help="output folder (checkpoint, log.csv)")
    train.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    train.add_argument("--tokenizer", default="byte", choices=["byte", "bpe"])
    train.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size")
    train.add_argument("--objective", default="diffusion", choices=["diffusion", "autoregressive"])
    train.add_argument("--no-thoughts", action="store_true", help="the baseline without thoughts")
    train.add_argument("--schedule", default="linear", choices=["linear", "cosine"])
    train.add_argument("--steps", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--turn-length", type=int, default=64)
    train.add_argument("--num-turns", type=int, default=3)
    train.add_argument("--recall-probability", type=float, default=0.25)
    train.add_argument(
        "--memory-probability",
        type=float,
        default=0.0,
        help="fraction of sequences that are fact-recall episodes (a fact, a later question)",
    )
    train.add_argument(
        "--memory-facts", default="1", help="facts per episode, drawn from this list, e.g. 1,4"
    )
    train.add_argument(
        "--answer-weight", type=float, default=1.0, help="weight of the fact answer's loss"
    )
    train.add_argument(
        "--context",
        default="turn",
        choices=["turn", "all"],
        help="'all': the long-context twin, every earlier turn in the context (use --no-thoughts)",
    )
    train.add_argument("--learning-rate", type=float, default=3e-4)
    train.add_argument("--warmup-steps", type=int, default=100)
    train.add_argument("--accumulation-steps", type=int, default=1)
    train.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    train.add_argument("--gradient-checkpointing", action="store_true")
    train.add_argument("--progressive-steps", type=int, default=0)
    train.add_argument("--next-thought-weight", type=float, default=0.0)
    train.add_argument("--reconstruction-weight", type=float, default=0.0)
    train.add_argument("--eval-interval", type=int, default=200)
    train.add_argument("--eval-batches", type=int, default=8)
    train.add_argument("--checkpoint-interval", type=int, default=500)
    train.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock budget (0: none)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None)
    train.set_defaults(handler=command_train)

    generate_parser = commands.add_parser("generate", help="generate text after a prompt")
    generate_parser.add_argument("--prompt", required=True)
    _add_generation(generate_parser)
    generate_parser.set_defaults(handler=command_generate)

    evaluate_parser = commands.add_parser("evaluate", help="validation bound and recall accuracy")
    evaluate_parser.add_argument("--checkpoint", required=True)
    evaluate_parser.add_argument("--data", default=str(DEFAULT_DATA))
    evaluate_parser.add_argument("--batches", type=int, default=16)
    evaluate_parser.add_argument("--device", default=None)
    evaluate_parser.set_defaults(handler=command_evaluate)

    chat = commands.add_parser("chat", help="interactive chat that keeps the thought stack")
    _add_generation(chat)
    chat.set_defaults(handler=command_chat)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    arguments = build_parser().parse_args(argv)
    try:
        arguments.handler(arguments)
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        raise SystemExit(2) from error


if __name__ == "__main__":
    main()
