"""The thought stack keeps the S most important thoughts; save/load round trip."""

from __future__ import annotations

import pytest
import torch

from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.thoughts import ThoughtStack


def test_push_keeps_the_most_important(tiny_config):
    config = tiny_config(stack_size=4)
    generator = torch.Generator().manual_seed(0)
    batch, pushes = 3, 12
    importances = torch.randn(pushes, batch, generator=generator)
    stack = ThoughtStack.empty(batch, config)
    shape = (config.thought_height, config.thought_width, config.thought_channels)
    for index in range(pushes):
        # Thought number `index` is filled with its own index, so it can be identified.
        thought = torch.full((batch, *shape), float(index))
        stack = stack.push(thought, importances[index])
        held = min(index + 1, config.stack_size)
        for row in range(batch):
            expected = sorted(
                importances[: index + 1, row].topk(held).indices.tolist()
            )  # brute force: the `held` most important of all pushed so far, in push order
            valid = stack.valid[row]
            kept = stack.thoughts[row, valid, 0, 0, 0].long().tolist()
            assert kept == expected
            assert int(valid.sum()) == held
            assert stack.ages[row, valid].tolist() == [index - k for k in expected]
            assert torch.equal(stack.importance[row, valid], importances[expected, row])


def test_push_is_differentiable(tiny_config):
    config = tiny_config()
    stack = ThoughtStack.empty(2, config)
    thought = torch.randn(
        2, config.thought_height, config.thought_width, config.thought_channels, requires_grad=True
    )
    importance = torch.zeros(2, requires_grad=True)
    stack = stack.push(thought, importance)
    (stack.thoughts.sum() + stack.importance.sum()).backward()
    assert torch.equal(thought.grad, torch.ones_like(thought))
    assert torch.equal(importance.grad, torch.ones(2))


def test_push_where_pushes_only_in_the_marked_rows(tiny_config):
    config = tiny_config()
    shape = (4, config.thought_height, config.thought_width, config.thought_channels)
    stack = ThoughtStack.empty(4, config).push(torch.randn(shape), torch.randn(4))
    thought, importance = torch.randn(shape), torch.randn(4)
    where = torch.tensor([True, False, True, False])
    pushed = stack.push(thought, importance, where)
    everywhere = stack.push(thought, importance)
    for part, kept, new in zip(pushed.fields(), stack.fields(), everywhere.fields(), strict=True):
        assert torch.equal(part[where], new[where]) and torch.equal(part[~where], kept[~where])
    assert pushed.count().tolist() == [2, 1, 2, 1]


def test_push_rejects_a_wrong_shape(tiny_config):
    stack = ThoughtStack.empty(2, tiny_config())
    with pytest.raises(ValueError, match="expected a thought of shape"):
        stack.push(torch.zeros(2, 5, 5, 5), torch.zeros(2))


def test_save_load_round_trip(tiny_config, tmp_path):
    config = tiny_config()
    stack = ThoughtStack.empty(1, config)
    for index in range(5):
        shape = (1, config.thought_height, config.thought_width, config.thought_channels)
        stack = stack.push(torch.randn(shape), torch.tensor([float(index % 3)]))
    path = tmp_path / "stack.safetensors"
    stack.save(path)
    loaded = ThoughtStack.load(path, config)
    for name in ("thoughts", "importance", "valid", "ages"):
        assert torch.equal(getattr(loaded, name), getattr(stack, name))
    assert not (tmp_path / "stack.safetensors.tmp").exists()
    with pytest.raises(ValueError, match="expected slots of shape"):
        ThoughtStack.load(path, tiny_config(thought_channels=8))


@pytest.mark.parametrize("reader", ["attention", "cross"])
def test_thoughts_change_the_prediction(tiny_config, reader):
    torch.manual_seed(0)
    config = tiny_config(thought_reader=reader)
    model = ThoughtDiffusionLM(config).eval()
    tokens = torch.randint(0, config.mask_id, (2, 8))
    empty = ThoughtStack.empty(2, config)
    with torch.no_grad():
        base, hidden, _ = model(tokens, model.read(empty), return_hidden=True)
        full = empty.push(*model.write(hidden))
        after, _, _ = model(tokens, model.read(full))
    assert torch.isfinite(base).logical_or(torch.isneginf(base)).all()
    assert not torch.allclose(base, after)


def test_an_empty_stack_changes_nothing_with_the_attention_reader(tiny_config):
    """Every memory key of an empty stack has bias -inf: the text attends to itself alone, as
    the same weights without thoughts do."""
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(tiny_config()).eval()
    tokens = torch.randint(0, model.config.mask_id, (2, 8))
    with torch.no_grad():
        alone = model(tokens)[0]
        with_empty = model(tokens, model.read(ThoughtStack.empty(2, model.config)))[0]
    torch.testing.assert_close(with_empty, alone)


