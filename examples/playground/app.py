"""The Ising playground: a Streamlit page to watch a TSU backend sample.

Run it with `streamlit run examples/playground/app.py`. The sampling logic lives in
`simulation.py`; this file only draws widgets and charts.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import tsu_core
from tsu_core.ising2d import CRITICAL_BETA, kaufman_energy, onsager_energy, onsager_magnetisation

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simulation  # noqa: E402  (the page runs as a script, not as a package)
from simulation import PlaygroundError, Simulation  # noqa: E402

PAGE_ERRORS = (tsu_core.TSUError, PlaygroundError, MemoryError)
DTM = simulation.DTM_KIND
MOUSE_CLAMP_LIMIT = 4096  # spins drawn as selectable points; larger models use the text mask
MASK_SIDE_LIMIT = 256  # the text mask is offered up to 256 x 256 spins
IMAGE_SIDE_LIMIT = 512  # larger grids are drawn every k-th spin
COLOURS = {
    "up": (245, 245, 240),
    "down": (30, 30, 45),
    "clamped up": (230, 90, 60),
    "clamped down": (50, 110, 220),
    "empty": (200, 200, 200),
}

st.set_page_config(page_title="TSU Ising playground", layout="wide")
st.title("TSU Ising playground")


def stop_with(error: Exception) -> None:
    st.error(str(error))
    st.stop()


# -- sidebar: model, backend, schedule ------------------------------------------------------------
backends = tsu_core.available_backends()
try:
    preferred = tsu_core.get_backend().name
except tsu_core.TSUError as error:
    st.warning(str(error))
    preferred = backends[0]
with st.sidebar:
    st.header("Model")
    backend_name = st.selectbox(
        "Backend", backends, index=backends.index(preferred) if preferred in backends else 0
    )
    backend = tsu_core.get_backend(backend_name)
    limit = backend.capabilities.max_nodes
    st.caption(
        f"`{backend_name}`: at most {limit} spins" if limit else f"`{backend_name}`: no size limit"
    )
    kind = st.selectbox("Model", simulation.MODEL_KINDS)
    default_side = 4 if limit is not None and limit < 64 * 64 else 64
    side = seed = rbm_bytes = None
    if kind in ("lattice", "spin glass"):
        side = st.number_input("Lattice side L (L x L spins)", value=default_side, step=1)
    if kind == "spin glass":
        seed = st.number_input("Couplings seed", value=0, min_value=0, step=1)
    if kind == "rbm":
        upload = st.file_uploader("RBM weights (.npz: weights, visible_biases, hidden_biases)")
        rbm_bytes = upload.getvalue() if upload is not None else None
        if rbm_bytes is None:
            st.caption("No file given: a demo RBM (4 x 3 pixels, 4 hidden units) is used.")
    dtm_files = dtm_path = dtm_step = dtm_input = dtm_seed = None
    if kind == DTM and simulation.bitflip_dtm_available():
        uploads = st.file_uploader(
            "bitflip-dtm checkpoint (checkpoint-<n>.json and .safetensors)",
            accept_multiple_files=True,
        )
        dtm_files = {upload.name: upload.getvalue() for upload in uploads or ()}
        dtm_path = st.text_input("... or its path (the .json, or the run directory)")
        dtm_step = st.number_input("Reverse step t (1 = the last step, T = the first)", value=1)
        dtm_input = st.selectbox("Input x_t", simulation.DTM_INPUT_KINDS)
        dtm_seed = st.number_input("Input seed (image and noise)", value=0, min_value=0, step=1)
    num_chains = st.number_input("Chains", value=8, step=1)

    st.header("Temperature")
    schedule_kind = st.radio("Schedule", simulation.SCHEDULE_KINDS, horizontal=True)
    if schedule_kind == "constant":
        # bitflip-dtm's steps are trained for beta = 1; 0.3 lies below the lattice's critical beta.
        beta_start = st.number_input(
            "beta", value=1.0 if kind == DTM else 0.3, step=0.05, format="%.4f"
        )
        beta_end = beta_start
    else:
        beta_start = st.number_input("beta at the first sweep", value=0.1, format="%.4f")
        beta_end = st.number_input("beta at the last sweep", value=0.6, format="%.4f")
    if kind == "lattice":
        st.caption(f"Critical beta of the 2D lattice: {CRITICAL_BETA:.4f}")
    num_sweeps = st.number_input("Sweeps per run", value=200, step=50)
    chunk_sweeps = st.number_input("Sweeps per chunk (redraw interval)", value=20, step=5)
    run_clicked = st.button("Run sweeps", type="primary")
    reset_clicked = st.button("Reset chains")


# -- the model and its persistent chains -----------------------------------------------------------
def digest(files: dict[str, bytes] | bytes | None) -> str | None:
    if not files:
        return None
    if isinstance(files, bytes):
        return hashlib.sha256(files).hexdigest()
    return hashlib.sha256(
        b"".join(name.encode() + data for name, data in files.items())
    ).hexdigest()


def dtm_step_model() -> simulation.Model:
    """The chosen reverse step of the uploaded (or named) bitflip-dtm checkpoint."""
    if not simulation.bitflip_dtm_available():
        raise PlaygroundError(simulation.BITFLIP_DTM_MISSING)
    if not dtm_files and not (dtm_path or "").strip():
        st.info(
            "Upload a bitflip-dtm checkpoint (both files) or give its path in the sidebar. Make "
            "a small one in a minute with `bitflip-dtm train --preset tiny --out runs/tiny`."
        )
        st.stop()
    dtm = simulation.load_dtm(dtm_files or dtm_path)
    noisy = simulation.dtm_input(dtm, int(dtm_step), dtm_input, int(dtm_seed))
    return simulation.bitflip_dtm_model(dtm, int(dtm_step), noisy)


def build_model() -> simulation.Model:
    if kind == "lattice":
        return simulation.lattice_model(int(side))
    if kind == "spin glass":
        return simulation.spin_glass_model(int(side), int(seed))
    if kind == DTM:
        return dtm_step_model()
    return simulation.load_rbm(rbm_bytes) if rbm_bytes is not None else simulation.demo_rbm()


try:
    schedule = simulation.make_schedule(schedule_kind, beta_start, beta_end)
    dtm_choice = (digest(dtm_files), dtm_path, dtm_step, dtm_input, dtm_seed)
    identity = (kind, side, seed, digest(rbm_bytes), *dtm_choice, backend_name, int(num_chains))
    # Models are built only when the choice changes: a checkpoint is read once, not per redraw.
    if reset_clicked or st.session_state.get("identity") != identity:
        st.session_state.simulation = Simulation(build_model(), backend, int(num_chains))
        st.session_state.identity = identity
        st.session_state.measured_points = []
        st.session_state.last_run = 0
        st.session_state.pop("applied_selection", None)
except PAGE_ERRORS as error:
    stop_with(error)
sim: Simulation = st.session_state.simulation


# -- drawing ---------------------------------------------------------------------------------------
def spins_image(sim: Simulation, chain: int = 0, pixels: int = 360) -> np.ndarray:
    """An RGB image of one chain's spins, clamped spins tinted."""
    model = sim.model
    state = sim.state[chain]
    clamped = np.zeros(model.num_nodes, dtype=np.int8)
    clamped[sim.clamp_nodes] = 1
    grid = model.grid(state)
    grid_clamped = np.where(model.layout >= 0, clamped[np.maximum(model.layout, 0)], 0)
    image = np.empty(model.layout.shape + (3,), dtype=np.uint8)
    image[grid > 0] = COLOURS["up"]
    image[grid < 0] = COLOURS["down"]
    image[(grid > 0) & (grid_clamped > 0)] = COLOURS["clamped up"]
    image[(grid < 0) & (grid_clamped > 0)] = COLOURS["clamped down"]
    image[model.layout < 0] = COLOURS["empty"]
    stride = -(-max(model.layout.shape) // IMAGE_SIDE_LIMIT)
    image = image[::stride, ::stride]
    scale = max(1, pixels // max(image.shape[:2]))
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def picture_image(picture: np.ndarray, pixels: int = 120) -> np.ndarray:
    """An RGB image in [0, 1] as uint8, enlarged to about `pixels` on its longer side."""
    scale = max(1, pixels // max(picture.shape[:2]))
    image = np.clip(np.round(picture * 255), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def exact_now(sim: Simulation, beta: float) -> simulation.ExactValues:
    """Exact values at beta for the current clamps, computed once per (model, beta, clamps)."""
    cache = st.session_state.setdefault("exact_cache", {})
    key = (st.session_state.identity, beta, sim.clamp_nodes.tobytes(), sim.clamp_values.tobytes())
    if key not in cache:
        cache[key] = simulation.exact_values(sim.model, beta, sim.clamp_nodes, sim.clamp_values)
    return cache[key]


@st.cache_data
def kaufman_curve(side: int, betas: tuple[float, ...]) -> list[float]:
    return [kaufman_energy(beta, side)[0] for beta in betas]


def current_beta() -> float:
    betas = [beta for beta in sim.trace.betas if np.isfinite(beta)]
    return betas[-1] if betas else schedule.start


def measured_window() -> int:
    """Sweeps averaged for the measured values: the second half of the last run at constant
    beta, the last tenth of an annealing run (where beta is near its final value)."""
    return max(1, st.session_state.last_run // st.session_state.get("window_divisor", 2))


def render_metrics(box) -> None:
    beta = current_beta()
    exact = exact_now(sim, beta)
    window = measured_window()
    measured = sim.recent_mean("energy", window)
    reference = exact.kaufman_energy if exact.kaufman_energy is not None else None
    reference = exact.enumerated_energy if reference is None else reference
    with box.container():
        columns = st.columns(6)
        columns[0].metric("Sweeps", sim.sweeps_done)
        columns[1].metric("beta", f"{beta:.4f}")
        columns[2].metric(
            "Energy measured",
            f"{measured:.4f}",
            help=f"energy per spin, mean over {sim.num_chains} chains and the last {window} sweeps",
        )
        columns[3].metric(
            "Energy exact",
            "n/a" if reference is None else f"{reference:.4f}",
            help="energy per spin: Kaufman's finite-lattice result, or exact enumeration",
        )
        if exact.onsager_energy is not None:
            columns[4].metric(
                "Onsager (L = inf)",
                f"{exact.onsager_energy:.4f}",
                help=f"energy per spin of the infinite lattice; there |m| = "
                f"{exact.onsager_magnetisation:.4f}",
            )
        columns[5].metric(
            "Spin updates / ns",
            f"{sim.updates_per_nanosecond:.3g}",
            help="free spins x chains x sweeps / wall time of the sampling calls",
        )
        st.caption(
            f"|m| measured: {sim.recent_mean('absolute_magnetisation', window):.4f} · "
            f"m measured: {sim.recent_mean('magnetisation', window):+.4f} · {sim.model.name} on "
            f"`{backend_name}`"
            + (
                " (exact independent draws: each sweep is a fresh sample)"
                if backend.capabilities.exact
                else ""
            )
        )


def trace_figure() -> go.Figure:
    trace = sim.trace
    figure = go.Figure()
    figure.add_scatter(x=trace.sweeps, y=trace.energy, name="energy per spin", mode="lines")
    figure.add_scatter(
        x=trace.sweeps, y=trace.absolute_magnetisation, name="|m| per spin", mode="lines"
    )
    betas = np.asarray(trace.betas[1:])
    if sim.model.lattice_side is not None and betas.size:
        figure.add_scatter(
            x=trace.sweeps[1:],
            y=onsager_energy(betas),
            name="Onsager energy at that beta",
            mode="lines",
            line={"dash": "dot"},
        )
        figure.add_scatter(
            x=trace.sweeps[1:],
            y=onsager_magnetisation(betas),
            name="Onsager |m| at that beta",
            mode="lines",
            line={"dash": "dot"},
        )
    figure.update_layout(
        title="Energy and magnetisation per sweep (mean over chains)",
        xaxis_title="sweep",
        height=330,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


def onsager_figure() -> go.Figure:
    """Measured energy and |m| per spin by beta; for the ferromagnetic lattice also the exact
    curves (Onsager, Kaufman), which hold for no other model."""
    betas = np.linspace(0.05, 1.0, 200)
    figure = go.Figure()
    side = sim.model.lattice_side
    if side is not None:
        figure.add_scatter(x=betas, y=onsager_energy(betas), name="Onsager energy (L = inf)")
        figure.add_scatter(
            x=betas, y=onsager_magnetisation(betas), name="Onsager |m| (L = inf)", yaxis="y"
        )
        kaufman = kaufman_curve(side, tuple(betas.tolist()))
        figure.add_scatter(x=betas, y=kaufman, name=f"Kaufman energy (L = {side})")
    points = np.asarray(st.session_state.measured_points, dtype=np.float64).reshape(-1, 3)
    figure.add_scatter(
        x=points[:, 0], y=points[:, 1], name="measured energy", mode="markers", marker={"size": 9}
    )
    figure.add_scatter(
        x=points[:, 0], y=points[:, 2], name="measured |m|", mode="markers", marker={"size": 9}
    )
    figure.update_layout(
        title="Exact curves and measured values" if side is not None else "Measured values",
        xaxis_title="beta",
        height=330,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


def render_all(boxes, draw: int) -> None:
    """Draw the metrics, the spins and the trace into their placeholders (draw: a unique tag)."""
    render_metrics(boxes["metrics"])
    legend = f"; {sim.model.legend}" if sim.model.legend else ""
    boxes["spins"].image(spins_image(sim), caption=f"chain 0 (red/blue: clamped up/down){legend}")
    if sim.model.pictures is not None:
        pictures = sim.model.pictures(sim.state[0])
        boxes["pictures"].image(
            [picture_image(picture) for picture in pictures.values()], caption=list(pictures)
        )
    boxes["trace"].plotly_chart(trace_figure(), key=f"trace-{draw}")


boxes = {"metrics": st.empty()}
left, right = st.columns([2, 3])
with left:
    boxes["spins"] = st.empty()
    boxes["pictures"] = st.empty()
with right:
    boxes["trace"] = st.empty()

# -- running ---------------------------------------------------------------------------------------
if run_clicked:
    try:
        run = sim.run(schedule, int(num_sweeps), int(chunk_sweeps))
        st.session_state.last_run = int(num_sweeps)
        st.session_state.window_divisor = 2 if schedule.is_constant else 10
        progress = st.progress(0.0, text="sampling")
        for draw, report in enumerate(run):
            render_all(boxes, draw)
            done = (report.sweeps_done - (sim.sweeps_done - int(num_sweeps))) / int(num_sweeps)
            progress.progress(min(done, 1.0), text=f"sweep {report.sweeps_done}")
        progress.empty()
        if schedule.is_constant:
            window = measured_window()
            st.session_state.measured_points.append(
                (
                    schedule.start,
                    sim.recent_mean("energy", window),
                    sim.recent_mean("absolute_magnetisation", window),
                )
            )
    except PAGE_ERRORS as error:
        st.error(str(error))
render_all(boxes, -1)
st.plotly_chart(onsager_figure())

# -- clamping --------------------------------------------------------------------------------------
st.subheader("Clamp spins")
st.caption(
    "Clamped spins are held fixed while the others are sampled. Drag a box (or a lasso, from "
    "the chart's toolbar) around spins with the mouse, or edit the text mask: `+` up, `-` down, "
    "`.` free."
)
mode = st.radio("Selected spins become", ("+1", "-1", "free"), horizontal=True)
layout = sim.model.layout
if sim.model.num_nodes <= MOUSE_CLAMP_LIMIT:
    rows, cols = np.nonzero(layout >= 0)
    nodes = layout[rows, cols]
    clamped = np.isin(nodes, sim.clamp_nodes)
    spins = sim.state[0, nodes]
    figure = go.Figure(
        go.Scatter(
            x=cols,
            y=rows,
            mode="markers",
            customdata=nodes,
            marker={
                "symbol": "square",
                "size": max(4, 360 // max(layout.shape)),
                "color": spins,
                "colorscale": [[0, "rgb(30,30,45)"], [1, "rgb(245,245,240)"]],
                "cmin": -1,
                "cmax": 1,
                "line": {"width": np.where(clamped, 3, 0), "color": "rgb(230,90,60)"},
            },
        )
    )
    figure.update_layout(
        height=420,
        width=420,
        yaxis={"autorange": "reversed", "scaleanchor": "x", "visible": False},
        xaxis={"visible": False},
        dragmode="select",
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
    )
    event = st.plotly_chart(
        figure,
        on_select="rerun",
        selection_mode=("box", "lasso"),
        key=f"clamp-{st.session_state.identity}",
        width="content",
    )
    selected = sorted(int(point["customdata"]) for point in event.selection.points)
    if selected and st.session_state.get("applied_selection") != (selected, mode):
        st.session_state.applied_selection = (selected, mode)
        sim.change_clamp(selected, None if mode == "free" else int(mode))
        st.rerun()
else:
    st.caption(
        f"{sim.model.num_nodes} spins: too many to select with the mouse; use the text mask."
    )

st.caption(f"{sim.clamp_nodes.size} of {sim.model.num_nodes} spins clamped.")
if max(layout.shape) > MASK_SIDE_LIMIT:
    st.caption(f"The text mask is offered up to {MASK_SIDE_LIMIT} x {MASK_SIDE_LIMIT} spins.")
    st.stop()
with st.form("mask"):
    text = st.text_area(
        "Clamp mask",
        simulation.format_mask(sim.clamp_nodes, sim.clamp_values, layout),
        height=min(400, 24 * layout.shape[0] + 20),
    )
    if st.form_submit_button("Apply mask"):
        try:
            sim.set_clamp(*simulation.parse_mask(text, layout))
            st.rerun()
        except PAGE_ERRORS as error:
            st.error(str(error))
