"""Fact-recall episodes: a turn states key-value facts, a later turn asks for one value.

An episode is `num_turns` turns of `turn_length` tokens cut from ordinary text. For a memory
row, the turn `distance` turns before the last is replaced by a fact turn,
"Remember: Viola 4821, Oswald 0937.\\n" followed by the text it replaced, and the last turn
starts with the question on a line of its own, as a chat message is, and its answer:
"What is Viola's code?\\n4821.\\n". The code is four random digits, so a model that cannot
see the fact turn answers by chance (1 in 10,000). The answer's positions
are returned with the tokens: training always masks them (an extra loss on them teaches the
task), evaluation masks them and everything after and scores an exact match.

Each episode also says where its conversation starts (`Episodes.start`): the turns before
it are not part of it, so the thought reader does not write them to the stack. A chat asks its
question of a stack that holds as many thoughts as the chat had turns, fewer than a training
episode's T - 1; training on conversations that start anywhere up to the fact turn
(`history='varied'`) shows the model questions asked of stacks of every fill.

Three ways to see the earlier turns, one per model kind (`Reader`):
- 'thoughts': turns before the last are read one at a time and written to the thought stack;
- 'turn': the last turn alone (the baseline without thoughts: its floor is chance);
- 'context': every turn concatenated into one sequence (the long-context twin: the ceiling).

`repeat_accuracy` scores the same three ways on the verbatim-repeat task (the last turn
repeats the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from thought_diffusion.config import MEMORY_HISTORIES
from thought_diffusion.data import TokenData
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import Tokenizer

# Names of Shakespeare's characters, short enough for 16 facts in a 256-token turn.
NAMES = (
    "Viola", "Oswald", "Romeo", "Juliet", "Tybalt", "Portia", "Hamlet", "Ophelia", "Horatio",
    "Lear", "Edgar", "Edmund", "Goneril", "Regan", "Kent", "Iago", "Othello", "Cassio",
    "Emilia", "Bianca", "Brutus", "Cassius", "Caesar", "Antony", "Puck", "Oberon", "Titania",
    "Helena", "Hermia", "Lysander", "Bottom", "Prospero", "Ariel", "Caliban", "Miranda",
    "Falstaff", "Hal", "Hotspur", "Macbeth", "Banquo", "Duncan", "Malcolm", "Macduff",
    "Rosalind", "Celia", "Orlando", "Jaques", "Touchstone", "Beatrice", "Benedick", "Claudio",
    "Hero", "Shylock", "Bassanio", "Nerissa", "Lorenzo", "Jessica", "Leontes", "Hermione",
    "Perdita", "Paulina", "Cordelia", "Angelo", "Isabella",
)  # fmt: skip

Reader = Literal["thoughts", "turn", "context"]
History = Literal["full", "none", "varied"]


@dataclass(frozen=True)
class Episodes:
    """A batch of episodes.

    Arguments:
        tokens: (B, T, L) token ids.
        answer: (B, L) the answer's positions in the last turn (all False for plain rows).
        distance: (B,) turns from the fact turn to the last (0 for plain rows).
        start: (B,) the conversation's first turn; the turns before it are not part of it.
    """

    tokens: torch.Tensor
    answer: torch.Tensor
    distance: torch.Tensor
    start: torch.Tensor

    def to(self, device: torch.device | str) -> Episodes:
        return Episodes(
            self.tokens.to(device),
            self.answer.to(device),
            self.distance.to(device),
            self.start.to(device),
        )


class FactRecall:
    """Makes fact-recall episodes from a tokenizer and a text's token ids.

    Arguments:
        tokenizer: encodes the facts and questions (any tokenizer; pieces are encoded apart).
        data: the ordinary text that fills the turns (train and validation splits).
        turn_length: L, tokens per turn.
        num_turns: T, turns per episode (distances up to T - 1).
    """

    def __init__(
        self, tokenizer: Tokenizer, data: TokenData, turn_length: int, num_turns: int
    ) -> None:
        if num_turns < 2:
            raise ValueError(f"fact recall needs at least 2 turns per episode, got {num_turns}")
        self.tokenizer, self.data = tokenizer, data
        self.turn_length, self.num_turns = turn_length, num_turns

    def _encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode(text), dtype=torch.long)

    def _write(self, turn: torch.Tensor, pieces: list[torch.Tensor]) -> int:
        """Overwrite the start of `turn` with the pieces; returns where they end."""
        position = 0
        for piece in pieces:
            position += len(piece)
            if position > self.turn_length:
                raise ValueError(
                    f"fact recall: {position} tokens of facts or question do not fit a turn of "
                    f"{self.turn_length}; use longer turns or fewer facts"
                )
            turn[position - len(piece) : position] = piece
        return position

    def episodes(
        self,
        split: str,
        batch_size: int,
        generator: torch.Generator,
        facts: int | tuple[int, ...] = 1,
        distance: int | None = None,
        probability: float = 1.0,
        repeat_probability: float = 0.0,
        history: History = "full",
    ) -> Episodes:
        """(B, T, L) episodes; each row a memory episode with `probability`, else plain text.

        `facts`: the facts per episode (a tuple: drawn uniformly per row); `distance`: turns
        from the fact turn to the question (None: drawn uniformly from 1..T-1);
        `repeat_probability`: plain rows whose last turn repeats the first
        (`TokenData.batch`'s verbatim-repeat task); `history`: where a memory row's
        conversation starts: 'full' at the first turn, 'none' at the fact turn, 'varied' at a
        turn drawn uniformly up to the fact turn (plain rows always start at the first turn).
        """
        if history not in MEMORY_HISTORIES:
            raise ValueError(f"history: expected one of {MEMORY_HISTORIES}, got {history!r}")
        counts = (facts,) if isinstance(facts, int) else tuple(facts)
        if max(counts) > len(NAMES) or min(counts) < 1:
            raise ValueError(f"facts per episode must lie in [1, {len(NAMES)}], got {counts}")
        if distance is not None and not 1 <= distance < self.num_turns:
            raise ValueError(
                f"distance must lie in [1, {self.num_turns - 1}] for {self.num_turns} turns, "
                f"got {distance}"
            )
        tokens = self.data.batch(
            split, batch_size, self.num_turns, self.turn_length, generator, repeat_probability
        )
        answer = torch.zeros(batch_size, self.turn_length, dtype=torch.bool)
        distances = torch.zeros(batch_size, dtype=torch.long)
        starts = torch.zeros(batch_size, dtype=torch.long)
        uniforms = torch.rand(batch_size, generator=generator)
        for row in range(batch_size):
            if uniforms[row] >= probability:
                continue
            count = counts[int(torch.randint(len(counts), (), generator=generator))]
            gap = distance or int(torch.randint(1, self.num_turns, (), generator=generator))
            names = torch.randperm(len(NAMES), generator=generator)[:count].tolist()
            codes = torch.randint(10_000, (count,), generator=generator).tolist()
            asked = int(torch.randint(count, (), generator=generator))
            listing = ", ".join(f"{NAMES[n]} {c:04d}" for n, c in zip(names, codes, strict=True))
            self._write(tokens[row, -1 - gap], [self._encode(f"Remember: {listing}.\n")])
            question = self._encode(f"What is {NAMES[names[asked]]}'s code?\n")
            value = self._encode(f"{codes[asked]:04d}")
            self._write(tokens[row, -1], [question, value, self._encode(".\n")])
            start = len(question)
            answer[row, start : start + len(value)] = True
            distances[row] = gap
            fact_turn = self.num_turns - 1 - gap
            if history == "none":
                starts[row] = fact_turn
            elif history == "varied":
                starts[row] = int(torch.randint(fact_turn + 1, (), generator=generator))
        return Episodes(tokens, answer, distances, starts)


def answer_inputs(tokens: torch.Tensor, answer: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The last turn as the model sees the question: the answer and all after it masked."""
    after = answer.long().cumsum(1) > 0
    return torch.where(after, torch.full_like(tokens, mask_id), tokens)


@torch.no_grad()
def answer_logits(model: torch.nn.Module, episodes: Episodes, reader: Reader) -> torch.Tensor:
    """Logits (B, L, V) of the last turn with its answer masked, the earlier turns read by
    `reader` (see the module docstring)."""
    config = model.config
    tokens = episodes.tokens
    last = answer_inputs(tokens[:, -1], episodes.answer, config.mask_id)
    if reader == "context":
        if bool(episodes.start.any()):
            raise ValueError("the long-context reader sees every earlier turn: start must be 0")
        context = tokens[:, :-1].flatten(1)
        logits, _, _ = model(torch.cat([context, last], 1))
        return logits[:, context.shape[1] :]
    if reader == "turn":
        return model(last)[0]
    stack = ThoughtStack.empty(tokens.shape[0], config, tokens.device)
    for turn in range(tokens.shape[1] - 1):
        stack = model.remember(tokens[:, turn], stack, where=episodes.start <= turn)
    return model(last, model.read(stack))[0]


@torch.no_grad()
def recall_rate(
    model: torch.nn.Module,
    task: FactRecall,
    reader: Reader,
    facts: int,
    distance: int,
    num_episodes: int,
    batch_size: int = 64,
    seed: int = 0,
    history: History = "full",
) -> float:
    """Exact-match accuracy of the asked value (every answer token right, read in one step
    by argmax) over `num_episodes` validation episodes with a fixed seed; `history` as in
    `FactRecall.episodes` ('none': the fact turn opens the conversation)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    correct = total = 0
    while total < num_episodes:
        size = min(batch_size, num_episodes - total)
        episodes = task.episodes(
            "validation", size, generator, facts, distance, history=history
        ).to(device)
        predicted = answer_logits(model, episodes, reader).argmax(-1)
        right = (predicted == episodes.tokens[:, -1]) | ~episodes.answer
        correct += int(right.all(1).sum())
        total += size
    model.train(was_training)
    return correct / total


@torch.no_grad()
def repeat_accuracy(
    model: torch.nn.Module,
    data: TokenData,
    reader: Reader,
    num_turns: int,
    turn_length: int,
    num_episodes: int,
    batch_size: int = 64,
    seed: int = 4321,
) -> float:
    """Token accuracy on the verbatim-repeat task: the last of `num_turns` validation turns
    repeats the first and is fully masked; every position is read in one step by argmax.
    Only memory of the first turn can do better than the text statistics."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    correct = total = 0
    while total < num_episodes * turn_length:
        size = min(batch_size, num_episodes - total // turn_length)
        tokens = data.recall_episodes(size, num_turns, turn_length, generator)
        answer = torch.ones(size, turn_length, dtype=torch.bool)
        distance = torch.full((size,), num_turns - 1)
        episodes = Episodes(tokens, answer, distance, torch.zeros_like(distance)).to(device)
        predicted = answer_logits(model, episodes, reader).argmax(-1)
        correct += int((predicted == episodes.tokens[:, -1]).sum())
        total += predicted.numel()
    model.train(was_training)
    return correct / total