def test_the_attention_reader_reads_a_thought_as_the_long_context_reads_the_turn_before(
    tiny_config,
):
    """One block, a thought holding the turn before's token embeddings (one cell per token, an
    identity map to the width, no age embedding, importance +40: bias ~0): the current turn's
    logits must equal those of the same weights reading both turns as one sequence. Rotary
    attention is relative, so the cells' positions j - H W must reproduce the sequence's
    offsets exactly."""
    torch.manual_seed(0)
    config = tiny_config(depth=1, thought_channels=32, thought_height=2, thought_width=3)
    model = ThoughtDiffusionLM(config).eval()
    with torch.no_grad():
        model.reader.project.weight.copy_(torch.eye(config.width))
        model.reader.project.bias.zero_()
        model.reader.ages.weight.zero_()
    cells = config.thought_height * config.thought_width
    before = torch.randint(0, config.mask_id, (2, cells))
    current = torch.randint(0, config.mask_id, (2, 5))
    stack = ThoughtStack.empty(2, config)
    thought = model.embedding(before).detach().reshape(2, *stack.thoughts.shape[2:])
    stack = stack.push(thought, torch.full((2,), 40.0))
    with torch.no_grad():
        read = model(current, model.read(stack))[0]
        expected = model(torch.cat([before, current], 1))[0][:, -current.shape[1] :]
    torch.testing.assert_close(read, expected, atol=1e-5, rtol=1e-5)


def test_the_attention_reader_tells_thoughts_apart_by_their_age_alone(tiny_config):
    """Every thought sits at the same positions, so without the age embedding the order of the
    held thoughts cannot matter, and with it, it does."""
    torch.manual_seed(0)
    config = tiny_config()
    model = ThoughtDiffusionLM(config).eval()
    shape = (2, config.thought_height, config.thought_width, config.thought_channels)
    first, second = torch.randn(shape), torch.randn(shape)
    importance = torch.zeros(2)
    empty = ThoughtStack.empty(2, config)
    one_way = empty.push(first, importance).push(second, importance)
    other_way = empty.push(second, importance).push(first, importance)
    tokens = torch.randint(0, config.mask_id, (2, 7))
    with torch.no_grad():
        differ = model(tokens, model.read(one_way))[0] - model(tokens, model.read(other_way))[0]
        model.reader.ages.weight.zero_()
        same = model(tokens, model.read(one_way))[0] - model(tokens, model.read(other_way))[0]
    finite = torch.isfinite(differ)
    assert differ[finite].abs().max() > 1e-4
    torch.testing.assert_close(same[finite], torch.zeros_like(same[finite]), atol=1e-5, rtol=0)


def test_baseline_is_the_same_model_without_the_thought_path(tiny_config):
    thought_model = ThoughtDiffusionLM(tiny_config(use_thoughts=True))
    baseline = ThoughtDiffusionLM(tiny_config(use_thoughts=False))
    assert baseline.num_parameters(thought_path=True) == 0
    assert thought_model.num_parameters(thought_path=False) == baseline.num_parameters()
    assert thought_model.num_parameters(thought_path=True) > 0
    with pytest.raises(ValueError, match="no thought path"):
        baseline.write(torch.zeros(1, 4, 32))


@pytest.mark.parametrize("length", [12, 7])
def test_a_thought_is_the_turn_pooled_in_reading_order(tiny_config, length):
    """With C == width a thought's cell j is the j-th of H*W runs of the turn's hidden states,
    averaged and scaled to unit RMS: checked against a loop over the runs' bounds."""
    config = tiny_config(thought_channels=32)  # the width: no channel map
    model = ThoughtDiffusionLM(config)
    hidden = torch.randn(2, length, config.width)
    thought, importance = model.write(hidden)
    cells = config.thought_height * config.thought_width
    for j in range(cells):
        start, end = (j * length) // cells, -((-(j + 1) * length) // cells)  # adaptive pooling
        mean = hidden[:, start:end].mean(1)
        expected = mean / mean.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
        row, column = divmod(j, config.thought_width)
        torch.testing.assert_close(thought[:, row, column], expected, atol=1e-4, rtol=1e-4)
    assert importance.shape == (2,)


def test_a_thought_with_fewer_channels_than_the_width_has_unit_rms(tiny_config):
    config = tiny_config()  # C = 4, width 32: a learned map to C channels
    model = ThoughtDiffusionLM(config)
    thought, _ = model.write(torch.randn(3, 10, config.width))
    assert thought.shape == (3, config.thought_height, config.thought_width, 4)
    torch.testing.assert_close(
        thought.pow(2).mean(-1), torch.ones(thought.shape[:-1]), atol=1e-3, rtol=0
    )
