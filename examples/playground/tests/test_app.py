"""The page itself, run by Streamlit's script runner (no browser): widgets, messages, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tsu_core

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

PLAYGROUND = Path(__file__).resolve().parents[1]


@pytest.fixture
def page() -> AppTest:
    app = AppTest.from_file(str(PLAYGROUND / "app.py"), default_timeout=120)
    app.run()
    assert not app.exception and not app.error
    # A 4 x 4 lattice: every backend takes it and its exact values are known.
    number_input(app, "Lattice side").set_value(4).run()
    return app


def number_input(page: AppTest, label_start: str):
    return next(field for field in page.number_input if field.label.startswith(label_start))


def metric(page: AppTest, label: str) -> str:
    return next(item.value for item in page.metric if item.label == label)


def click(page: AppTest, label: str) -> None:
    next(button for button in page.button if button.label == label).click().run()


def test_negative_beta_shows_a_message(page: AppTest) -> None:
    number_input(page, "beta").set_value(-0.5).run()
    assert not page.exception
    assert any("beta > 0" in error.value for error in page.error)


def test_too_large_lattices_show_messages(page: AppTest) -> None:
    number_input(page, "Lattice side").set_value(100_000).run()
    assert not page.exception
    assert any("too large" in error.value for error in page.error)
    limit = tsu_core.get_backend().capabilities.max_nodes
    if limit is not None:
        side = int(limit**0.5) + 1
        number_input(page, "Lattice side").set_value(side).run()
        assert not page.exception
        assert any(f"max_nodes = {limit}" in error.value for error in page.error)


def test_run_moves_energy_to_the_exact_value(page: AppTest) -> None:
    number_input(page, "Chains").set_value(400).run()
    number_input(page, "beta").set_value(0.45).run()
    before = float(metric(page, "Energy measured"))
    exact = float(metric(page, "Energy exact"))
    click(page, "Run sweeps")
    assert not page.exception and not page.error
    assert metric(page, "Sweeps") == "200"
    after = float(metric(page, "Energy measured"))
    assert abs(after - exact) < 0.2 < abs(before - exact)
    assert float(metric(page, "Spin updates / ns")) > 0


def test_every_model_kind_runs(page: AppTest) -> None:
    # Annealing on the exact backend enumerates every sweep's beta: keep the run short.
    number_input(page, "Sweeps per run").set_value(20).run()
    number_input(page, "Sweeps per chunk").set_value(10).run()
    for kind in ("spin glass", "rbm"):
        page.sidebar.selectbox[1].set_value(kind).run()
        page.sidebar.radio[0].set_value("geometric").run()
        click(page, "Run sweeps")
        assert not page.exception and not page.error, kind
        assert metric(page, "Sweeps") == "20"
        assert metric(page, "beta") == "0.6000"  # the schedule's last beta


def chart_trace_names(page: AppTest) -> list[list[str]]:
    """The trace names of every Plotly chart on the page, in page order."""
    charts = page.get("plotly_chart")
    return [[trace.get("name") or "" for trace in json.loads(c.proto.spec)["data"]] for c in charts]


def test_exact_curves_only_for_the_lattice(page: AppTest) -> None:
    assert any("Onsager energy (L = inf)" in names for names in chart_trace_names(page))
    assert "Critical beta" in " ".join(caption.value for caption in page.sidebar.caption)
    page.sidebar.selectbox[1].set_value("spin glass").run()
    assert not page.exception and not page.error
    names = [name for chart in chart_trace_names(page) for name in chart]
    assert "measured energy" in names
    assert not any("Onsager" in name or "Kaufman" in name for name in names)
    assert "Critical beta" not in " ".join(caption.value for caption in page.sidebar.caption)


def test_mask_clamps_spins(page: AppTest) -> None:
    page.text_area[0].input("+...\n....\n..-.\n....")
    click(page, "Apply mask")
    simulation = page.session_state.simulation
    assert simulation.clamp_nodes.tolist() == [0, 10]
    assert simulation.clamp_values.tolist() == [1, -1]
    page.text_area[0].input("+..\n")
    click(page, "Apply mask")
    assert any("clamp mask" in error.value for error in page.error)


def choose_bitflip_dtm(page: AppTest) -> None:
    page.sidebar.selectbox[1].set_value("bitflip-dtm reverse step").run()
    assert not page.exception


def test_bitflip_dtm_step_runs_and_bad_input_shows_messages(page: AppTest, dtm_checkpoint) -> None:
    choose_bitflip_dtm(page)
    assert not page.error and any("Upload a bitflip-dtm checkpoint" in i.value for i in page.info)
    page.sidebar.text_input[0].set_value(str(dtm_checkpoint)).run()
    assert not page.exception and not page.error
    model = page.session_state.simulation.model
    assert model.name.startswith("bitflip-dtm step t = 1 of 3")
    assert metric(page, "beta") == "1.0000"  # the beta bitflip-dtm's steps are trained at
    number_input(page, "Sweeps per run").set_value(20).run()
    click(page, "Run sweeps")
    assert not page.exception and not page.error
    assert metric(page, "Sweeps") == "20"
    assert metric(page, "Energy exact") != "n/a"  # 9 + 2 free spins: exact enumeration
    number_input(page, "Reverse step t").set_value(4).run()
    assert not page.exception
    assert any("t in [1, 3]" in error.value for error in page.error)
    number_input(page, "Reverse step t").set_value(3).run()
    page.sidebar.text_input[0].set_value(str(dtm_checkpoint.parent / "missing.json")).run()
    assert not page.exception
    assert any("checkpoint not found" in error.value for error in page.error)


def test_bitflip_dtm_missing_shows_how_to_install(page: AppTest, monkeypatch) -> None:
    import simulation

    monkeypatch.setattr(simulation, "bitflip_dtm_available", lambda: False)
    choose_bitflip_dtm(page)
    assert any("pip install -e packages/bitflip-dtm" in error.value for error in page.error)
