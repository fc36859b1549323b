"""Fact-recall episodes and their scoring, checked against a reading of the text itself."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from thought_diffusion.config import TrainConfig
from thought_diffusion.data import TokenData, generated_text
from thought_diffusion.diffusion import diffusion_terms
from thought_diffusion.memory import NAMES, FactRecall, answer_inputs, recall_rate
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import training_batch

TOKENIZER = ByteTokenizer()
FACT = re.compile(r"Remember: ((?:\w+ \d{4}, )*\w+ \d{4})\.\n")
QUESTION = re.compile(r"What is (\w+)'s code\?\n")


def _task(turn_length: int = 64, num_turns: int = 4) -> FactRecall:
    data = TokenData(TOKENIZER.encode(generated_text(3000)))
    return FactRecall(TOKENIZER, data, turn_length, num_turns)


def _facts(turn: torch.Tensor) -> dict[str, str] | None:
    """The facts a turn states, read from its text (None: not a fact turn)."""
    match = FACT.match(TOKENIZER.decode(turn.tolist()))
    if match is None:
        return None
    return dict(item.split(" ") for item in match.group(1).split(", "))


def test_episodes_state_the_fact_distance_turns_before_the_question():
    task = _task()
    generator = torch.Generator().manual_seed(0)
    episodes = task.episodes("train", 32, generator, facts=(1, 3), probability=0.75)
    assert episodes.tokens.shape == (32, 4, 64)
    memory_rows = 0
    for row in range(32):
        distance = int(episodes.distance[row])
        last = episodes.tokens[row, -1]
        if distance == 0:  # a plain row: no question, no answer
            assert not episodes.answer[row].any()
            assert QUESTION.match(TOKENIZER.decode(last.tolist())) is None
            continue
        memory_rows += 1
        assert 1 <= distance <= 3
        facts = _facts(episodes.tokens[row, -1 - distance])
        assert facts is not None and len(facts) in (1, 3)
        assert set(facts) <= set(NAMES)
        for turn in range(3):  # no other earlier turn states facts
            if turn != 3 - distance:
                assert _facts(episodes.tokens[row, turn]) is None
        asked = QUESTION.match(TOKENIZER.decode(last.tolist())).group(1)
        answer = TOKENIZER.decode(last[episodes.answer[row]].tolist())
        assert answer == facts[asked]
    assert 16 <= memory_rows <= 32


def test_a_conversation_starts_at_or_before_its_fact_turn():
    task = _task(turn_length=48, num_turns=5)
    for history in ("full", "none", "varied"):
        episodes = task.episodes(
            "train", 400, torch.Generator().manual_seed(3), probability=0.75, history=history
        )
        fact_turn = 4 - episodes.distance
        memory = episodes.distance > 0
        assert not episodes.start[~memory].any()  # plain rows: the whole episode
        if history == "full":
            assert not episodes.start.any()
        elif history == "none":
            assert torch.equal(episodes.start[memory], fact_turn[memory])
        else:
            assert (episodes.start <= fact_turn).all()
            # every start up to the fact turn is drawn, for each fact turn
            for turn in range(4):
                drawn = set(episodes.start[memory & (fact_turn == turn)].tolist())
                assert drawn == set(range(turn + 1))


def test_episodes_reject_what_does_not_fit():
    with pytest.raises(ValueError, match="do not fit a turn"):
        _task(turn_length=64).episodes("train", 4, torch.Generator().manual_seed(0), facts=16)
    with pytest.raises(ValueError, match="distance must lie in"):
        _task().episodes("train", 4, torch.Generator().manual_seed(0), distance=4)
    with pytest.raises(ValueError, match="at least 2 turns"):
        _task(num_turns=1)
    sixteen = _task(turn_length=256).episodes(
        "train", 2, torch.Generator().manual_seed(0), facts=16, distance=2
    )
    assert len(_facts(sixteen.tokens[0, 1])) == 16


def test_answer_inputs_mask_the_answer_and_everything_after():
    tokens = torch.arange(10)[None]
    answer = torch.zeros(1, 10, dtype=torch.bool)
    answer[0, 4:6] = True
    assert answer_inputs(tokens, answer, 99).tolist() == [[0, 1, 2, 3] + [99] * 6]


class _Reader(torch.nn.Module):
    """Answers fact questions by parsing the text (`read=True`) or says 0000 (`read=False`):
    an independent implementation of recall, to check the scoring."""

    def __init__(self, read: bool) -> None:
        super().__init__()
        self.read_text = read
        self.config = SimpleNamespace(mask_id=TOKENIZER.mask_id, use_thoughts=False)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens: torch.Tensor):
        logits = torch.zeros(*tokens.shape, TOKENIZER.vocab_size)
        for row in range(tokens.shape[0]):
            ids = [int(t) for t in tokens[row] if int(t) != TOKENIZER.mask_id]
            text = TOKENIZER.decode(ids)
            facts = {}
            for match in FACT.finditer(text):
                facts |= dict(item.split(" ") for item in match.group(1).split(", "))
            asked = list(QUESTION.finditer(text))
            code = facts.get(asked[-1].group(1), "0000") if asked and self.read_text else "0000"
            start = asked[-1].end() if asked else 0
            for offset, digit in enumerate(TOKENIZER.encode(code)):
                logits[row, start + offset, digit] = 1.0
        return logits, None, None


def test_recall_rate_is_one_for_a_reader_of_the_context_and_chance_without_it():
    task = _task(turn_length=48, num_turns=3)
    assert recall_rate(_Reader(True), task, "context", 1, 2, 16) == 1.0
    assert recall_rate(_Reader(True), task, "turn", 1, 2, 16) == 0.0  # the fact is not visible
    assert recall_rate(_Reader(False), task, "context", 1, 1, 16) == 0.0


def test_training_batch_for_the_long_context_twin_is_one_turn_of_every_turn():
    train = TrainConfig(
        batch_size=6, turn_length=48, num_turns=3, memory_probability=1.0, memory_history="full"
    )
    task = _task(turn_length=48, num_turns=3)
    turns, answer, start = training_batch(task.data, task, train, torch.Generator().manual_seed(1))
    assert not start.any()
    flat, flat_answer, flat_start = training_batch(
        task.data, task, TrainConfig(**{**train.__dict__, "context": "all"}),
        torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert flat.shape == (6, 1, 144) and flat_answer.shape == (6, 144) and flat_start is None
    assert torch.equal(flat[:, 0], turns.flatten(1))
    assert torch.equal(flat_answer[:, 96:], answer) and not flat_answer[:, :96].any()


def test_the_answer_is_always_masked_and_scored(tiny_config):
    config = tiny_config(vocab_size=TOKENIZER.vocab_size, max_length=48)
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(config)
    episodes = _task(turn_length=48, num_turns=2).episodes(
        "train", 4, torch.Generator().manual_seed(2)
    )
    last, answer = episodes.tokens[:, -1], episodes.answer
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    # t near 0: the schedule masks (almost) nothing, yet the answer is masked and scored.
    t = torch.full((4,), 1e-6)
    elbo, answer_nats = diffusion_terms(model, last, "linear", t=t, answer=answer)
    assert torch.equal(seen[0] == config.mask_id, answer)
    logits, _, _ = model(torch.where(answer, config.mask_id, last))
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), last, reduction="none")
    assert torch.allclose(answer_nats, (expected * answer).sum(1), atol=1e-5)
    assert torch.equal(elbo, torch.zeros(4))
