"""The conformance suite: what every backend must pass, ours and vendors'.

Subclass `BackendConformance` in a pytest module and give it a `backend` fixture::

    import pytest
    from tsu_core.testing import BackendConformance

    class TestMyChip(BackendConformance):
        @pytest.fixture(scope="class")
        def backend(self):
            return MyChipBackend()

or run it on an installed backend with one command: `python -m tsu_core.testing --backend NAME`,
which ends with the protocol version it certified (`certification`).

Each test compares the backend with exact answers: enumeration (`tsu_core.exact`), Kaufman's and
Onsager's solutions of the 2D Ising model (`tsu_core.ising2d`), and closed forms. Tolerances come
from the sample size (`tsu_core.testing.stats`) at family-wise error `config.alpha`; keys are
fixed, so a correct backend passes every time and a wrong one fails every time. What a backend
declares it cannot do (`Capabilities`) is skipped, with the reason, and must raise `NotSupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tsu_core import ising2d
from tsu_core.arrays import to_numpy
from tsu_core.energy import energy
from tsu_core.errors import NotSupported
from tsu_core.exact import ExactDistribution
from tsu_core.parameters import Parameters
from tsu_core.protocol import PROTOCOL_VERSION, Backend, Clamp, protocol_mismatch
from tsu_core.schedule import geometric
from tsu_core.testing import stats
from tsu_core.testing.bad_input import BAD_INPUT_CASES, BadInputCase, check_bad_input
from tsu_core.testing.models import (
    IndependentSpins,
    edgeless_model,
    frustrated_model,
    random_categorical_model,
    random_spin_model,
    ring_correlations,
    ring_model,
)
from tsu_core.topology import Topology


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes of the suite's runs; a vendor may raise burn-in for a slowly mixing sampler.

    Arguments:
        num_chains: independent chains per distribution test (one recorded sample each).
        burn_in: sweeps before that sample is recorded.
        lattice_size: side of the 2D lattice (None: 16, or the largest that fits max_nodes).
        lattice_chains, lattice_burn_in: chains and sweeps for the lattice tests.
        alpha: the family-wise probability that a correct backend fails one test.
    """

    num_chains: int = 4096
    burn_in: int = 64
    lattice_size: int | None = None
    lattice_chains: int = 512
    lattice_burn_in: int = 300
    alpha: float = stats.DEFAULT_ALPHA


BETAS = (0.5, 1.0, 2.0)


def _states(array: Any) -> np.ndarray:
    return to_numpy(array)


def certification(
    backend: str, declared: object, passed: int, failed: int, skipped: int, deselected: int = 0
) -> str:
    """The line the suite ends with: which protocol version a backend was certified for (only
    by a whole run, every test passed or skipped by its declared capabilities)."""
    counts = f"{passed} passed, {failed} failed, {skipped} skipped"
    if deselected and not failed:
        return (
            f"partial run ({deselected} tests deselected), not a certification: backend "
            f"'{backend}' against the suite of protocol {PROTOCOL_VERSION}: {counts}"
        )
    if failed or not passed:
        return (
            f"NOT certified: backend '{backend}' (declares protocol {declared}) against the "
            f"suite of protocol {PROTOCOL_VERSION}: {counts}"
        )
    return (
        f"certified: backend '{backend}' implements tsu-core protocol {PROTOCOL_VERSION} "
        f"(declares {declared}): {counts}"
    )


