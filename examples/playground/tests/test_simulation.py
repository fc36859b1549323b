"""The playground's sampling logic, checked against exact results without a browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import simulation
from simulation import PlaygroundError, Simulation

import tsu_core
from tsu_core.testing.stats import mean_tolerance


@pytest.fixture(scope="module")
def backend():
    """The backend under test (TSU_BACKEND, else the best installed)."""
    return tsu_core.get_backend()


def test_lattice_energy_reaches_kaufman(backend) -> None:
    """Persistent chains from random states settle at Kaufman's exact 4 x 4 energy."""
    beta, num_chains = 0.4, 2000
    model = simulation.lattice_model(4)
    sim = Simulation(model, backend, num_chains=num_chains, seed=3)
    exact = simulation.exact_values(model, beta)
    start_error = abs(sim.trace.energy[0] - exact.kaufman_energy)
    sim.run_all(tsu_core.constant(beta), num_sweeps=60, chunk_sweeps=20)
    measured = sim.recent_mean("energy", 30)
    # Energy per spin lies in [-2, 2]: |X - mean| <= 4.
    tolerance = mean_tolerance(exact.kaufman_energy_std**2, num_chains, spread=4.0)
    assert abs(measured - exact.kaufman_energy) < tolerance
    assert tolerance < start_error / 5  # the check can tell a settled chain from the start
    assert sim.sweeps_done == 60
    assert sim.trace.sweeps == list(range(61))


def test_kaufman_and_enumeration_agree_for_the_page() -> None:
    """The two exact numbers the page can show for a small lattice are the same quantity."""
    for beta in (0.2, 0.4407, 0.7):
        values = simulation.exact_values(simulation.lattice_model(4), beta)
        assert values.kaufman_energy == pytest.approx(values.enumerated_energy, abs=1e-6)
        assert values.kaufman_energy_std == pytest.approx(values.enumerated_energy_std, abs=1e-5)


@pytest.mark.parametrize("kind", ["linear", "geometric"])
def test_chunks_follow_the_whole_schedule(kind: str) -> None:
    schedule = simulation.make_schedule(kind, 0.1, 0.9)
    num_sweeps, chunk = 23, 5
    pieces = [
        simulation.chunk_schedule(schedule, num_sweeps, first, min(first + chunk, num_sweeps))
        for first in range(0, num_sweeps, chunk)
    ]
    joined = np.concatenate(
        [piece.betas(min(chunk, num_sweeps - index * chunk)) for index, piece in enumerate(pieces)]
    )
    np.testing.assert_allclose(joined, schedule.betas(num_sweeps), rtol=1e-12)


def test_annealing_run_records_the_schedule(backend) -> None:
    sim = Simulation(simulation.lattice_model(4), backend, num_chains=2)
    schedule = tsu_core.geometric(0.1, 1.0)
    sim.run_all(schedule, num_sweeps=17, chunk_sweeps=4)
    np.testing.assert_allclose(sim.trace.betas[1:], schedule.betas(17), rtol=1e-12)


@dataclass
class RecordingProgram:
    """A program that passes calls through and remembers their initial and final states."""

    program: Any
    calls: list

    def sample(self, parameters, **options):
        result = self.program.sample(parameters, **options)
        self.calls.append((np.array(options["initial_state"]), np.array(result.final_state)))
        return result


def test_chunks_continue_the_previous_final_state(backend) -> None:
    sim = Simulation(simulation.lattice_model(4), backend, num_chains=3, seed=1)
    start = sim.state.copy()
    sim.program = RecordingProgram(sim.program, [])
    sim.run_all(tsu_core.constant(0.3), num_sweeps=9, chunk_sweeps=4)
    calls = sim.program.calls
    assert len(calls) == 3
    np.testing.assert_array_equal(calls[0][0], start)
    for previous, following in zip(calls, calls[1:], strict=False):
        np.testing.assert_array_equal(following[0], previous[1])
    np.testing.assert_array_equal(sim.state, calls[-1][1])


