"""The Aim UI as a person uses it: ``aim up`` on a tracked run (free loopback port), headless
Chromium (Selenium) opens the run's Distributions tab, picks a per-layer gradient distribution,
checks that its chart renders, and saves the screenshot that docs/monitoring.md shows."""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pyg_mpnn.track import aimui

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)
# The screenshot lands in docs/img only when asked (PYG_MPNN_UPDATE_DOCS=1), so that a test
# run leaves the checkout clean; otherwise it goes to a temporary folder.
DOCS_SHOT = REPO / "docs" / "img" / "aim_distributions.png"
LAYER = "encoder.0"


@pytest.fixture
def aim_server(baseline_run):
    """``aim up`` in its own process group, stopped with the whole group (pyg_mpnn.track.aimui:
    terminating ``aim up`` alone leaves its uvicorn server running)."""
    info = json.loads((baseline_run / "run.json").read_text())
    proc = aimui.start(info["aim_repo"])
    try:
        try:
            url = aimui.wait_ready(proc)
        except RuntimeError as e:
            pytest.fail(str(e))
        yield url, info["aim_run_hash"]
    finally:
        aimui.stop(proc)
    assert proc.poll() is not None and not aimui.group_members(proc.pid)  # nothing survives


@pytest.mark.slow
def test_per_layer_distribution_renders(aim_server):
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip(
            "chromium/chromedriver not installed (apt-get install -y chromium "
            "chromium-driver; .ci/run installs them)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install -e .[test])"
    )
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, run_hash = aim_server
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1400,860",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(f"{url}/runs/{run_hash}/distributions")
        wait = WebDriverWait(driver, 60)
        item = wait.until(
            ec.element_to_be_clickable(
                (
                    By.XPATH,
                    (
                        f"//*[contains(text(), 'kind=\"gradient\"') and contains(text(), "
                        f"'layer=\"{LAYER}\"')]"
                    ),
                )
            )
        )
        for skip in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            skip.click()  # the community pop-up
        item.click()
        wait.until(lambda d: "Step" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)
        body = driver.find_element(By.TAG_NAME, "body").text
        assert f'layer="{LAYER}"' in body and 'kind="gradient"' in body
        charts = driver.find_elements(By.CSS_SELECTOR, "svg path, svg rect")
        assert len(charts) > 20, "no chart drawn"
        SHOT = (
            DOCS_SHOT
            if os.environ.get("PYG_MPNN_UPDATE_DOCS") == "1"
            else Path(tempfile.mkdtemp()) / DOCS_SHOT.name
        )
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOT))
        assert 10_000 < SHOT.stat().st_size < 500_000
    finally:
        driver.quit()
