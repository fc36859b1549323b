"""Training follows the exact log-likelihood gradient, a tiny model learns its two patterns, and
the memory estimate holds against a measured run."""

import dataclasses

import numpy as np
import pytest
import torch

import tsu_core
from bitflip_dtm.config import preset
from bitflip_dtm.data import images_to_bits, load_dataset, spins_to_bits
from bitflip_dtm.sample import sample
from bitflip_dtm.train import Trainer, learning_rate, training_memory
from tsu_core.exact import all_states
from tsu_core.testing.matrix import once_per_package
from tsu_core.testing.memory import ON_LINUX, check_estimate, measure_peak
from tsu_core.testing.stats import mean_tolerance


def test_two_patterns_are_learned(backend, tiny_training):
    config = tiny_training
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=backend)
    trainer.train(iterations=20)
    result = sample(trainer.model, trainer.program, 200, key=3, keep_intermediates=True)
    assert len(result.intermediates) == config.num_steps + 1
    bits = spins_to_bits(result.spins)
    patterns = images_to_bits(images[:2], config)
    hits = sum(int((bits == pattern).all(1).sum()) for pattern in patterns)
    # Uniform bits would hit a pattern 2/512 of the time: under one sample in 200.
    assert hits >= 120, hits


def _exact_log_likelihood_gradient(model, t, spins_previous, spins_t):
    """The gradient of mean_b log p(x_{t-1,b} | x_{t,b}) in the step's parameters, by summing
    exp(-E) over every latent state (numerator) and every (x_{t-1}, z) state (partition
    function) in torch, then autograd: an implementation independent of the sampler's."""
    graph = model.graph
    visible = torch.from_numpy(1 - 2 * all_states(graph.num_bits, 2)).to(torch.int8)
    latent = torch.from_numpy(1 - 2 * all_states(graph.num_latents, 2)).to(torch.int8)
    num_visible, num_latent = visible.shape[0], latent.shape[0]
    total = 0.0
    for previous, noisy in zip(spins_previous, spins_t, strict=True):
        clamped = torch.cat(
            [previous.expand(num_latent, -1), latent, noisy.expand(num_latent, -1)], 1
        )
        free = torch.cat(
            [
                visible.repeat_interleave(num_latent, 0),
                latent.repeat(num_visible, 1),
                noisy.expand(num_visible * num_latent, -1),
            ],
            1,
        )
        total = total + torch.logsumexp(-model.energy(t, clamped).double(), 0)
        total = total - torch.logsumexp(-model.energy(t, free).double(), 0)
    step = model.steps[t - 1]
    parameters = [step.weights, step.visible_bias, step.latent_bias]
    return torch.autograd.grad(total / len(spins_previous), parameters)


