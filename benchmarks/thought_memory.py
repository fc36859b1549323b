"""Does the thought stack remember? Fact recall of the thought model between its floor and ceiling.

Three models of one body train for the same number of steps on the same mixture, so they see
the same tokens:

- `thought`: each turn read alone; earlier turns written to the thought stack;
- `baseline`: the same body without thoughts, the current turn alone (its floor is chance,
  1 in 10,000 for a four-digit code);
- `twin`: the baseline's body with every earlier turn of the episode in its context (the
  ceiling: ordinary attention over the whole history).

The mixture: episodes of `--num-turns` turns of Shakespeare (`../shared/data/tinyshakespeare.txt`),
a fraction `--memory-probability` of them fact-recall episodes (`thought_diffusion.memory`: a turn
states "Remember: Viola 4821, ...", the last turn asks "What is Viola's code?" 1 to T-1 turns
later), a fraction `--repeat-probability` of the rest verbatim repeats (the last turn repeats
the first). Then, per model, on the validation text with fixed seeds:

- `fact_recall`: exact match of the asked code, read in one step, at each distance x facts;
  for the thought model also with the fact turn opening the conversation (`history: none`,
  as in a chat fewer turns old than an episode);
- `repeat_accuracy`: token accuracy of a fully masked last turn that repeats the first;
- `val_perplexity_bound`: the MDLM bound on plain validation text;
- `generation`: at the largest distance, time per generated token (answering the question,
  one token per model call, block cache for the twin's long prompt), the peak GPU memory of
  that call, and the bytes of state that carry the earlier turns (the thought memory's keys and
  values; the twin's key/value cache of its context).

    python benchmarks/thought_memory.py --model thought --out out/tm      # H200, one per model
    python benchmarks/thought_memory.py --quick                           # CPU, a minute

Prints JSON lines: {"what", "config", "device", "value", "unit"}.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from _jsonl import emit_torch

from thought_diffusion import GenerationConfig, TokenData, TrainConfig, generate, preset, read_text
from thought_diffusion.generate import remember
from thought_diffusion.memory import FactRecall, recall_rate, repeat_accuracy
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import evaluate, memory_reader, train_model

MODELS = ("thought", "baseline", "twin")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def generation_cost(model, task: FactRecall, reader: str, distance: int, repeats: int) -> dict:
    """Seconds and peak memory per generated token answering a question `distance` turns after
    its fact, and the bytes of state that carry the earlier turns."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(7)
    episode = task.episodes("validation", 1, generator, 1, distance).to(device)
    tokens, answer = episode.tokens[0], episode.answer[0]
    question = tokens[-1][: int(answer.nonzero()[0])]
    length = 8
    config = GenerationConfig(length=length, block_length=length, cache=True, temperature=0.0)
    stack, prompt = None, question[None]
    if reader == "thoughts":
        stack = ThoughtStack.empty(1, model.config, device)
        for turn in tokens[:-1]:
            stack = remember(model, turn[None], stack)
        memory_tokens = 1 + stack.size * model.config.thought_tokens
        state = memory_tokens * model.config.width * 2 * model.config.depth
    elif reader == "context":
        prompt = torch.cat([tokens[:-1].flatten(), question])[None]
        state = tokens[:-1].numel() * model.config.width * 2 * model.config.depth
    else:
        state = 0
    element = 2 if torch.cuda.is_available() else 4  # bf16 on the GPU, float32 on the CPU
    generate(model, prompt, config, 0, stack)  # warm-up
    seconds = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    for repeat in range(repeats):
        synchronize()
        start = time.perf_counter()
        generate(model, prompt, config, repeat, stack)
        synchronize()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - before if torch.cuda.is_available() else None
    return {
        "seconds_per_token": statistics.median(seconds) / length,
        "peak_bytes_per_call": peak,
        "state_bytes": state * element,
        "prompt_tokens": prompt.shape[1],
    }