class BackendConformance:
    """Tests every backend passes; subclass with a `backend` fixture (see the module doc)."""

    protocol_version = PROTOCOL_VERSION  # the version this suite certifies

    config = SuiteConfig()

    # -- helpers ---------------------------------------------------------------------------------
    def _require(self, backend: Backend, feature: str, present: bool) -> None:
        if not present:
            pytest.skip(f"{backend.name} declares no support for {feature} (capabilities)")

    def _fits(self, backend: Backend, topology: Topology) -> None:
        capabilities = backend.capabilities
        self._require(
            backend, f"{topology.node_kind} nodes", topology.node_kind in capabilities.node_kinds
        )
        if capabilities.max_nodes is not None:
            self._require(
                backend, f"{topology.num_nodes} nodes", topology.num_nodes <= capabilities.max_nodes
            )

    def _assert_distribution(
        self,
        backend: Backend,
        topology: Topology,
        parameters: Parameters,
        beta: float,
        clamp: Clamp | None = None,
        seed: int = 0,
    ) -> None:
        config = self.config
        program = backend.compile(topology)
        result = program.sample(
            parameters,
            key=seed,
            num_chains=config.num_chains,
            num_samples=1,
            burn_in=config.burn_in,
            schedule=beta,
            clamp=clamp,
        )
        states = _states(result.states)[:, 0]
        assert states.shape == (config.num_chains, topology.num_nodes), (
            f"states: expected shape ({config.num_chains}, 1, {topology.num_nodes}) "
            f"(chains, samples, nodes), got {to_numpy(result.states).shape}"
        )
        if clamp is None:
            groups = [(np.zeros(0, np.int64), np.zeros(0), np.arange(config.num_chains))]
        else:
            nodes = np.asarray(clamp.nodes)
            rows = np.broadcast_to(np.asarray(clamp.values), (config.num_chains, nodes.size))
            unique, inverse = np.unique(rows, axis=0, return_inverse=True)
            groups = [
                (nodes, values, np.flatnonzero(inverse.ravel() == index))
                for index, values in enumerate(unique)
            ]
        for nodes, values, chains in groups:
            chosen = states[chains]
            assert np.all(chosen[:, nodes] == values), "clamped nodes changed value"
            exact = ExactDistribution.of(topology, parameters, beta, nodes, values)
            empirical = stats.empirical_distribution(
                exact.state_index(chosen), exact.probabilities.size
            )
            where = (
                f"beta={beta}, {chains.size} chains, {exact.probabilities.size} states"
                f"{', clamped ' + str(values.tolist()) if nodes.size else ''}"
            )
            # Three views of one sample, each at alpha / 3: the whole distribution (TV), every
            # state's frequency, and the mean energy (the most sensitive to temperature).
            alpha = config.alpha / (3 * len(groups))
            distance = stats.total_variation(empirical, exact.probabilities)
            bound = stats.total_variation_bound(exact.probabilities, chains.size, alpha)
            assert distance <= bound, (
                f"total variation to exact enumeration {distance:.4f} exceeds {bound:.4f} ({where})"
            )
            p = exact.probabilities
            state_tolerance = stats.mean_tolerance(
                p * (1 - p), chains.size, p.size, alpha, spread=1.0
            )
            worst = int(np.argmax(np.abs(empirical - p) - state_tolerance))
            assert np.all(np.abs(empirical - p) <= state_tolerance + 1e-12), (
                f"state {exact.states[worst].tolist()} drawn with frequency {empirical[worst]:.4f}, "
                f"exact probability {p[worst]:.4f}, tolerance {state_tolerance[worst]:.4f} ({where})"
            )
            sampled_energy = energy(topology, parameters, chosen).mean()
            spread = float(np.ptp(exact.energies))
            energy_tolerance = stats.mean_tolerance(
                exact.energy_variance, chains.size, 1, alpha, spread=spread
            )
            assert abs(sampled_energy - exact.mean_energy) <= energy_tolerance, (
                f"mean energy {sampled_energy:.4f}, exact {exact.mean_energy:.4f}, tolerance "
                f"{energy_tolerance:.4f} ({where})"
            )
        energies = to_numpy(result.energies)[:, 0]
        expected = energy(topology, parameters, states)
        assert np.allclose(energies, expected, rtol=1e-4, atol=1e-4), (
            "energies: returned energies differ from tsu_core.energy of the returned states"
        )

    # -- distributions against exact enumeration -------------------------------------------------
    @pytest.mark.parametrize("beta", BETAS)
    def test_spin_distribution(self, backend: Backend, beta: float) -> None:
        topology, parameters = random_spin_model(seed=1, num_nodes=6)
        self._fits(backend, topology)
        self._assert_distribution(backend, topology, parameters, beta, seed=11)

    @pytest.mark.parametrize("beta", (0.5, 2.0))
    def test_spin_distribution_clamped(self, backend: Backend, beta: float) -> None:
        """Clamp values differ per chain (two patterns), as in a positive phase over a batch."""
        topology, parameters = random_spin_model(seed=2, num_nodes=8)
        self._fits(backend, topology)
        self._require(backend, "clamping", backend.capabilities.clamping)
        values = np.where(np.arange(self.config.num_chains)[:, None] % 2 == 0, [1, -1], [-1, -1])
        clamp = Clamp(np.array([6, 1]), values.astype(np.int8))
        self._assert_distribution(backend, topology, parameters, beta, clamp, seed=12)

    @pytest.mark.parametrize("beta", (0.5, 2.0))
    def test_categorical_distribution(self, backend: Backend, beta: float) -> None:
        topology, parameters = random_categorical_model(seed=3, num_nodes=5, num_categories=3)
        self._fits(backend, topology)
        self._assert_distribution(backend, topology, parameters, beta, seed=13)

    def test_categorical_distribution_clamped(self, backend: Backend) -> None:
        topology, parameters = random_categorical_model(seed=4, num_nodes=6, num_categories=3)
        self._fits(backend, topology)
        self._require(backend, "clamping", backend.capabilities.clamping)
        clamp = Clamp(np.array([0, 4]), np.array([2, 0], dtype=np.int32))
        self._assert_distribution(backend, topology, parameters, 1.0, clamp, seed=14)

    # -- moments ---------------------------------------------------------------------------------
    def _assert_moments(self, result, exact: ExactDistribution, chains: int) -> None:
        """The moments against the exact values (`stats.assert_moments_match`) and the shape
        of the final state."""
        stats.assert_moments_match(result, exact, chains, self.config.alpha)
        final = _states(result.final_state)
        assert final.shape == (chains, exact.topology.num_nodes), f"final_state: {final.shape}"

    def _moments(self, backend, topology, parameters, beta, clamp=None, seed=0):
        return backend.compile(topology).moments(
            parameters,
            key=seed,
            num_chains=self.config.num_chains,
            num_samples=8,
            thinning=2,
            burn_in=self.config.burn_in,
            schedule=beta,
            clamp=clamp,
        )

    def test_spin_moments(self, backend: Backend) -> None:
        topology, parameters = random_spin_model(seed=5, num_nodes=10, edge_probability=0.4)
        self._fits(backend, topology)
        result = self._moments(backend, topology, parameters, 1.0, seed=15)
        assert result.num_samples == self.config.num_chains * 8, "num_samples: chains x samples"
        exact = ExactDistribution.of(topology, parameters, 1.0)
        self._assert_moments(result, exact, self.config.num_chains)

    def test_spin_moments_clamped(self, backend: Backend) -> None:
        topology, parameters = random_spin_model(seed=6, num_nodes=9, edge_probability=0.5)
        self._fits(backend, topology)
        self._require(backend, "clamping", backend.capabilities.clamping)
        nodes, values = np.array([0, 3, 8]), np.array([1, -1, 1])
        result = self._moments(backend, topology, parameters, 0.8, Clamp(nodes, values), seed=16)
        assert np.allclose(to_numpy(result.nodes)[nodes], values), (
            "moments of clamped nodes must equal the clamp values"
        )
        exact = ExactDistribution.of(topology, parameters, 0.8, nodes, values)
        self._assert_moments(result, exact, self.config.num_chains)

    def test_categorical_moments(self, backend: Backend) -> None:
        topology, parameters = random_categorical_model(seed=7, num_nodes=5, num_categories=3)
        self._fits(backend, topology)
        result = self._moments(backend, topology, parameters, 1.0, seed=17)
        exact = ExactDistribution.of(topology, parameters, 1.0)
        self._assert_moments(result, exact, self.config.num_chains)

    # -- topologies without edges: layers of independent p-bits ---------------------------------
    @pytest.mark.parametrize("num_nodes", (1, 6))
    def test_edgeless_spin_distribution(self, backend: Backend, num_nodes: int) -> None:
        topology, parameters = edgeless_model(seed=30, num_nodes=num_nodes)
        self._fits(backend, topology)
        self._assert_distribution(backend, topology, parameters, 1.0, seed=31)

    @pytest.mark.parametrize("num_nodes", (1, 3))
    def test_edgeless_categorical_distribution(self, backend: Backend, num_nodes: int) -> None:
        topology, parameters = edgeless_model(seed=32, num_nodes=num_nodes, num_categories=3)
        self._fits(backend, topology)
        self._assert_distribution(backend, topology, parameters, 1.0, seed=33)

    def test_edgeless_moments(self, backend: Backend) -> None:
        """Ten independent spins against the closed form <s_i> = tanh(beta h_i), edges (0,)."""
        topology, parameters = edgeless_model(seed=34, num_nodes=10)
        self._fits(backend, topology)
        result = self._moments(backend, topology, parameters, 0.7, seed=35)
        exact = IndependentSpins(topology, np.asarray(parameters.biases), 0.7)
        self._assert_moments(result, exact, self.config.num_chains)

    # -- the 2D Ising model ----------------------------------------------------------------------
    def _lattice_size(self, backend: Backend) -> int:
        if self.config.lattice_size is not None:
            return self.config.lattice_size
        limit = backend.capabilities.max_nodes
        if limit is None or limit >= 256:
            return 16
        side = int(np.sqrt(limit))
        side -= side % 2
        self._require(backend, "a 4 x 4 lattice", side >= 4)
        return side

    def _run_lattice(self, backend: Backend, beta: float, seed: int) -> tuple[np.ndarray, int]:
        """One recorded state per chain: (chains, N) spins, and the lattice side."""
        from tsu_core.constructors import lattice_2d

        side = self._lattice_size(backend)
        topology, parameters = lattice_2d(side)
        chains = self.config.lattice_chains
        initial = None
        if beta > ising2d.CRITICAL_BETA and backend.capabilities.initial_state:
            # Ordered phase: start ordered, since a torus can trap random starts in stripes.
            initial = np.ones((chains, topology.num_nodes), dtype=np.int8)
        result = backend.compile(topology).sample(
            parameters,
            key=seed,
            num_chains=chains,
            num_samples=1,
            burn_in=self.config.lattice_burn_in,
            schedule=beta,
            initial_state=initial,
        )
        return _states(result.states)[:, 0].astype(np.float64), side

    @pytest.mark.parametrize("beta", (0.3, 0.6))
    def test_lattice_energy(self, backend: Backend, beta: float) -> None:
        """Energy per spin against Kaufman's exact finite-lattice solution."""
        states, side = self._run_lattice(backend, beta, seed=18)
        rows = states.reshape(-1, side, side)
        pair_sum = (rows * np.roll(rows, -1, 1)).sum((1, 2)) + (rows * np.roll(rows, -1, 2)).sum(
            (1, 2)
        )
        per_spin = -pair_sum / side**2
        exact, variance = ising2d.kaufman_energy(beta, side)
        spread = 4.0 * side**2  # the total energy lies in [-2N, 2N]
        tolerance = (
            float(stats.mean_tolerance(variance, len(states), 2, self.config.alpha, spread))
            / side**2
        )
        measured = float(per_spin.mean())
        assert abs(measured - exact) <= tolerance, (
            f"energy per spin {measured:.5f} on a {side}x{side} lattice at beta={beta}, exact "
            f"(Kaufman) {exact:.5f}, tolerance {tolerance:.5f}; Onsager's infinite lattice: "
            f"{float(ising2d.onsager_energy(beta)):.5f}"
        )

    def test_lattice_magnetisation(self, backend: Backend) -> None:
        """|m| at beta = 0.6 against Onsager (16 x 16 or more) or exact enumeration (smaller)."""
        beta = 0.6
        states, side = self._run_lattice(backend, beta, seed=19)
        magnetisation = np.abs(states.mean(1))
        if side >= 16:
            # Finite-size corrections at beta = 0.6 fall as exp(-L / xi) with xi < 2: below 1e-3.
            exact, allowance, source = float(ising2d.onsager_magnetisation(beta)), 1e-3, "Onsager"
            variance = magnetisation.var(ddof=1)
        else:
            from tsu_core.constructors import lattice_2d

            distribution = ExactDistribution.of(*lattice_2d(side), beta)
            exact = float(distribution.expectation(lambda s: np.abs(s.mean(1))))
            second = float(distribution.expectation(lambda s: s.mean(1) ** 2))
            variance, allowance, source = second - exact**2, 0.0, "exact enumeration"
        tolerance = float(stats.mean_tolerance(variance, len(states), 1, self.config.alpha, 1.0))
        measured = float(magnetisation.mean())
        assert abs(measured - exact) <= tolerance + allowance, (
            f"<|m|> = {measured:.5f} on a {side}x{side} lattice at beta={beta}, {source}: "
            f"{exact:.5f}, tolerance {tolerance + allowance:.5f}"
        )

    # -- keys, chains, schedules, persistence ----------------------------------------------------
    def test_determinism_per_key(self, backend: Backend) -> None:
        topology, parameters = random_spin_model(seed=8, num_nodes=12)
        self._fits(backend, topology)
        program = backend.compile(topology)
        options = dict(num_chains=64, num_samples=4, burn_in=3, schedule=1.0)
        first = _states(program.sample(parameters, key=42, **options).states)
        second = _states(program.sample(parameters, key=42, **options).states)
        other = _states(program.sample(parameters, key=43, **options).states)
        assert np.array_equal(first, second), "the same key must give the same samples"
        assert not np.array_equal(first, other), "different keys gave identical samples"

    def test_chain_independence(self, backend: Backend) -> None:
        """Chains started from the same state must not share randomness.

        On a ring with no field the overlap q = (1/N) sum_i s_i s'_i of two independent chains
        has mean 0 and variance (1/N^2) sum_ij <s_i s_j>^2, known in closed form.
        """
        num_nodes, coupling, beta = 16, 0.3, 1.0
        topology, parameters = ring_model(num_nodes, coupling)
        self._fits(backend, topology)
        chains = 2048
        initial = None
        if backend.capabilities.initial_state:
            initial = np.ones((chains, num_nodes), dtype=np.int8)
        result = backend.compile(topology).sample(
            parameters,
            key=20,
            num_chains=chains,
            num_samples=1,
            burn_in=self.config.burn_in,
            schedule=beta,
            initial_state=initial,
        )
        states = _states(result.states)[:, 0].astype(np.float64)
        overlaps = (states[0::2] * states[1::2]).mean(1)
        variance = float((ring_correlations(num_nodes, coupling, beta) ** 2).sum()) / num_nodes**2
        tolerance = float(stats.mean_tolerance(variance, overlaps.size, 1, self.config.alpha))
        assert abs(overlaps.mean()) <= tolerance, (
            f"mean overlap of chain pairs {overlaps.mean():.4f} exceeds {tolerance:.4f}: chains "
            "are not independent (shared random numbers?)"
        )

    def test_annealing_reaches_ground_state(self, backend: Backend) -> None:
        topology, parameters = frustrated_model(seed=9, num_nodes=12)
        self._fits(backend, topology)
        self._require(backend, "geometric schedules", "geometric" in backend.capabilities.schedules)
        ground = ExactDistribution.of(topology, parameters, 1.0).ground_energy
        result = backend.compile(topology).sample(
            parameters,
            key=21,
            num_chains=32,
            num_samples=1,
            burn_in=400,
            schedule=geometric(0.05, 5.0),
        )
        final = energy(topology, parameters, _states(result.states)[:, -1])
        assert np.isclose(final.min(), ground), (
            f"annealing reached energy {final.min():.3f}; the ground state has {ground:.3f}"
        )
        assert np.mean(np.isclose(final, ground)) >= 0.25, (
            f"only {np.mean(np.isclose(final, ground)):.0%} of 32 annealed chains reached the "
            "ground state (expected at least 25%)"
        )

    def test_initial_state_is_used(self, backend: Backend) -> None:
        """One sweep at very low temperature from the all-up state of a ferromagnet stays up."""
        self._require(backend, "initial states", backend.capabilities.initial_state)
        if backend.capabilities.exact:
            pytest.skip(
                f"{backend.name} draws exact samples, which do not depend on initial states"
            )
        from tsu_core.constructors import lattice_2d

        topology, parameters = lattice_2d(8)
        chains = 16
        initial = np.ones((chains, topology.num_nodes), dtype=np.int8)
        initial[1::2] = -1
        result = backend.compile(topology).sample(
            parameters,
            key=22,
            num_chains=chains,
            num_samples=1,
            schedule=20.0,
            initial_state=initial,
        )
        states = _states(result.states)[:, 0]
        assert np.array_equal(states, initial), "chains did not start from initial_state"
        assert np.array_equal(_states(result.final_state), initial)

    def test_sample_layout_and_thinning(self, backend: Backend) -> None:
        topology, parameters = random_spin_model(seed=10, num_nodes=7)
        self._fits(backend, topology)
        result = backend.compile(topology).sample(
            parameters, key=23, num_chains=5, num_samples=3, burn_in=2, thinning=3, schedule=1.0
        )
        states = _states(result.states)
        assert states.shape == (5, 3, 7), f"states: expected (5, 3, 7), got {states.shape}"
        assert set(np.unique(states).tolist()) <= {-1, 1}, "spin states must be -1 or +1"
        assert to_numpy(result.energies).shape == (5, 3)
        assert np.array_equal(_states(result.final_state), states[:, -1])
        assert hasattr(result.states, "__dlpack__"), "returned arrays must support DLPack"

    # -- primitives ------------------------------------------------------------------------------
    def test_pbit(self, backend: Backend) -> None:
        fields = np.linspace(-1.5, 1.5, 13)
        draws = 20000
        grid = np.broadcast_to(fields, (draws, fields.size)).astype(np.float32)
        spins = _states(backend.pbit(grid, key=24, beta=0.7))
        assert spins.shape == grid.shape and set(np.unique(spins).tolist()) <= {-1, 1}
        up = (spins == 1).mean(0)
        expected = 1 / (1 + np.exp(-2 * 0.7 * fields))
        tolerance = stats.mean_tolerance(
            expected * (1 - expected), draws, fields.size, self.config.alpha, 1.0
        )
        assert np.all(np.abs(up - expected) <= tolerance), (
            f"P(s=+1) off by up to {np.abs(up - expected).max():.4f} from sigmoid(2 beta f)"
        )

    def test_categorical_primitive(self, backend: Backend) -> None:
        logits = np.array([[0.0, 1.0, -np.inf, 0.5], [2.0, -1.0, 0.0, -np.inf]], dtype=np.float32)
        draws = 20000
        grid = np.broadcast_to(logits, (draws,) + logits.shape)
        indices = _states(backend.categorical(grid, key=25, beta=1.5))
        assert indices.shape == (draws, 2)
        assert not np.any(indices[:, 0] == 2) and not np.any(indices[:, 1] == 3), (
            "a state with logit -inf was drawn"
        )
        weights = np.exp(1.5 * logits)
        expected = weights / weights.sum(1, keepdims=True)
        frequencies = np.stack([np.bincount(indices[:, r], minlength=4) / draws for r in range(2)])
        tolerance = stats.mean_tolerance(
            expected * (1 - expected), draws, 8, self.config.alpha, 1.0
        )
        assert np.all(np.abs(frequencies - expected) <= tolerance + 1e-12), (
            f"categorical frequencies off by up to {np.abs(frequencies - expected).max():.4f}"
        )

    def test_primitives_at_extremes(self, backend: Backend) -> None:
        """Equal logits of 1e8 are equally likely, and a zero field is a fair coin at any beta:
        float32 arithmetic must not turn them into ties broken by position or into NaN."""
        draws = 20000
        logits = np.full((draws, 2), 1e8, dtype=np.float32)
        indices = _states(backend.categorical(logits, key=27))
        spins = _states(backend.pbit(np.zeros(draws, np.float32), key=28, beta=1e38))
        tolerance = float(stats.mean_tolerance(0.25, draws, 2, self.config.alpha, 1.0))
        assert abs((indices == 1).mean() - 0.5) <= tolerance, (
            f"categorical with equal logits of 1e8 drew index 1 with frequency "
            f"{(indices == 1).mean():.4f}, expected 0.5 (subtract each row's maximum first)"
        )
        assert abs((spins == 1).mean() - 0.5) <= tolerance, (
            f"p-bit with zero field at beta=1e38 gave P(+1) = {(spins == 1).mean():.4f}, "
            "expected 0.5 (is 2 * beta overflowing to infinity, and 0 * inf = NaN?)"
        )

    def test_gaussian(self, backend: Backend) -> None:
        draws = 50000
        values = to_numpy(backend.gaussian((draws,), key=26)).astype(np.float64)
        assert values.shape == (draws,)
        z = stats.z_threshold(3, self.config.alpha)
        assert abs(values.mean()) <= z / np.sqrt(draws), f"mean {values.mean():.4f}"
        # The sample variance of n normals has variance 2 / n.
        assert abs(values.var() - 1) <= z * np.sqrt(2 / draws), f"variance {values.var():.4f}"
        if backend.capabilities.gaussian != "native":
            pytest.skip(
                f"KS test skipped: {backend.name} approximates the Gaussian "
                f"({backend.capabilities.gaussian}); mean and variance checked"
            )
        ordered = np.sort(values)
        cdf = stats.normal_cdf(ordered)
        upper = np.arange(1, draws + 1) / draws
        distance = max(np.max(upper - cdf), np.max(cdf - (upper - 1 / draws)))
        assert distance <= stats.dkw_bound(draws, self.config.alpha), f"KS distance {distance:.4f}"

    # -- the protocol version ------------------------------------------------------------------
    def test_protocol_version(self, backend: Backend) -> None:
        """The backend states the protocol version it implements, of this suite's major."""
        declared = getattr(backend, "protocol_version", None)
        reason = protocol_mismatch(declared)
        assert reason is None, (
            f'{backend.name} {reason}; set `protocol_version = "{PROTOCOL_VERSION}"` on the '
            "backend and the same in its 'tsu.protocol' entry point (docs/backend-guide.md)"
        )

    # -- errors ----------------------------------------------------------------------------------
    @pytest.mark.parametrize("case", BAD_INPUT_CASES, ids=lambda case: case.name)
    def test_bad_input(self, backend: Backend, case: BadInputCase) -> None:
        check_bad_input(backend, case)

    def test_unsupported_features_raise(self, backend: Backend) -> None:
        """Whatever the capabilities deny must raise NotSupported, never run approximately."""
        capabilities = backend.capabilities
        topology, parameters = random_spin_model(seed=1, num_nodes=6)
        denied = []
        if "spin" not in capabilities.node_kinds:
            denied.append(lambda: backend.compile(topology))
        else:
            program = backend.compile(topology)
            for kind in ("linear", "geometric"):
                if kind not in capabilities.schedules:
                    schedule = geometric(0.5, 1.0) if kind == "geometric" else None
                    if schedule is None:
                        from tsu_core.schedule import linear

                        schedule = linear(0.5, 1.0)
                    denied.append(
                        lambda s=schedule: program.sample(
                            parameters, key=0, num_samples=2, schedule=s
                        )
                    )
            if not capabilities.clamping:
                denied.append(
                    lambda: program.sample(
                        parameters, key=0, clamp=Clamp(np.array([0]), np.array([1]))
                    )
                )
            if not capabilities.initial_state:
                denied.append(
                    lambda: program.sample(
                        parameters, key=0, initial_state=np.ones((1, 6), np.int8)
                    )
                )
        if "categorical" not in capabilities.node_kinds:
            categorical, _ = random_categorical_model(seed=1, num_nodes=3, num_categories=3)
            denied.append(lambda: backend.compile(categorical))
        if not denied:
            pytest.skip(f"{backend.name} declares every optional feature")
        for call in denied:
            with pytest.raises(NotSupported):
                call()