def test_clamped_spins_hold_and_speed_counts_free_spins(backend) -> None:
    sim = Simulation(simulation.lattice_model(4), backend, num_chains=4)
    sim.set_clamp([0, 5, 10], [1, -1, 1])
    sim.run_all(tsu_core.constant(0.5), num_sweeps=6, chunk_sweeps=3)
    np.testing.assert_array_equal(sim.state[:, [0, 5, 10]], np.tile([1, -1, 1], (4, 1)))
    assert sim.spin_updates == 4 * 6 * (16 - 3)
    assert sim.updates_per_nanosecond > 0
    # With clamps the finite-lattice formula no longer applies; enumeration does.
    values = simulation.exact_values(sim.model, 0.5, sim.clamp_nodes, sim.clamp_values)
    assert values.kaufman_energy is None and values.enumerated_energy is not None


def test_clamped_run_matches_exact_enumeration(backend) -> None:
    beta, num_chains = 0.5, 2000
    model = simulation.lattice_model(4)
    sim = Simulation(model, backend, num_chains=num_chains, seed=5)
    nodes, values = np.array([0, 1, 2, 3]), np.array([1, 1, -1, -1])
    sim.set_clamp(nodes, values)
    sim.run_all(tsu_core.constant(beta), num_sweeps=40, chunk_sweeps=20)
    exact = simulation.exact_values(model, beta, nodes, values)
    tolerance = mean_tolerance(exact.enumerated_energy_std**2, num_chains, spread=4.0)
    assert abs(sim.recent_mean("energy", 20) - exact.enumerated_energy) < tolerance


def test_changing_clamps_keeps_the_others() -> None:
    sim = Simulation(simulation.lattice_model(4), tsu_core.get_backend("reference"), num_chains=2)
    sim.change_clamp([3, 1], 1)
    sim.change_clamp([1, 7], -1)
    assert sim.clamp_nodes.tolist() == [1, 3, 7]
    assert sim.clamp_values.tolist() == [-1, 1, -1]
    sim.change_clamp([3, 9], None)
    assert sim.clamp_nodes.tolist() == [1, 7] and sim.clamp_values.tolist() == [-1, -1]
    np.testing.assert_array_equal(sim.state[:, [1, 7]], -1)
    with pytest.raises(PlaygroundError, match=r"\+1 or -1"):
        sim.change_clamp([2], 0)


def test_mask_round_trip_and_errors() -> None:
    layout = simulation.lattice_model(4).layout
    text = "+...\n.-..\n....\n...+"
    nodes, values = simulation.parse_mask(text, layout)
    np.testing.assert_array_equal(nodes, [0, 5, 15])
    np.testing.assert_array_equal(values, [1, -1, 1])
    assert simulation.format_mask(nodes, values, layout) == text
    assert simulation.parse_mask("  \n", layout)[0].size == 0
    with pytest.raises(PlaygroundError, match="expected 4 lines of 4"):
        simulation.parse_mask("+..\n...", layout)
    with pytest.raises(PlaygroundError, match="'x'"):
        simulation.parse_mask("x...\n....\n....\n....", layout)


def test_rbm_file_round_trip(tmp_path) -> None:
    generator = np.random.default_rng(0)
    weights = generator.normal(size=(6, 3))
    visible, hidden = generator.normal(size=6), generator.normal(size=3)
    path = tmp_path / "rbm.npz"
    simulation.save_rbm(path, weights, visible, hidden, image_shape=(2, 3))
    for source in (path, path.read_bytes()):
        model = simulation.load_rbm(source)
        assert model.topology.structure["kind"] == "bipartite"
        states = np.where(generator.random((5, 9)) < 0.5, 1, -1)
        v, h = states[:, :6], states[:, 6:]
        # E = -v^T W h - b.v - c.h, computed here independently of tsu-core's edge order.
        expected = -np.einsum("sv,vh,sh->s", v, weights, h) - v @ visible - h @ hidden
        got = tsu_core.energy(model.topology, model.parameters, states)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        assert sorted(model.layout[model.layout >= 0].tolist()) == list(range(9))
        assert model.layout[:2].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_rbm_file_errors(tmp_path) -> None:
    missing = tmp_path / "missing.npz"
    np.savez(missing, visible_biases=np.zeros(3))
    with pytest.raises(PlaygroundError, match="'weights'"):
        simulation.load_rbm(missing)
    with pytest.raises(PlaygroundError, match="cannot read"):
        simulation.load_rbm(b"not an npz file")
    with pytest.raises(PlaygroundError, match="biases"):
        simulation.rbm_model(np.zeros((3, 2)), np.zeros(4), np.zeros(2))
    with pytest.raises(PlaygroundError, match="image_shape"):
        simulation.rbm_model(np.zeros((6, 2)), image_shape=(4, 2))