def run(name: str, arguments: argparse.Namespace, text: str) -> None:
    tokenizer = ByteTokenizer()
    data = TokenData(tokenizer.encode(text))
    turns, length = arguments.num_turns, arguments.turn_length
    model_config = preset(
        arguments.preset,
        vocab_size=tokenizer.vocab_size,
        use_thoughts=name == "thought",
        max_length=length * (turns if name == "twin" else 1),
        **{key: int(value) for key, value in (item.split("=") for item in arguments.model_set)},
    )
    train = TrainConfig(
        batch_size=arguments.batch_size,
        turn_length=length,
        num_turns=turns,
        recall_probability=arguments.repeat_probability,
        memory_probability=arguments.memory_probability,
        memory_facts=tuple(int(n) for n in arguments.train_facts.split(",")),
        memory_history=arguments.memory_history,
        answer_weight=arguments.answer_weight,
        written_tokens_weight=arguments.written_tokens_weight,
        context="all" if name == "twin" else "turn",
        steps=arguments.steps,
        warmup_steps=min(arguments.warmup_steps, arguments.steps),
        learning_rate=arguments.learning_rate,
        max_minutes=arguments.minutes,
        eval_interval=arguments.eval_interval,
        eval_batches=arguments.eval_batches,
        checkpoint_interval=10**9,
        precision="bf16" if torch.cuda.is_available() else "fp32",
        seed=arguments.seed,
    )
    output = Path(arguments.out) / name
    for stale in ("log.csv", "checkpoint.safetensors"):
        (output / stale).unlink(missing_ok=True)  # a fresh run, never a resumed one
    model, rows = train_model(model_config, train, data, output, tokenizer.to_json(), resume=False)
    model.eval()
    task = FactRecall(tokenizer, data, length, turns)
    reader = memory_reader(model, train)
    config = {
        "model": name,
        "preset": arguments.preset,
        "parameters": model.num_parameters(),
        "thought_parameters": model.num_parameters(True),
        "steps": rows[-1]["step"],
        "train_seconds": rows[-1]["seconds"],
        "tokens_seen": rows[-1]["step"] * arguments.batch_size * turns * length,
        "batch_size": arguments.batch_size,
        "turns": f"{turns}x{length}",
        "memory_probability": arguments.memory_probability,
        "train_facts": arguments.train_facts,
        "memory_history": arguments.memory_history,
        "answer_weight": arguments.answer_weight,
        "written_tokens_weight": arguments.written_tokens_weight,
        "learning_rate": arguments.learning_rate,
        "model_set": arguments.model_set,
    }
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=torch.cuda.is_available())
    with autocast:
        bound = evaluate(model, data, train, arguments.eval_batches)["perplexity"]
        emit_torch("val_perplexity_bound", config, bound, "perplexity")
        # 'full': every turn of the episode before the question; 'none': the fact turn opens
        # the conversation, as in a chat fewer turns old than an episode (thoughts only).
        histories = ("full", "none") if reader == "thoughts" else ("full",)
        for facts, distance, history in itertools.product(
            (int(n) for n in arguments.facts.split(",")),
            (int(d) for d in arguments.distances.split(",")),
            histories,
        ):
            try:
                value = recall_rate(
                    model, task, reader, facts, distance, arguments.episodes, history=history
                )
            except ValueError as error:  # more turns needed, or the facts do not fit
                logging.warning("fact recall, %d facts at distance %d: %s", facts, distance, error)
                continue
            where = {"facts": facts, "distance": distance, "history": history}
            emit_torch("fact_recall", config | where, value, "exact")
        repeat = repeat_accuracy(model, data, reader, turns, length, arguments.episodes)
        emit_torch("repeat_accuracy", config | {"distance": turns - 1}, repeat, "token accuracy")
        cost = generation_cost(model, task, reader, turns - 1, arguments.repeats)
    for key, value in cost.items():
        emit_torch(f"generation_{key}", config | {"distance": turns - 1}, value, key)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all", choices=[*MODELS, "all"])
    parser.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
    parser.add_argument("--out", default="out/thought-memory")
    parser.add_argument("--preset", default="small")
    parser.add_argument(
        "--model-set", nargs="*", default=[], help="model config overrides, e.g. width=256"
    )
    parser.add_argument("--steps", type=int, default=4000, help="the same for every model")
    parser.add_argument("--minutes", type=float, default=0.0, help="a time cap (0: none)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--turn-length", type=int, default=256)
    parser.add_argument("--num-turns", type=int, default=9, help="distances up to this - 1")
    parser.add_argument("--memory-probability", type=float, default=0.5)
    parser.add_argument("--repeat-probability", type=float, default=0.1)
    parser.add_argument("--train-facts", default="1,4,16", help="facts per training episode")
    parser.add_argument("--answer-weight", type=float, default=1.0, help="of the answer's loss")
    parser.add_argument(
        "--memory-history",
        default="varied",
        choices=["varied", "full"],
        help="where a training episode's conversation starts (TrainConfig.memory_history)",
    )
    parser.add_argument(
        "--written-tokens-weight",
        type=float,
        default=TrainConfig.written_tokens_weight,
        help="TrainConfig.written_tokens_weight (the thought model)",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--eval-interval", type=int, default=10**9)
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--distances", default="1,2,4,8")
    parser.add_argument("--facts", default="1,4,16")
    parser.add_argument("--episodes", type=int, default=256, help="per recall figure")
    parser.add_argument("--repeats", type=int, default=5, help="timed generations (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny CPU run (about a minute)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.preset, arguments.steps, arguments.batch_size = "tiny", 4, 4
        arguments.turn_length, arguments.num_turns, arguments.episodes = 64, 3, 8
        arguments.eval_batches, arguments.repeats, arguments.warmup_steps = 2, 1, 2
        arguments.train_facts, arguments.facts, arguments.distances = "1,2", "1,2", "1,2"
        if arguments.out == "out/thought-memory":  # never overwrite a real run's checkpoints
            arguments.out = "out/thought-memory-quick"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    text = read_text(arguments.data)
    for name in MODELS if arguments.model == "all" else (arguments.model,):
        run(name, arguments, text)


if __name__ == "__main__":
    main()
