r"""The sampling logic behind the Ising playground, in plain Python (no Streamlit).

A `Model` is a tsu-core topology with its parameters and a `layout` that places every node on a
2-D grid for display. A `Simulation` keeps persistent chains on one backend: every call to
`run` samples in chunks, starting each chunk from the previous chunk's `final_state`, and records
per sweep the energy per spin $E(s) / N$ and the magnetisation per spin
$m = \frac{1}{N}\sum_i s_i$ (averaged over chains, $|m|$ for the order parameter).

The energy convention is tsu-core's: $E(s) = -\sum_{(i,j)} J_{ij} s_i s_j - \sum_i h_i s_i$ and
$p(s) \propto e^{-\beta E(s)}$, so the lattice with $J = 1$, $h = 0$ is the model of Onsager and
Kaufman (`tsu_core.ising2d`).

RBM weights file (`.npz`, read with `allow_pickle=False`):

| key              | shape   | meaning                                                 |
| ---------------- | ------- | ------------------------------------------------------- |
| `weights`        | (V, H)  | coupling $W_{vh}$ between visible v and hidden h         |
| `visible_biases` | (V,)    | bias of each visible spin (optional, zeros)              |
| `hidden_biases`  | (H,)    | bias of each hidden spin (optional, zeros)               |
| `image_shape`    | (2,)    | rows, cols to draw the visible units as (optional)       |

Units are spins ($\pm 1$), as in `tsu_core.bipartite`.

A bitflip-dtm reverse step (`bitflip_dtm_model`) is built by bitflip-dtm itself: its checkpoint
loader, its graph and `DTM.parameters_for(t)`; the step's $x_t$ nodes are `fixed` (always
clamped, to the input image). bitflip-dtm is imported only when that model is asked for, so the
page runs with tsu-core alone.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tsu_core
from tsu_core import ExactDistribution, Parameters, Topology
from tsu_core.ising2d import kaufman_energy, onsager_energy, onsager_magnetisation

DTM_KIND = "bitflip-dtm reverse step"
MODEL_KINDS = ("lattice", "spin glass", "rbm", DTM_KIND)
# What a bitflip-dtm reverse step is conditioned on: x_t drawn from q(x_t | x_0) for an image x_0
# of the checkpoint's held-out data or bitflip-dtm's plus-sign pattern, or uniform random bits.
DTM_INPUT_KINDS = ("noised plus sign", "noised held-out image", "random bits")
SCHEDULE_KINDS = ("constant", "linear", "geometric")
# The page enumerates the exact distribution of small models; 2**20 states take about a second.
MAX_EXACT_NODES = 20
# The largest lattice side the page accepts, whatever the memory (a 4096 x 4096 image).
MAX_SIDE = 4096
# Recorded states of one chunk may use at most this fraction of the machine's memory.
MEMORY_FRACTION = 0.25


class PlaygroundError(ValueError):
    """Input the playground cannot run; the message says what to change."""


@dataclass(frozen=True, eq=False)
class Model:
    """A model to sample and how to draw it.

    Arguments:
        name: a short description shown on the page.
        topology, parameters: the tsu-core model.
        layout: integer array (rows, cols) of node indices, -1 where no node is drawn.
        lattice_side: L for the ferromagnetic L x L lattice (J = 1, h = 0), else None; the
            Onsager and Kaufman results apply only then.
        fixed_nodes, fixed_values: nodes held clamped whatever the user clamps, and their
            values (a bitflip-dtm step's input x_t). A clamp may set them to other values;
            freeing them restores these.
        legend: what the drawing shows where, for the caption under it.
        pictures: a state (N,) to named RGB images (rows, cols, 3) in [0, 1] to show beside the
            spins (a bitflip-dtm step's decoded images), or None.
    """

    name: str
    topology: Topology
    parameters: Parameters
    layout: np.ndarray
    lattice_side: int | None = None
    fixed_nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fixed_values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    legend: str = ""
    pictures: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None

    @property
    def num_nodes(self) -> int:
        return self.topology.num_nodes

    def grid(self, state: np.ndarray) -> np.ndarray:
        """The spins of one state on the display grid, 0 where no node is drawn."""
        state = np.asarray(state)
        return np.where(self.layout >= 0, state[np.maximum(self.layout, 0)], 0)


def _checked_side(side: Any) -> int:
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)):
        raise PlaygroundError(f"lattice side: expected a whole number, got {side!r}")
    if side < 3:
        raise PlaygroundError(f"lattice side: expected L >= 3 for a periodic lattice, got {side}")
    if side > MAX_SIDE:
        raise PlaygroundError(
            f"lattice side: {side} x {side} is too large for this page (at most "
            f"{MAX_SIDE} x {MAX_SIDE}); choose a smaller L"
        )
    return int(side)


def lattice_model(side: int) -> Model:
    """The ferromagnetic periodic L x L lattice, J = 1 and h = 0."""
    side = _checked_side(side)
    topology, parameters = tsu_core.lattice_2d(side)
    layout = np.arange(side * side).reshape(side, side)
    return Model(f"{side} x {side} Ising lattice", topology, parameters, layout, side)


def spin_glass_model(side: int, seed: int = 0) -> Model:
    r"""An Edwards-Anderson spin glass: the periodic L x L lattice with couplings
    $J_{ij} \sim \mathcal N(0, 1)$ drawn from `seed`, h = 0."""
    side = _checked_side(side)
    topology = Topology.lattice_2d(side)
    generator = tsu_core.Key(int(seed)).generator()
    weights = generator.standard_normal(topology.num_edges)
    parameters = Parameters(weights, np.zeros(topology.num_nodes)).validate(topology)
    layout = np.arange(side * side).reshape(side, side)
    return Model(f"{side} x {side} Gaussian spin glass (seed {seed})", topology, parameters, layout)


def _rbm_layout(num_visible: int, num_hidden: int, image_shape: tuple[int, int]) -> np.ndarray:
    """Visible units as an image, a blank row, then the hidden units wrapped to the same width."""
    rows, cols = image_shape
    hidden_rows = math.ceil(num_hidden / cols)
    layout = np.full((rows + 1 + hidden_rows, cols), -1, dtype=np.int64)
    layout[:rows] = np.arange(num_visible).reshape(rows, cols)
    hidden = np.full(hidden_rows * cols, -1, dtype=np.int64)
    hidden[:num_hidden] = num_visible + np.arange(num_hidden)
    layout[rows + 1 :] = hidden.reshape(hidden_rows, cols)
    return layout


def rbm_model(
    weights: Any,
    visible_biases: Any = None,
    hidden_biases: Any = None,
    image_shape: tuple[int, int] | None = None,
    name: str = "RBM",
) -> Model:
    """An RBM of spin units, built through `tsu_core.bipartite`."""
    try:
        topology, parameters = tsu_core.bipartite(weights, visible_biases, hidden_biases)
    except tsu_core.TSUError as error:
        raise PlaygroundError(f"RBM weights: {error}") from None
    num_visible, num_hidden = np.shape(weights)
    if image_shape is None:
        cols = math.ceil(math.sqrt(num_visible))
        while num_visible % cols:
            cols += 1
        image_shape = (num_visible // cols, cols)
    rows, cols = (int(value) for value in image_shape)
    if rows * cols != num_visible:
        raise PlaygroundError(
            f"RBM image_shape: expected rows * cols = {num_visible} visible units, got "
            f"{rows} x {cols}"
        )
    layout = _rbm_layout(num_visible, num_hidden, (rows, cols))
    return Model(
        f"{name}: {num_visible} visible x {num_hidden} hidden", topology, parameters, layout
    )


def load_rbm(source: str | Path | bytes) -> Model:
    """An RBM from an `.npz` weights file (path or bytes) in the format of the module docstring."""
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with np.load(data, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise PlaygroundError(f"RBM weights file: cannot read it as .npz ({error})") from None
    if "weights" not in arrays:
        raise PlaygroundError(
            f"RBM weights file: expected a 'weights' array of shape (V, H), found keys "
            f"{sorted(arrays)}"
        )
    image_shape = arrays.get("image_shape")
    return rbm_model(
        arrays["weights"],
        arrays.get("visible_biases"),
        arrays.get("hidden_biases"),
        None if image_shape is None else tuple(int(v) for v in np.ravel(image_shape)),
    )


def save_rbm(
    path: str | Path,
    weights: np.ndarray,
    visible_biases: np.ndarray,
    hidden_biases: np.ndarray,
    image_shape: tuple[int, int] | None = None,
) -> None:
    """Write an RBM weights file atomically (temporary file, then rename)."""
    path = Path(path)
    arrays = {
        "weights": np.asarray(weights, dtype=np.float64),
        "visible_biases": np.asarray(visible_biases, dtype=np.float64),
        "hidden_biases": np.asarray(hidden_biases, dtype=np.float64),
    }
    if image_shape is not None:
        arrays["image_shape"] = np.asarray(image_shape, dtype=np.int64)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(descriptor, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, path)


def demo_rbm() -> Model:
    r"""A small RBM made in code: 4 x 3 visible pixels, 4 hidden units, Hebbian weights
    $W = \frac{1}{2} \sum_p x_p c_p^\top$ storing a vertical bar and a horizontal bar
    (patterns $x_p$ in $\pm 1$, codes $c_p$ one hidden pair each)."""
    vertical = -np.ones((4, 3))
    vertical[:, 1] = 1
    horizontal = -np.ones((4, 3))
    horizontal[1, :] = 1
    patterns = np.stack([vertical.ravel(), horizontal.ravel()])  # (2, 12)
    codes = np.array([[1, 1, -1, -1], [-1, -1, 1, 1]], dtype=np.float64)  # (2, 4)
    weights = 0.5 * patterns.T @ codes
    return rbm_model(weights, np.zeros(12), np.zeros(4), (4, 3), name="demo RBM (two bars)")


# -- bitflip-dtm reverse steps ----------------------------------------------------------------------
def bitflip_dtm_available() -> bool:
    """Whether the bitflip-dtm package is installed (without importing it or torch)."""
    return importlib.util.find_spec("bitflip_dtm") is not None


BITFLIP_DTM_MISSING = (
    "bitflip-dtm reverse step: the bitflip-dtm package is not installed; install it with "
    "`pip install -e packages/bitflip-dtm` (it brings torch) and reload the page"
)


def import_bitflip_dtm() -> Any:
    """The bitflip_dtm module; `PlaygroundError` saying how to install it when it is absent."""
    try:
        import bitflip_dtm
    except ImportError as error:
        raise PlaygroundError(f"{BITFLIP_DTM_MISSING} ({error})") from None
    return bitflip_dtm


def load_dtm(source: str | Path | Mapping[str, bytes]) -> Any:
    """A bitflip-dtm `DTM` with a checkpoint's parameters, read by bitflip-dtm's own loader.

    Arguments:
        source: a checkpoint's JSON or safetensors path, a directory (its latest checkpoint),
            or uploaded files as {file name: bytes} (the JSON and its safetensors file).
    """
    import_bitflip_dtm()
    if isinstance(source, Mapping):
        names = [Path(name).name for name in source]
        metadata = [name for name in names if name.endswith(".json")]
        if len(metadata) != 1:
            raise PlaygroundError(
                "bitflip-dtm checkpoint: upload its two files, checkpoint-<n>.json and "
                f"checkpoint-<n>.safetensors; got {sorted(names)}"
            )
        with tempfile.TemporaryDirectory() as directory:
            for name, data in source.items():
                (Path(directory) / Path(name).name).write_bytes(data)
            return _load_dtm_path(Path(directory) / metadata[0])
    if not str(source).strip():
        raise PlaygroundError(
            "bitflip-dtm checkpoint: give the path of a checkpoint-<n>.json (or of its directory)"
        )
    return _load_dtm_path(Path(source).expanduser())


def _load_dtm_path(path: Path) -> Any:
    from bitflip_dtm.checkpoint import load_model

    try:
        return load_model(path)
    except (RuntimeError, ValueError, KeyError, TypeError, OSError) as error:
        # CheckpointError and load_state_dict's mismatches are RuntimeErrors, ConfigError a
        # ValueError: all say what is wrong with the file.
        raise PlaygroundError(f"bitflip-dtm checkpoint: {error}") from None


def _checked_step(dtm: Any, t: Any) -> int:
    num_steps = dtm.num_steps
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= num_steps:
        raise PlaygroundError(
            f"reverse step: expected a whole number t in [1, {num_steps}] (the checkpoint has "
            f"T = {num_steps} steps), got {t!r}"
        )
    return int(t)


def dtm_input(dtm: Any, t: int, kind: str = "noised plus sign", seed: int = 0) -> np.ndarray:
    r"""An input $x_t$ for reverse step t as spins (D,): $x_t \sim q(x_t \mid x_0)$ by
    bitflip-dtm's forward process, or uniform random bits ("random bits", the law of $x_T$
    when the final flip probability is 1/2)."""
    bitflip_dtm = import_bitflip_dtm()
    import torch

    from bitflip_dtm.data import bits_to_spins, two_patterns

    t = _checked_step(dtm, t)
    config = dtm.config
    generator = torch.Generator().manual_seed(int(seed))
    if kind == "random bits":
        bits = torch.randint(0, 2, (config.num_bits,), generator=generator)
        return (2 * bits - 1).numpy().astype(np.int8)
    if kind == "noised plus sign":
        images = two_patterns(config.image_size, config.channels)[1:]
    elif kind == "noised held-out image":
        try:
            images, _ = bitflip_dtm.load_dataset(config, "held-out")
        except (ValueError, ImportError, OSError) as error:
            raise PlaygroundError(
                f"input x_t: cannot load the checkpoint's data set '{config.dataset}' ({error}); "
                "choose 'noised plus sign' or 'random bits'"
            ) from None
        index = int(seed) % images.shape[0]
        images = images[index : index + 1]
    else:
        raise PlaygroundError(f"input x_t: expected one of {DTM_INPUT_KINDS}, got {kind!r}")
    spins = bits_to_spins(bitflip_dtm.images_to_bits(images, config))
    noisy = dtm.forward_process.noise(spins, t, generator)
    return noisy.reshape(-1).numpy().astype(np.int8)


def _dtm_layout(dtm: Any) -> np.ndarray:
    """x_{t-1} (left) and x_t (right), each as its bit planes in a grid of images (one plane
    per image, about twice as many rows of images as columns, so the whole is near square), a
    blank row, then the latents wrapped to the same width."""
    graph, config = dtm.graph, dtm.config
    size, planes = config.image_size, config.bits_per_pixel
    grid_cols = math.ceil(math.sqrt(planes / 2))
    grid_rows = math.ceil(planes / grid_cols)
    half = grid_cols * (size + 1) - 1  # the width of one side's grid of plane images
    width = 2 * half + 1
    image_rows = grid_rows * (size + 1) - 1
    latent_rows = math.ceil(graph.num_latents / width)
    layout = np.full((image_rows + (1 + latent_rows if latent_rows else 0), width), -1, np.int64)
    # Bit (row * size + col) * planes + plane (bitflip_dtm.data's layout) of x_{t-1} and of x_t.
    bits = np.arange(graph.num_bits).reshape(size, size, planes)
    for plane in range(planes):
        top = (plane // grid_cols) * (size + 1)
        left = (plane % grid_cols) * (size + 1)
        for offset, nodes in ((0, graph.visible), (half + 1, graph.noisy)):
            layout[top : top + size, offset + left : offset + left + size] = nodes[
                bits[:, :, plane]
            ]
    if latent_rows:
        latents = np.full(latent_rows * width, -1, np.int64)
        latents[: graph.num_latents] = graph.latent
        layout[image_rows + 1 :] = latents.reshape(latent_rows, width)
    return layout


def bitflip_dtm_model(dtm: Any, t: int, noisy: Any) -> Model:
    r"""Reverse step t of a bitflip-dtm model given the input $x_t$ (spins (D,)).

    The topology is bitflip-dtm's reverse-step graph and the parameters are
    `dtm.parameters_for(t)` (its energy $E_t$, coupling $\gamma_t$ to $x_t$ included); the $x_t$
    nodes are fixed to `noisy`, so sampling draws $x_{t-1}$ and the latents from
    $p_\theta(x_{t-1}, z \mid x_t)$ at beta = 1.
    """
    t = _checked_step(dtm, t)
    graph = dtm.graph
    noisy = np.asarray(noisy).reshape(-1)
    if noisy.shape != (graph.num_bits,) or not np.isin(noisy, (-1, 1)).all():
        raise PlaygroundError(
            f"input x_t: expected {graph.num_bits} spins (+1 or -1), got shape {noisy.shape}"
        )
    step = dtm.parameters_for(t)
    parameters = Parameters(
        step.weights.detach().cpu().double().numpy(), step.biases.detach().cpu().double().numpy()
    )
    try:
        parameters.validate(graph.topology)
    except tsu_core.TSUError as error:
        raise PlaygroundError(f"bitflip-dtm step {t}: {error}") from None
    config = dtm.config
    name = (
        f"bitflip-dtm step t = {t} of {dtm.num_steps} ({config.image_size} x "
        f"{config.image_size} x {config.bits_per_pixel} bits, {graph.num_latents} latents)"
    )
    return Model(
        name,
        graph.topology,
        parameters,
        _dtm_layout(dtm),
        fixed_nodes=np.asarray(graph.noisy, np.int64),
        fixed_values=noisy.astype(np.int8),
        legend=(
            "left: x_{t-1}, sampled; right: x_t, the input (clamped); one image per bit plane, "
            "planes in reading order; below: the latents"
        ),
        pictures=lambda state: _dtm_pictures(dtm, state),
    )


def _dtm_pictures(dtm: Any, state: np.ndarray) -> dict[str, np.ndarray]:
    """x_{t-1} and x_t of one state decoded to images by bitflip-dtm (`bits_to_images`)."""
    import torch

    from bitflip_dtm.data import bits_to_images, spins_to_bits

    graph = dtm.graph
    state = torch.from_numpy(np.asarray(state, np.int8))
    spins = torch.stack([state[graph.visible], state[graph.noisy]])
    images = bits_to_images(spins_to_bits(spins), dtm.config).permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return {"x_{t-1} decoded": images[0], "x_t decoded": images[1]}


def make_schedule(kind: str, start: float, end: float | None = None) -> tsu_core.BetaSchedule:
    """A tsu-core beta schedule; bad values raise `tsu_core.InvalidRequest` with a clear message."""
    if kind == "constant":
        return tsu_core.constant(start)
    if kind == "linear":
        return tsu_core.linear(start, end)
    if kind == "geometric":
        return tsu_core.geometric(start, end)
    raise PlaygroundError(f"schedule: expected one of {SCHEDULE_KINDS}, got {kind!r}")


def chunk_schedule(schedule: tsu_core.BetaSchedule, num_sweeps: int, first: int, last: int):
    """The schedule for sweeps `first .. last - 1` of a `num_sweeps`-sweep run.

    A linear or geometric schedule restricted to consecutive sweeps is again linear or geometric,
    from the beta of its first sweep to the beta of its last, so chunks follow the whole run's
    betas exactly with only the schedules every backend supports.
    """
    betas = schedule.betas(num_sweeps)
    if schedule.kind == "constant":
        return schedule
    if schedule.kind == "linear":
        return tsu_core.linear(betas[first], betas[last - 1])
    return tsu_core.geometric(betas[first], betas[last - 1])


def parse_mask(text: str, layout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clamped nodes and values from a text mask: one line per grid row, one character per
    cell, `+` clamps the spin to +1, `-` to -1, `.` leaves it free (spaces are ignored).

    Returns:
        sorted node indices and their values (+-1, int8).
    """
    lines = [line.replace(" ", "") for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    rows, cols = layout.shape
    if len(lines) != rows or any(len(line) != cols for line in lines):
        widths = sorted({len(line) for line in lines})
        raise PlaygroundError(
            f"clamp mask: expected {rows} lines of {cols} characters (one per spin), got "
            f"{len(lines)} lines of {widths} characters"
        )
    symbols = np.array([list(line) for line in lines])
    unknown = sorted(set(symbols.ravel()) - {"+", "-", "."})
    if unknown:
        raise PlaygroundError(f"clamp mask: use '+', '-' and '.' only, got {unknown}")
    clamped = (symbols != ".") & (layout >= 0)
    nodes = layout[clamped]
    values = np.where(symbols[clamped] == "+", 1, -1).astype(np.int8)
    order = np.argsort(nodes)
    return nodes[order].astype(np.int64), values[order]


def format_mask(nodes: np.ndarray, values: np.ndarray, layout: np.ndarray) -> str:
    """The text mask of `parse_mask` for the given clamps."""
    symbols = np.full(layout.shape, ".", dtype="<U1")
    value_of = dict(zip(np.asarray(nodes).tolist(), np.asarray(values).tolist(), strict=True))
    for (row, col), node in np.ndenumerate(layout):
        if node in value_of:
            symbols[row, col] = "+" if value_of[node] > 0 else "-"
    return "\n".join("".join(row) for row in symbols)


def machine_memory_bytes() -> int:
    """Physical memory of this machine (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_fits(model: Model, backend: Any, num_chains: int, chunk_sweeps: int) -> None:
    """Raise `PlaygroundError` when the model is too large for the backend or the machine."""
    limit = backend.capabilities.max_nodes
    if limit is not None and model.num_nodes > limit:
        hint = "a 4 x 4 lattice" if limit < 25 else f"at most {limit} spins"
        raise PlaygroundError(
            f"{model.name} has {model.num_nodes} spins, more than the '{backend.name}' backend "
            f"takes (capabilities.max_nodes = {limit}); choose {hint} or another backend"
        )
    needed = num_chains * chunk_sweeps * model.num_nodes * 9  # int8 states + float64 copies
    available = int(machine_memory_bytes() * MEMORY_FRACTION)
    if needed > available:
        raise PlaygroundError(
            f"{model.name} with {num_chains} chains and {chunk_sweeps} sweeps per chunk needs "
            f"about {needed / 2**30:.1f} GiB, more than this machine allows "
            f"({available / 2**30:.1f} GiB); choose a smaller lattice, fewer chains or a "
            "smaller chunk"
        )


@dataclass
class Trace:
    """Measurements per sweep, averaged over chains."""

    sweeps: list[int] = field(default_factory=list)
    betas: list[float] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    magnetisation: list[float] = field(default_factory=list)
    absolute_magnetisation: list[float] = field(default_factory=list)

    def add(self, sweep: int, beta: float, states: np.ndarray, energies: np.ndarray) -> None:
        """Record one sweep from states (C, N) and total energies (C,)."""
        spins = states.astype(np.float64)
        magnetisation = spins.mean(axis=-1)
        self.sweeps.append(sweep)
        self.betas.append(beta)
        self.energy.append(float(np.mean(energies)) / states.shape[-1])
        self.magnetisation.append(float(magnetisation.mean()))
        self.absolute_magnetisation.append(float(np.abs(magnetisation).mean()))


@dataclass(frozen=True)
class ChunkReport:
    """What one chunk did: sweeps done so far, the betas used, and its speed."""

    sweeps_done: int
    last_beta: float
    spin_updates: int
    seconds: float

    @property
    def updates_per_nanosecond(self) -> float:
        return self.spin_updates / max(self.seconds * 1e9, 1e-30)


class Simulation:
    """Persistent chains of one model on one backend, sampled in chunks.

    Arguments:
        model: what to sample.
        backend: a tsu-core backend (`tsu_core.get_backend(name)`).
        num_chains: independent chains; the page draws chain 0 and averages over all.
        seed: the key of the initial states and of every chunk (folded with the chunk number).
    """

    def __init__(self, model: Model, backend: Any, num_chains: int = 8, seed: int = 0) -> None:
        if isinstance(num_chains, bool) or not isinstance(num_chains, (int, np.integer)):
            raise PlaygroundError(f"chains: expected a whole number, got {num_chains!r}")
        if num_chains < 1:
            raise PlaygroundError(f"chains: expected at least 1 chain, got {num_chains}")
        check_fits(model, backend, num_chains, 1)
        self.model = model
        self.backend = backend
        self.num_chains = int(num_chains)
        self.key = tsu_core.Key(int(seed))
        self.program = backend.compile(model.topology)
        generator = self.key.fold_in(0).generator()
        shape = (self.num_chains, model.num_nodes)
        self.state = np.where(generator.random(shape) < 0.5, 1, -1).astype(np.int8)
        self.clamp_nodes = np.zeros(0, np.int64)
        self.clamp_values = np.zeros(0, np.int8)
        self.set_clamp(self.clamp_nodes, self.clamp_values)  # the model's fixed nodes
        self.trace = Trace()
        self.chunks_run = 0
        self.spin_updates = 0
        self.seconds = 0.0
        self._record_current(beta=float("nan"))

    # -- state ----------------------------------------------------------------------------------
    def _record_current(self, beta: float) -> None:
        energies = tsu_core.energy(self.model.topology, self.model.parameters, self.state)
        self.trace.add(self.sweeps_done, beta, self.state, energies)

    @property
    def sweeps_done(self) -> int:
        return len(self.trace.sweeps) - 1 if self.trace.sweeps else 0

    def set_clamp(self, nodes: Any, values: Any) -> None:
        """Hold `nodes` at `values` (+-1) in every chain from the next sweep on; the model's
        fixed nodes not among them stay clamped to their fixed values."""
        nodes = np.asarray(nodes, dtype=np.int64).ravel()
        values = np.asarray(values).ravel()
        if nodes.size != values.size:
            raise PlaygroundError(f"clamp: {nodes.size} nodes but {values.size} values")
        if nodes.size and ((nodes < 0) | (nodes >= self.model.num_nodes)).any():
            raise PlaygroundError(f"clamp: node indices must lie in [0, {self.model.num_nodes})")
        if not np.isin(values, (-1, 1)).all():
            raise PlaygroundError("clamp: values must be +1 or -1")
        fixed = ~np.isin(self.model.fixed_nodes, nodes)
        nodes = np.concatenate([nodes, self.model.fixed_nodes[fixed]])
        values = np.concatenate([values, self.model.fixed_values[fixed]])
        nodes, first = np.unique(nodes, return_index=True)
        self.clamp_nodes = nodes
        self.clamp_values = values[first].astype(np.int8)
        self.state[:, self.clamp_nodes] = self.clamp_values

    def change_clamp(self, nodes: Any, value: int | None) -> None:
        """Clamp `nodes` to `value` (+1 or -1), or free them (None); other clamps stay."""
        nodes = np.asarray(nodes, dtype=np.int64).ravel()
        keep = ~np.isin(self.clamp_nodes, nodes)
        kept_nodes, kept_values = self.clamp_nodes[keep], self.clamp_values[keep]
        if value is None:
            self.set_clamp(kept_nodes, kept_values)
            return
        self.set_clamp(
            np.concatenate([kept_nodes, nodes]),
            np.concatenate([kept_values, np.full(nodes.size, value, dtype=np.int8)]),
        )

    @property
    def clamp(self) -> tsu_core.Clamp | None:
        if self.clamp_nodes.size == 0:
            return None
        return tsu_core.Clamp(self.clamp_nodes, self.clamp_values)

    @property
    def updates_per_nanosecond(self) -> float:
        """Free-spin updates per nanosecond over every chunk run so far (0 before any)."""
        return self.spin_updates / (self.seconds * 1e9) if self.seconds > 0 else 0.0

    # -- sampling -------------------------------------------------------------------------------
    def run(
        self, schedule: tsu_core.BetaSchedule, num_sweeps: int, chunk_sweeps: int = 10
    ) -> Iterator[ChunkReport]:
        """Run `num_sweeps` sweeps in chunks of `chunk_sweeps`, yielding after each chunk.

        Each chunk is one `program.sample` call with `initial_state` = the previous
        `final_state`, recording every sweep; the schedule spans the whole run.
        """
        for name, value in (("sweeps", num_sweeps), ("sweeps per chunk", chunk_sweeps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise PlaygroundError(f"{name}: expected a whole number >= 1, got {value!r}")
        check_fits(self.model, self.backend, self.num_chains, min(chunk_sweeps, num_sweeps))
        betas = schedule.betas(num_sweeps)
        free = self.model.num_nodes - self.clamp_nodes.size
        for first in range(0, num_sweeps, chunk_sweeps):
            last = min(first + chunk_sweeps, num_sweeps)
            self.chunks_run += 1
            started = time.perf_counter()
            samples = self.program.sample(
                self.model.parameters,
                key=self.key.fold_in(self.chunks_run),
                num_chains=self.num_chains,
                num_samples=last - first,
                schedule=chunk_schedule(schedule, num_sweeps, first, last),
                clamp=self.clamp,
                initial_state=self.state,
            )
            states = np.asarray(samples.states)
            energies = np.asarray(samples.energies)
            self.state = np.asarray(samples.final_state).astype(np.int8)
            seconds = time.perf_counter() - started
            updates = self.num_chains * (last - first) * free
            self.spin_updates += updates
            self.seconds += seconds
            done = self.sweeps_done
            for offset in range(last - first):
                self.trace.add(
                    done + offset + 1,
                    float(betas[first + offset]),
                    states[:, offset],
                    energies[:, offset],
                )
            yield ChunkReport(self.sweeps_done, float(betas[last - 1]), updates, seconds)

    def run_all(
        self, schedule: tsu_core.BetaSchedule, num_sweeps: int, chunk_sweeps: int = 10
    ) -> None:
        """`run` to the end without looking at the chunks."""
        for _ in self.run(schedule, num_sweeps, chunk_sweeps):
            pass

    # -- measured and exact values --------------------------------------------------------------
    def recent_mean(self, quantity: str, num_sweeps: int) -> float:
        """Mean of a trace quantity over the last `num_sweeps` recorded sweeps."""
        values = getattr(self.trace, quantity)[1:] or getattr(self.trace, quantity)
        return float(np.mean(values[-max(int(num_sweeps), 1) :]))


@dataclass(frozen=True)
class ExactValues:
    """Exact values at one beta; None where they do not apply to the model."""

    onsager_energy: float | None = None
    onsager_magnetisation: float | None = None
    kaufman_energy: float | None = None
    kaufman_energy_std: float | None = None
    enumerated_energy: float | None = None
    enumerated_energy_std: float | None = None


def exact_values(model: Model, beta: float, clamp_nodes: Any = (), clamp_values: Any = ()):
    """Onsager (infinite lattice) and Kaufman (this finite lattice, no clamps) values, and the
    energy per spin by exact enumeration for models of at most `MAX_EXACT_NODES` free spins.

    The `*_std` entries are the standard deviation of one sample's energy per spin."""
    nodes = np.asarray(clamp_nodes, dtype=np.int64).ravel()
    values: dict[str, float | None] = {}
    if model.lattice_side is not None:
        values["onsager_energy"] = float(onsager_energy(beta))
        values["onsager_magnetisation"] = float(onsager_magnetisation(beta))
        if nodes.size == 0:
            mean, variance = kaufman_energy(beta, model.lattice_side)
            values["kaufman_energy"] = mean
            values["kaufman_energy_std"] = math.sqrt(max(variance, 0.0)) / model.num_nodes
    if model.num_nodes - nodes.size <= MAX_EXACT_NODES:
        exact = ExactDistribution.of(
            model.topology, model.parameters, beta, nodes, np.asarray(clamp_values)
        )
        values["enumerated_energy"] = exact.mean_energy / model.num_nodes
        values["enumerated_energy_std"] = math.sqrt(exact.energy_variance) / model.num_nodes
    return ExactValues(**values)
