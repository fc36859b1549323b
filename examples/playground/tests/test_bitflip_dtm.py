"""A bitflip-dtm checkpoint's reverse step in the playground: the energy bitflip-dtm defines,
x_t held clamped, sampling against exact enumeration, and messages for bad input."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest
import simulation
from simulation import PlaygroundError, Simulation

import tsu_core
from tsu_core.testing.stats import mean_tolerance


@pytest.fixture(scope="module")
def dtm(dtm_checkpoint):
    return simulation.load_dtm(dtm_checkpoint)


def random_spins(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(generator.random(shape) < 0.5, 1, -1).astype(np.int8)


def test_step_energy_is_bitflip_dtms(dtm_checkpoint, dtm) -> None:
    """The playground's model of step t has bitflip-dtm's energy E_t: checked against
    `DTM.energy` of a freshly loaded model and against E_t written out here from the
    checkpoint's raw tensors (model.py's formula), on random states."""
    import torch
    from safetensors.numpy import load_file

    from bitflip_dtm import bitflip_schedule, build_graph
    from bitflip_dtm.checkpoint import load_model

    reference = load_model(dtm_checkpoint)
    tensors = load_file(str(dtm_checkpoint.with_suffix(".safetensors")))
    config = reference.config
    graph = build_graph(config)
    flips = bitflip_schedule(config.schedule, config.num_steps, config.final_flip).numpy()
    learned = graph.topology.edges[: graph.num_learned_edges]
    bits, latents = graph.num_bits, graph.num_latents
    generator = np.random.default_rng(1)
    for t in range(1, config.num_steps + 1):
        noisy = simulation.dtm_input(dtm, t, "random bits", seed=t)
        model = simulation.bitflip_dtm_model(dtm, t, noisy)
        assert model.num_nodes == 2 * bits + latents == 20
        np.testing.assert_array_equal(model.fixed_nodes, graph.noisy)
        states = random_spins(generator, (50, model.num_nodes))
        states[:25, model.fixed_nodes] = noisy  # half conditioned on the input, half not
        got = tsu_core.energy(model.topology, model.parameters, states)

        expected = reference.energy(t, torch.from_numpy(states)).detach().double().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

        weights = tensors[f"steps.{t - 1}.weights"].astype(np.float64)
        visible_bias = tensors[f"steps.{t - 1}.visible_bias"].astype(np.float64)
        latent_bias = tensors[f"steps.{t - 1}.latent_bias"].astype(np.float64)
        gamma = 0.5 * math.log((1 - flips[t - 1]) / flips[t - 1])
        spins = states.astype(np.float64)
        previous, latent = spins[:, :bits], spins[:, bits : bits + latents]
        formula = (
            -(spins[:, learned[:, 0]] * spins[:, learned[:, 1]]) @ weights
            - previous @ visible_bias
            - latent @ latent_bias
            - gamma * (spins[:, bits + latents :] * previous).sum(1)
        )
        np.testing.assert_allclose(got, formula, rtol=1e-5, atol=1e-5)


def test_uploaded_files_load_like_the_path(dtm_checkpoint, dtm) -> None:
    tensors = dtm_checkpoint.with_suffix(".safetensors")
    files = {path.name: path.read_bytes() for path in (dtm_checkpoint, tensors)}
    uploaded = simulation.load_dtm(files)
    for t in (1, 3):
        noisy = simulation.dtm_input(dtm, t, "noised plus sign", seed=2)
        first = simulation.bitflip_dtm_model(dtm, t, noisy)
        second = simulation.bitflip_dtm_model(uploaded, t, noisy)
        np.testing.assert_array_equal(first.parameters.weights, second.parameters.weights)
        np.testing.assert_array_equal(first.parameters.biases, second.parameters.biases)
    assert simulation.load_dtm(dtm_checkpoint.parent).config == dtm.config  # the directory


def test_inputs_follow_the_forward_process(dtm) -> None:
    """x_t of the plus sign flips each bit with probability q_bar_t (binomial tolerance)."""
    from bitflip_dtm.data import bits_to_spins, images_to_bits, two_patterns

    plus = bits_to_spins(images_to_bits(two_patterns(3, 1)[1:], dtm.config)).numpy().ravel()
    for t in (1, 3):
        draws = np.stack([simulation.dtm_input(dtm, t, "noised plus sign", s) for s in range(400)])
        flipped = float((draws != plus).mean())
        probability = float(dtm.forward_process.cumulative[t])
        assert abs(flipped - probability) < 5 * math.sqrt(0.25 / draws.size)
    random = simulation.dtm_input(dtm, 2, "random bits", seed=0)
    assert random.shape == (9,) and np.isin(random, (-1, 1)).all()
    held_out = simulation.dtm_input(dtm, 2, "noised held-out image", seed=0)  # two-patterns
    assert held_out.shape == (9,)


def test_sampling_holds_x_t_and_matches_exact_enumeration(dtm) -> None:
    beta, num_chains, t = 1.0, 2000, 2
    noisy = simulation.dtm_input(dtm, t, "noised plus sign", seed=3)
    model = simulation.bitflip_dtm_model(dtm, t, noisy)
    sim = Simulation(model, tsu_core.get_backend(), num_chains=num_chains, seed=4)
    np.testing.assert_array_equal(sim.clamp_nodes, model.fixed_nodes)
    np.testing.assert_array_equal(sim.clamp_values, noisy)
    sim.run_all(tsu_core.constant(beta), num_sweeps=40, chunk_sweeps=20)
    np.testing.assert_array_equal(sim.state[:, model.fixed_nodes], np.tile(noisy, (num_chains, 1)))
    assert sim.spin_updates == num_chains * 40 * (model.num_nodes - noisy.size)
    exact = simulation.exact_values(model, beta, sim.clamp_nodes, sim.clamp_values)
    # |E| <= sum |J| + sum |h| (gamma_t included), so one sample's E / N spans twice that / N.
    parameters = model.parameters
    spread = 2 * (np.abs(parameters.weights).sum() + np.abs(parameters.biases).sum())
    tolerance = mean_tolerance(
        exact.enumerated_energy_std**2, num_chains, spread=spread / model.num_nodes
    )
    assert abs(sim.recent_mean("energy", 20) - exact.enumerated_energy) < tolerance
    assert tolerance < abs(sim.trace.energy[0] - exact.enumerated_energy) / 3
    pictures = model.pictures(sim.state[0])
    assert [picture.shape for picture in pictures.values()] == [(3, 3, 3), (3, 3, 3)]


def test_clamps_edit_x_t_and_freeing_restores_it(dtm) -> None:
    noisy = simulation.dtm_input(dtm, 1, "random bits", seed=5)
    model = simulation.bitflip_dtm_model(dtm, 1, noisy)
    sim = Simulation(model, tsu_core.get_backend("reference"), num_chains=2)
    first_noisy, visible = int(model.fixed_nodes[0]), 4
    sim.change_clamp([first_noisy], -int(noisy[0]))
    sim.change_clamp([visible], 1)
    assert sim.clamp_nodes.size == noisy.size + 1
    assert sim.state[0, first_noisy] == -noisy[0] and sim.state[0, visible] == 1
    sim.change_clamp([first_noisy, visible], None)
    np.testing.assert_array_equal(sim.clamp_nodes, model.fixed_nodes)
    np.testing.assert_array_equal(sim.clamp_values, noisy)
    mask = simulation.format_mask(sim.clamp_nodes, sim.clamp_values, model.layout)
    first_row = mask.splitlines()[0]
    assert first_row[:4] == "...." and set(first_row[4:]) <= {"+", "-"}  # x_{t-1} | gap | x_t
    sim.set_clamp(*simulation.parse_mask(mask.replace("+", ".").replace("-", "."), model.layout))
    np.testing.assert_array_equal(sim.clamp_values, noisy)  # '.' on x_t keeps the input


def test_layout_draws_every_node_once(dtm) -> None:
    model = simulation.bitflip_dtm_model(dtm, 1, simulation.dtm_input(dtm, 1, "random bits"))
    drawn = model.layout[model.layout >= 0]
    assert sorted(drawn.tolist()) == list(range(model.num_nodes))
    graph = dtm.graph
    assert model.layout[:3, :3].ravel().tolist() == graph.visible.tolist()
    assert model.layout[:3, 4:].ravel().tolist() == graph.noisy.tolist()
    assert model.layout[4:].ravel()[: graph.num_latents].tolist() == graph.latent.tolist()


def test_colour_planes_are_drawn_in_a_grid_and_decoded() -> None:
    """An RGB model of 2 bits per channel (6 planes, no checkpoint needed): planes in a 3 x 2
    grid of images per side, every node drawn once, pictures decoded by bitflip-dtm."""
    bitflip_dtm = pytest.importorskip("bitflip_dtm")
    import torch

    config = bitflip_dtm.preset(
        "tiny", channels=3, encoding="rgb", bits_per_channel=2, image_size=4, block_size=4
    )
    dtm = bitflip_dtm.DTM(config)
    noisy = simulation.dtm_input(dtm, 2, "noised plus sign")
    model = simulation.bitflip_dtm_model(dtm, 2, noisy)
    layout = model.layout
    assert sorted(layout[layout >= 0].tolist()) == list(range(model.num_nodes))
    assert layout.shape == (3 * 5 - 1 + 1 + 1, 2 * (2 * 5 - 1) + 1)  # 4 latents in one row
    planes = np.arange(dtm.graph.num_bits).reshape(4, 4, 6)
    for plane in range(6):
        top, left = 5 * (plane // 2), 5 * (plane % 2)
        tile = layout[top : top + 4, left : left + 4]
        np.testing.assert_array_equal(tile, dtm.graph.visible[planes[:, :, plane]])
        tile = layout[top : top + 4, 10 + left : 10 + left + 4]
        np.testing.assert_array_equal(tile, dtm.graph.noisy[planes[:, :, plane]])
    state = random_spins(np.random.default_rng(2), (model.num_nodes,))
    pictures = model.pictures(state)
    for name, nodes in (("x_{t-1} decoded", dtm.graph.visible), ("x_t decoded", model.fixed_nodes)):
        bits = torch.from_numpy((state[nodes] > 0).astype(np.uint8)).reshape(1, -1)
        expected = bitflip_dtm.bits_to_images(bits, config)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(pictures[name], expected)  # (rows, cols, RGB) in [0, 1]


def test_bad_checkpoints_and_steps_give_messages(dtm_checkpoint, dtm, tmp_path) -> None:
    json_text = dtm_checkpoint.read_text()
    tensors = dtm_checkpoint.with_suffix(".safetensors").read_bytes()
    truncated = {dtm_checkpoint.name: json_text.encode(), "x.safetensors": tensors}
    with pytest.raises(PlaygroundError, match="bitflip-dtm checkpoint: .*missing"):
        simulation.load_dtm(truncated)
    half = {
        dtm_checkpoint.name: json_text.encode(),
        dtm_checkpoint.with_suffix(".safetensors").name: tensors[: len(tensors) // 2],
    }
    with pytest.raises(PlaygroundError, match="corrupt tensors file"):
        simulation.load_dtm(half)
    with pytest.raises(PlaygroundError, match="corrupt checkpoint metadata"):
        simulation.load_dtm({"checkpoint-1.json": b"{not json"})
    with pytest.raises(PlaygroundError, match="upload its two files"):
        simulation.load_dtm({"weights.npz": b"PK\x03\x04"})
    rbm = tmp_path / "rbm.npz"
    simulation.save_rbm(rbm, np.zeros((2, 2)), np.zeros(2), np.zeros(2))
    with pytest.raises(PlaygroundError, match="bitflip-dtm checkpoint: .*corrupt"):
        simulation.load_dtm(rbm)  # a wrong file
    with pytest.raises(PlaygroundError, match="not a bitflip-dtm-checkpoint-[0-9]+ file"):
        simulation.load_dtm({"settings.json": b'{"format": "something else"}'})
    with pytest.raises(PlaygroundError, match="not found"):
        simulation.load_dtm(tmp_path / "checkpoint-00000001.json")
    with pytest.raises(PlaygroundError, match="give the path"):
        simulation.load_dtm("  ")
    noisy = simulation.dtm_input(dtm, 1, "random bits")
    for t in (0, 4, -1, 1.5, True):
        with pytest.raises(PlaygroundError, match=r"t in \[1, 3\]"):
            simulation.bitflip_dtm_model(dtm, t, noisy)
        with pytest.raises(PlaygroundError, match=r"t in \[1, 3\]"):
            simulation.dtm_input(dtm, t)
    with pytest.raises(PlaygroundError, match="expected 9 spins"):
        simulation.bitflip_dtm_model(dtm, 1, noisy[:4])
    with pytest.raises(PlaygroundError, match="input x_t: expected one of"):
        simulation.dtm_input(dtm, 1, "a photo")


def test_without_bitflip_dtm_the_message_says_how_to_install(monkeypatch) -> None:
    """Runs without bitflip-dtm too: its import is made to fail."""
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name.split(".")[0] == "bitflip_dtm":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(PlaygroundError, match="pip install -e packages/bitflip-dtm"):
        simulation.load_dtm("runs/tiny")