@pytest.mark.parametrize(
    "chains,noise_step_backend",
    [("fresh", ""), ("persistent", ""), ("fresh-persistent-noise", ""), ("fresh", "reference")],
)
def test_update_is_the_exact_log_likelihood_gradient(chains, noise_step_backend):
    """With exact draws (the reference backend), minus the trainer's gradient matches the exact
    gradient of the conditional log-likelihood of every step, within a Bernstein bound; also
    when the step from noise's negative phase runs on a program of its own."""
    draws = 20000
    config = preset("tiny", num_steps=3, batch_size=4, fantasy_chains=4, chains=chains,
                    train_samples=draws, steps_per_iteration=3,
                    noise_step_backend=noise_step_backend)  # fmt: skip
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=tsu_core.get_backend("reference"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    spins_0 = trainer.data[:4]
    steps = [1, 2, 3]
    spins_previous, spins_t = trainer.model.forward_process.pairs(spins_0, steps, generator)
    trainer.estimate_gradient(steps, spins_previous, spins_t, tsu_core.Key(5))
    num_parameters = sum(parameter.numel() for parameter in trainer.model.parameters())
    # Each (example, draw) pair contributes one positive-minus-negative term: variance <= 2,
    # range <= 4; Bonferroni over every parameter.
    tolerance = mean_tolerance(2.0, config.batch_size * draws, num_parameters, spread=4.0)
    for k, t in enumerate(steps):
        exact = _exact_log_likelihood_gradient(trainer.model, t, spins_previous[k], spins_t[k])
        step = trainer.model.steps[t - 1]
        for estimate, truth in zip(
            (step.weights.grad, step.visible_bias.grad, step.latent_bias.grad), exact, strict=True
        ):
            assert np.all(np.abs(-estimate.double().numpy() - truth.numpy()) < tolerance)
        if t == config.num_steps:
            continue  # x_T is pure noise: its coupling is 0 and the step ignores x_t
        # The check can fail: the gradient for x_t with its signs reversed is far outside it.
        wrong = _exact_log_likelihood_gradient(trainer.model, t, spins_previous[k], -spins_t[k])
        assert np.abs(-step.visible_bias.grad.double().numpy() - wrong[1].numpy()).max() > (
            2 * tolerance
        )


class _Recorder:
    """A program that passes calls through and keeps each `moments` call's initial state and
    final state."""

    def __init__(self, program):
        self.program, self.calls = program, []

    def moments(self, parameters, **arguments):
        result = self.program.moments(parameters, **arguments)
        final = np.array(result.final_state)
        self.calls.append((np.asarray(arguments["initial_state"]), final))
        return result


def test_only_the_step_from_noise_keeps_its_negative_chains(backend, tiny_training):
    """With `fresh-persistent-noise`, step T's negative chains start where its last ones ended
    (with this batch's x_T clamped); every other step starts fresh, x_{t-1} at x_t."""
    config = tiny_training.replace(chains="fresh-persistent-noise")
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=backend)
    trainer.stacked_program = recorder = _Recorder(trainer.stacked_program)
    trainer.train(iterations=2)
    graph, nodes = trainer.model.graph, trainer.model.graph.topology.num_nodes
    free, size = graph.num_bits + graph.num_latents, config.batch_size
    # Calls alternate positive, negative; all steps of an iteration are copies of one call.
    (_, first_final), (second_initial, second_final) = recorder.calls[1], recorder.calls[3]
    first_final = first_final.reshape(size, config.num_steps, nodes)
    second_initial = second_initial.reshape(size, config.num_steps, nodes)
    last = config.num_steps - 1
    assert np.array_equal(second_initial[:, last, :free], first_final[:, last, :free])
    for k in range(last):
        start = second_initial[:, k]
        assert np.array_equal(start[:, : graph.num_bits], start[:, free:])
    assert torch.equal(trainer.fantasy[0].cpu(), torch.from_numpy(
        second_final.reshape(size, config.num_steps, nodes)[:, last]).to(torch.int8))  # fmt: skip


class _Raised:
    """A program whose `moments` are another's plus one, keeping each call's arguments: a
    mark that shows where its moments went."""

    def __init__(self, program):
        self.program, self.calls = program, []

    def moments(self, parameters, **arguments):
        self.calls.append((parameters, arguments))
        result = self.program.moments(parameters, **arguments)
        raised = {name: np.asarray(getattr(result, name)) + 1 for name in ("nodes", "edges")}
        return dataclasses.replace(result, **raised)