def test_demo_rbm_samples_close_to_exact(backend) -> None:
    beta, num_chains = 1.0, 2000
    model = simulation.demo_rbm()
    sim = Simulation(model, backend, num_chains=num_chains, seed=2)
    sim.run_all(tsu_core.constant(beta), num_sweeps=30, chunk_sweeps=30)
    exact = simulation.exact_values(model, beta)
    # |E / N| <= (sum |W| + sum |h|) / N, so |X - mean| is at most twice that.
    spread = 2 * np.abs(model.parameters.weights).sum() / model.num_nodes
    tolerance = mean_tolerance(exact.enumerated_energy_std**2, num_chains, spread=spread)
    assert abs(sim.recent_mean("energy", 15) - exact.enumerated_energy) < tolerance
    assert tolerance < abs(sim.trace.energy[0] - exact.enumerated_energy) / 5


def test_spin_glass_is_reproducible() -> None:
    first = simulation.spin_glass_model(4, seed=7)
    again = simulation.spin_glass_model(4, seed=7)
    other = simulation.spin_glass_model(4, seed=8)
    np.testing.assert_array_equal(first.parameters.weights, again.parameters.weights)
    assert not np.array_equal(first.parameters.weights, other.parameters.weights)
    assert first.lattice_side is None  # no Onsager curve for a glass
    assert simulation.exact_values(first, 0.5).onsager_energy is None


@dataclass(frozen=True)
class UnlimitedBackend:
    """A stand-in backend with no size limit, to reach the machine-memory check."""

    name: str = "unlimited"
    capabilities: tsu_core.Capabilities = tsu_core.Capabilities(max_nodes=None)


def test_bad_sizes_and_betas_give_messages(monkeypatch) -> None:
    reference = tsu_core.get_backend("reference")
    with pytest.raises(PlaygroundError, match="max_nodes = 22"):
        Simulation(simulation.lattice_model(5), reference)
    monkeypatch.setattr(simulation, "machine_memory_bytes", lambda: 1 << 30)
    with pytest.raises(PlaygroundError, match="more than this machine allows"):
        simulation.check_fits(simulation.lattice_model(1024), UnlimitedBackend(), 64, 10)
    simulation.check_fits(simulation.lattice_model(64), UnlimitedBackend(), 8, 10)
    for side in (-3, 2, 100_000):
        with pytest.raises(PlaygroundError, match="lattice side"):
            simulation.lattice_model(side)
    with pytest.raises(tsu_core.InvalidRequest, match="beta > 0"):
        simulation.make_schedule("constant", -0.5)
    with pytest.raises(tsu_core.InvalidRequest, match="schedule.end"):
        simulation.make_schedule("linear", 0.1, -1.0)
    with pytest.raises(PlaygroundError, match="chains"):
        Simulation(simulation.lattice_model(4), reference, num_chains=0)


def test_binary_rbm_conversion_in_the_docs() -> None:
    """docs/playground.md's 0/1-unit to spin conversion changes the energy by a constant only."""
    generator = np.random.default_rng(1)
    weights, visible, hidden = (generator.normal(size=shape) for shape in ((5, 3), 5, 3))
    model = simulation.rbm_model(
        weights / 4, visible / 2 + weights.sum(1) / 4, hidden / 2 + weights.sum(0) / 4
    )
    spins = np.where(generator.random((20, 8)) < 0.5, 1, -1)
    bits = (spins + 1) // 2
    v, h = bits[:, :5], bits[:, 5:]
    binary_energy = -np.einsum("sv,vh,sh->s", v, weights, h) - v @ visible - h @ hidden
    difference = tsu_core.energy(model.topology, model.parameters, spins) - binary_energy
    np.testing.assert_allclose(difference, difference[0], atol=1e-12)
