import math

import torch

from tsu_torch import ThermalContext
from tsu_torch.lm import CharacterData, LMConfig, TinyThermoLM, perplexity

TEXT = "the cat sat on the mat. " * 40


def _model(context: ThermalContext, thermal: bool = True) -> tuple[TinyThermoLM, CharacterData]:
    torch.manual_seed(0)
    data = CharacterData(TEXT)
    config = LMConfig(
        vocab_size=data.vocab_size,
        context_length=16,
        embed_dim=16,
        num_heads=2,
        num_layers=1,
        thermal=thermal,
        attention_samples=4,
    )
    return TinyThermoLM(config, context), data


def test_model_is_causal_under_sampling(context: ThermalContext) -> None:
    model, data = _model(context)
    tokens = data.train[:16].view(1, -1)
    embedded = model.token_embedding(tokens).detach().requires_grad_(True)
    positions = torch.arange(16)
    hidden = embedded + model.position_embedding(positions)
    for block in model.blocks:
        hidden = block(hidden)
    model.head(model.norm(hidden))[0, 5].sum().backward()
    assert torch.all(embedded.grad[0, 6:] == 0)
    assert torch.any(embedded.grad[0, :6] != 0)


def test_untrained_perplexity_is_near_vocab_and_training_lowers_it(context: ThermalContext) -> None:
    model, data = _model(context)
    model.eval()
    before = perplexity(model, data, 16)
    assert before > 0.5 * data.vocab_size  # an untrained model is close to uniform
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        optimiser.zero_grad()
        model.loss(data.batch("train", 8, 16, generator)).backward()
        optimiser.step()
    model.eval()
    assert perplexity(model, data, 16) < before / 2
    sample = model.generate(data.validation[:4].view(1, -1), 3)
    assert sample.shape == (1, 7) and int(sample.max()) < data.vocab_size


def test_exact_baseline_perplexity_is_the_cross_entropy(context: ThermalContext) -> None:
    model, data = _model(context, thermal=False)
    windows = torch.stack(
        [data.validation[i : i + 17] for i in range(0, len(data.validation) - 17, 16)]
    )
    with torch.no_grad():
        logits = model(windows[:, :-1])
        nats = torch.nn.functional.cross_entropy(
            logits.reshape(-1, data.vocab_size), windows[:, 1:].reshape(-1)
        )
    assert math.isclose(perplexity(model, data, 16), math.exp(float(nats)), rel_tol=1e-5)
    assert context.calls == 0  # the exact baseline never calls the backend
