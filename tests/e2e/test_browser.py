"""The MLflow UI in a real browser (Debian's headless Chromium driven by Playwright): the
promoted version's page shows its lineage tags, its gate status and its boundary plot."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from kernel_lifecycle.cli.ui import free_port
from tests.e2e.conftest import ARTIFACTS, World

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("quickstart-world")]  # see test_quickstart

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def ui(quickstart_world: World):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernel_lifecycle.cli", "ui", "--port", str(port)], env=quickstart_world.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("kernel-lifecycle ui did not come up")
            time.sleep(0.5)
    yield url
    import os
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_model_version_page_shows_lineage_gate_and_plot(ui: str) -> None:
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (.ci/setup.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{ui}/#/models/python-kernel/versions/3")
        page.get_by_text("kernel.parent_version").wait_for(timeout=60_000)
        plot = page.locator("img[src*='boundary%2Fcurves.png']").first
        plot.wait_for(timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle(), timeout=30_000)
        text = page.inner_text("body")
        # MLflow 3 opens its Assistant panel beside the page; closed, the plot is shown whole
        assistant_close = page.get_by_role("button", name="Close")
        if assistant_close.count():
            assistant_close.first.click()
            page.wait_for_timeout(500)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "mlflow-model-version.png"), full_page=True)
        # the tags table scrolls on its own: a second picture with the lineage tags in view
        page.get_by_text("kernel.job_id").first.evaluate("row => row.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "mlflow-model-version-lineage-tags.png"), full_page=True)
        browser.close()
    for tag in ("kernel.parent_version", "kernel.job_id", "kernel.policy_sha256", "kernel.adapters", "kernel.skills.retired", "gate.status"):
        assert tag in text, tag
    assert "against champion 2" in text and ("Gate PASSED" in text or "Gate FAILED" in text)
    assert "Lineage: this version <- v2 (upskill) <- v1 (distill)" in text
    assert "@ champion" in text or "champion" in text
