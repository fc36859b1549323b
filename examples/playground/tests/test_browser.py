"""The page in a real browser: Debian's headless Chromium, driven by Playwright, loads the page
served on localhost, changes beta, runs sweeps and checks the displayed energy and messages.

Skips when /usr/bin/chromium or Playwright is absent. Set PLAYGROUND_SCREENSHOT=<path> to keep
the screenshot (docs/playground.png is made this way).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import tsu_core
from tsu_core.ising2d import kaufman_energy
from tsu_core.testing.stats import mean_tolerance

CHROMIUM = Path("/usr/bin/chromium")
PLAYGROUND = Path(__file__).resolve().parents[1]
# The flags this machine needs: no sandbox as root, no GPU, and no network calls of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="browser test needs Debian's Chromium: apt-get install -y chromium",
    ),
]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser test needs Playwright: pip install playwright"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    """The playground served by Streamlit on a free localhost port, for this module."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PLAYGROUND / "app.py"),
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read().decode() if server.poll() is not None else ""
                pytest.fail(f"streamlit did not start on {url}: {output[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium with a fresh profile, shared by this module's tests."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 1100},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(server_url, browser):
    """A new tab (a new Streamlit session) with the page loaded on a 4 x 4 lattice."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server_url)
        wait_until_idle(page)
        metric_value(page, "Sweeps")
        # A 4 x 4 lattice: every backend takes it and its exact values are known.
        set_number(page, "Lattice side L (L x L spins)", 4)
        page.get_by_text("of 16 spins clamped").wait_for()
        yield page
    finally:
        page.close()


def wait_until_idle(page) -> None:
    """Wait for Streamlit to finish running the script."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)
    )
    return metric.locator('[data-testid="stMetricValue"]').first.inner_text(timeout=TIMEOUT_MS)


def set_number(page, label: str, value: float) -> None:
    """Type a value into a Streamlit number input and commit it (Enter), then wait."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(300)
    wait_until_idle(page)


def error_texts(page) -> list[str]:
    return page.locator('[data-testid="stAlertContentError"]').all_inner_texts()


def wait_for_error(page, text: str) -> None:
    """Wait until an error message containing `text` is shown (reruns finish asynchronously)."""
    page.locator('[data-testid="stAlertContentError"]', has_text=text).first.wait_for()
    wait_until_idle(page)


def wait_for_metric(page, label: str, value: str) -> None:
    page.wait_for_function(
        """([label, value]) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(
            m => m.querySelector('[data-testid="stMetricLabel"]').innerText.includes(label)
              && m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === value)""",
        arg=[label, value],
        timeout=TIMEOUT_MS,
    )
    wait_until_idle(page)


def test_sweeps_move_the_energy_to_the_exact_value(page, tmp_path) -> None:
    beta, num_chains, num_sweeps = 0.45, 400, 200
    set_number(page, "Chains", num_chains)
    set_number(page, "beta", beta)
    wait_for_metric(page, "beta", f"{beta:.4f}")
    exact = float(metric_value(page, "Energy exact"))
    mean, variance = kaufman_energy(beta, 4)
    assert exact == pytest.approx(mean, abs=1e-4)
    before = float(metric_value(page, "Energy measured"))

    page.get_by_role("button", name="Run sweeps").click()
    wait_for_metric(page, "Sweeps", str(num_sweeps))
    after = float(metric_value(page, "Energy measured"))
    # The page averages the last half of the run over every chain; |E/N - mean| <= 4.
    tolerance = mean_tolerance(variance / 16**2, num_chains, spread=4.0)
    assert abs(after - exact) < tolerance < abs(before - exact)
    assert float(metric_value(page, "Spin updates / ns")) > 0
    assert not error_texts(page)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    page.wait_for_timeout(1000)  # let Plotly finish drawing before the screenshot
    screenshot = tmp_path / "playground.png"
    page.screenshot(path=str(screenshot), full_page=True)
    target = os.environ.get("PLAYGROUND_SCREENSHOT")
    if target:
        shutil.copyfile(screenshot, target)


def test_bad_input_shows_messages_not_tracebacks(page) -> None:
    set_number(page, "beta", -0.5)
    wait_for_error(page, "beta > 0")
    assert page.locator('[data-testid="stException"]').count() == 0
    set_number(page, "beta", 0.3)
    wait_for_metric(page, "beta", "0.3000")
    assert not error_texts(page)

    set_number(page, "Lattice side L (L x L spins)", 100_000)
    wait_for_error(page, "too large")
    limit = tsu_core.get_backend().capabilities.max_nodes
    if limit is not None:
        set_number(page, "Lattice side L (L x L spins)", int(limit**0.5) + 1)
        wait_for_error(page, f"max_nodes = {limit}")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_box_selection_clamps_spins(page) -> None:
    """Dragging a box around one spin of the clamp chart clamps it; the text mask shows it."""
    page.get_by_text("-1", exact=True).click()  # the 'Selected spins become' choice
    wait_until_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').last
    chart.scroll_into_view_if_needed()
    points = chart.locator(".scatterlayer .points path")
    points.first.wait_for()
    assert points.count() == 16
    box = points.nth(5).bounding_box()  # node 5: row 1, column 1
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 0.3 * box["width"], y - 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(x + 0.3 * box["width"], y + 0.3 * box["height"], steps=8)
    page.mouse.up()
    page.wait_for_function(
        """() => [...document.querySelectorAll('textarea')].some(
            area => area.value.replace(/\\s/g, '') === '.....-..........')""",
        timeout=TIMEOUT_MS,
    )
    wait_until_idle(page)
    assert page.get_by_text("1 of 16 spins clamped").count() == 1
    assert not error_texts(page)
