"""The thought stack: S slots of H x W x C thoughts that persist across turns.

After a turn the model writes a new thought (and its learned importance score) from the turn's
final hidden states and pushes it. The stack keeps the S most important of its thoughts and the
new one; the least important is dropped. Ages count turns since a thought was pushed (0 is the
newest) and index the temporal embedding the text sees. Every operation is functional and
differentiable, so training backpropagates through pushes across turns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from thought_diffusion.config import ModelConfig


@dataclass(frozen=True)
class ThoughtStack:
    """A batch of thought stacks.

    Arguments:
        thoughts: (B, S, H, W, C) thought tensors; empty slots hold zeros.
        importance: (B, S) learned importance scores (logits).
        valid: (B, S) whether a slot holds a thought.
        ages: (B, S) turns since each thought was pushed (0: the newest).
    """

    thoughts: torch.Tensor
    importance: torch.Tensor
    valid: torch.Tensor
    ages: torch.Tensor

    @classmethod
    def empty(
        cls, batch_size: int, config: ModelConfig, device: torch.device | str = "cpu"
    ) -> ThoughtStack:
        shape = (batch_size, config.stack_size)
        return cls(
            thoughts=torch.zeros(
                *shape,
                config.thought_height,
                config.thought_width,
                config.thought_channels,
                device=device,
            ),
            importance=torch.zeros(shape, device=device),
            valid=torch.zeros(shape, dtype=torch.bool, device=device),
            ages=torch.zeros(shape, dtype=torch.long, device=device),
        )

    @property
    def size(self) -> int:
        return self.valid.shape[1]

    def count(self) -> torch.Tensor:
        """(B,) thoughts held."""
        return self.valid.sum(1)

    def push(
        self, thought: torch.Tensor, importance: torch.Tensor, where: torch.Tensor | None = None
    ) -> ThoughtStack:
        """Add a thought (B, H, W, C) with importance (B,); keep the S most important.

        Among the S held slots and the new thought, the S with the highest importance stay
        (empty slots rank below everything), in the order they were pushed. `where` (B,)
        bool, optional: push only in these rows; the others keep their stack unchanged.
        """
        if (
            thought.shape[0] != self.thoughts.shape[0]
            or thought.shape[1:] != self.thoughts.shape[2:]
        ):
            raise ValueError(
                f"push: expected a thought of shape {(self.thoughts.shape[0], *self.thoughts.shape[2:])}, "
                f"got {tuple(thought.shape)}"
            )
        thoughts = torch.cat([self.thoughts, thought[:, None].to(self.thoughts.dtype)], 1)
        importance = torch.cat([self.importance, importance[:, None].to(self.importance.dtype)], 1)
        valid = torch.cat([self.valid, torch.ones_like(self.valid[:, :1])], 1)
        ages = torch.cat([self.ages + self.valid.long(), torch.zeros_like(self.ages[:, :1])], 1)
        rank = torch.where(valid, importance.detach(), torch.full_like(importance, -torch.inf))
        keep = rank.topk(self.size, dim=1).indices.sort(dim=1).values  # (B, S), push order
        gather = keep[:, :, None, None, None].expand(-1, -1, *thoughts.shape[2:])
        pushed = ThoughtStack(
            thoughts=thoughts.gather(1, gather),
            importance=importance.gather(1, keep),
            valid=valid.gather(1, keep),
            ages=ages.gather(1, keep),
        )
        if where is None:
            return pushed
        return ThoughtStack(
            *(
                torch.where(where.view(-1, *[1] * (new.dim() - 1)), new, old)
                for new, old in zip(pushed.fields(), self.fields(), strict=True)
            )
        )

    def fields(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(thoughts, importance, valid, ages)."""
        return self.thoughts, self.importance, self.valid, self.ages

    @classmethod
    def concatenate(cls, stacks: list[ThoughtStack]) -> ThoughtStack:
        """The stacks' batches one after another (along the batch dimension)."""
        parts = zip(*(stack.fields() for stack in stacks), strict=True)
        return cls(*(torch.cat(part) for part in parts))

    def detach(self) -> ThoughtStack:
        return ThoughtStack(self.thoughts.detach(), self.importance.detach(), self.valid, self.ages)

    def to(self, device: torch.device | str) -> ThoughtStack:
        return ThoughtStack(*(part.to(device) for part in self.fields()))

    def save(self, path: str | Path) -> None:
        """Write the stack to a safetensors file (atomically: temp file, then rename)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        tensors = {
            "thoughts": self.thoughts.detach().float().cpu().contiguous(),
            "importance": self.importance.detach().float().cpu().contiguous(),
            "valid": self.valid.cpu().to(torch.uint8).contiguous(),
            "ages": self.ages.cpu().contiguous(),
        }
        save_file(tensors, str(temporary), metadata={"format": "thought-stack/1"})
        temporary.replace(path)

    @classmethod
    def load(
        cls, path: str | Path, config: ModelConfig, device: torch.device | str = "cpu"
    ) -> ThoughtStack:
        """Read a stack saved with `save`, checking its shape against the model's config."""
        tensors = load_file(str(path))
        expected = (
            config.stack_size,
            config.thought_height,
            config.thought_width,
            config.thought_channels,
        )
        if tuple(tensors["thoughts"].shape[1:]) != expected:
            raise ValueError(
                f"thought stack {path}: expected slots of shape (S, H, W, C) = {expected} as the "
                f"model's config says, got {tuple(tensors['thoughts'].shape[1:])}"
            )
        return cls(
            tensors["thoughts"],
            tensors["importance"],
            tensors["valid"].bool(),
            tensors["ages"].long(),
        ).to(device)

    def describe(self) -> str:
        """One line per held thought of the first stack: age and importance."""
        rows = [
            {
                "slot": slot,
                "age": int(self.ages[0, slot]),
                "importance": round(float(self.importance[0, slot]), 3),
            }
            for slot in range(self.size)
            if bool(self.valid[0, slot])
        ]
        return json.dumps(rows)
