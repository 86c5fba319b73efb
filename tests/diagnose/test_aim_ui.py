"""The Aim UI as a person uses it: ``aim up`` on a tracked run (free loopback port), headless
Chromium (Selenium) opens the run's Distributions tab, picks a per-layer gradient distribution,
checks that its chart renders, and saves the screenshot that docs/monitoring.md shows."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", \
    shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The screenshot lands in docs/img only when asked (PYG_MPNN_UPDATE_DOCS=1), so that a test
# run leaves the checkout clean; otherwise it goes to a temporary folder.
DOCS_SHOT = REPO / "docs" / "img" / "aim_distributions.png"
LAYER = "encoder.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser_tools():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed (apt-get install -y chromium "
                    "chromium-driver; .ci/run installs them)")


@pytest.fixture
def aim_server(browser_tools, baseline_run):
    info = json.loads((baseline_run / "run.json").read_text())
    port = _free_port()
    aim = Path(sys.executable).with_name("aim")
    # its own process group: `aim up` serves from a uvicorn child that must go with it
    proc = subprocess.Popen([str(aim), "up", "--repo", info["aim_repo"], "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("aim up did not start")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", info["aim_run_hash"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.time() + 20
        while _group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.poll() is not None  # the server we started is gone


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_per_layer_distribution_renders(aim_server):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed "
                                    "(pip install -e .[test])")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, run_hash = aim_server
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--window-size=1400,860"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(f"{url}/runs/{run_hash}/distributions")
        wait = WebDriverWait(driver, 60)
        item = wait.until(ec.element_to_be_clickable((By.XPATH, (
            f"//*[contains(text(), 'kind=\"gradient\"') and contains(text(), "
            f"'layer=\"{LAYER}\"')]"))))
        for skip in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            skip.click()  # the community pop-up
        item.click()
        wait.until(lambda d: "Step" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)
        body = driver.find_element(By.TAG_NAME, "body").text
        assert f'layer="{LAYER}"' in body and 'kind="gradient"' in body
        charts = driver.find_elements(By.CSS_SELECTOR, "svg path, svg rect")
        assert len(charts) > 20, "no chart drawn"
        SHOT = (DOCS_SHOT if os.environ.get("PYG_MPNN_UPDATE_DOCS") == "1"
                else Path(tempfile.mkdtemp()) / DOCS_SHOT.name)
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOT))
        assert 10_000 < SHOT.stat().st_size < 500_000
    finally:
        driver.quit()