def test_the_step_from_noise_takes_its_negative_moments_from_its_own_backend(
    backend, tiny_training
):
    """With `noise_step_backend`, step T's negative moments are those of its own program (called
    with step T's parameters, x_T clamped, one chain per example), every other step's those of
    the stacked call: raising that program's moments by one moves step T's gradient by exactly
    one and leaves the others'."""
    config = tiny_training.replace(chains="fresh", noise_step_backend="reference")
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=backend)
    steps = list(range(1, config.num_steps + 1))
    generator = torch.Generator().manual_seed(0)
    pairs = trainer.model.forward_process.pairs(trainer.data[: config.batch_size], steps, generator)

    def gradients():
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.estimate_gradient(steps, *pairs, tsu_core.Key(5))
        return [[p.grad.clone() for p in step.parameters()] for step in trainer.model.steps]

    plain = gradients()
    trainer.noise_program = raised = _Raised(trainer.noise_program)
    moved = gradients()
    ((parameters, arguments),) = raised.calls
    expected = trainer.model.parameters_for(config.num_steps)
    np.testing.assert_array_equal(np.asarray(parameters.weights), np.asarray(expected.weights))
    np.testing.assert_array_equal(arguments["clamp"].nodes, trainer.model.graph.noisy)
    assert arguments["num_chains"] == config.batch_size
    for t, (before, after) in enumerate(zip(plain, moved, strict=True), start=1):
        for old, new in zip(before, after, strict=True):
            shift = torch.ones_like(old) if t == config.num_steps else torch.zeros_like(old)
            torch.testing.assert_close(new - old, shift)


@once_per_package
def test_tempering_for_the_step_from_noise_learns_the_patterns(backend, tiny_training):
    """Step T's negative phase by parallel tempering (`jax-sim-tempering`) still learns the two
    patterns: the backend takes the trainer's clamps and initial states."""
    pytest.importorskip("tsu_jax_sim")
    config = tiny_training.replace(noise_step_backend="jax-sim-tempering")
    images, _ = load_dataset(config)
    trainer = Trainer(config, images, backend=backend)
    trainer.train(iterations=20)
    bits = spins_to_bits(sample(trainer.model, trainer.program, 200, key=3).spins)
    patterns = images_to_bits(images[:2], config)
    hits = sum(int((bits == pattern).all(1).sum()) for pattern in patterns)
    assert hits >= 120, hits  # uniform bits: under one sample in 200


def test_learning_rate_decays_along_a_cosine_to_its_floor():
    config = preset("tiny", learning_rate=0.2, learning_rate_floor=0.25, iterations=100)
    assert learning_rate(config, 0) == pytest.approx(0.2)
    assert learning_rate(config, 50) == pytest.approx(0.2 * (0.25 + 0.75 * 0.5))
    assert learning_rate(config, 100) == pytest.approx(0.05)
    assert learning_rate(config, 250) == pytest.approx(0.05)
    constant = preset("tiny", learning_rate=0.2)
    assert learning_rate(constant, 77) == pytest.approx(0.2)


@once_per_package
@pytest.mark.skipif(not ON_LINUX, reason="reads /proc; ru_maxrss in KiB")
def test_the_memory_estimate_is_within_a_factor_of_a_measured_run():
    """Two iterations' peak is at least the estimate and at most twice it plus 1.5 GiB: JAX's
    own cost (compiling the sweeps, its thread pools) is not part of the estimate, and is about
    1.4 GiB on a CPU for a graph of a few hundred nodes."""
    pytest.importorskip("tsu_jax_sim")
    setup = """
import torch
import tsu_core
from bitflip_dtm.config import preset
from bitflip_dtm.train import Trainer, training_memory
torch.set_num_threads(1)
config = preset("rgb64", image_size=32, dataset="two-patterns")
"""
    work = """
images = torch.rand(4000, 3, 32, 32)
trainer = Trainer(config, images, backend=tsu_core.get_backend("jax-sim"))
for _ in range(2):
    trainer.train_step()
"""
    estimate = "training_memory(config, len(images), trainer.model.graph)"
    check_estimate(*measure_peak(setup, work, estimate), factor=2, slack=1536 * 2**20)


def test_the_memory_estimate_grows_with_the_images_and_the_chains():
    config = preset("rgb64", image_size=16)
    base = training_memory(config, 2000)
    assert training_memory(config, 3000) - base == 1000 * (4 * 3 * 16**2 + config.num_bits)
    assert training_memory(config.replace(fantasy_chains=128), 2000) > base
    fresh = config.replace(chains="fresh")
    assert training_memory(fresh, 2000) < base  # no chains kept between iterations
