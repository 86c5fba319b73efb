"""Shared pytest fixtures.

Every capability is tested on data the repository ships: the embedded dataset
``data/default.jsonl.gz`` and small real structure files under ``tests/fixtures/`` (see
``tests/testdata.py``). Only cross-checks that need the large shared sets use ``shared_data``:
``$PYG_MPNN_SHARED_DATA``, else ``../shared/data`` beside the repo root; they skip, naming what
they need, when it is absent (CI runs the suite a second time with the variable pointing to a
missing folder).
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _shared_audit
import pytest
import torch
from _train_tiny import make_tiny_dataset
from testdata import SHARED_DATA

REPO_ROOT = Path(__file__).resolve().parent.parent

# Datasets prepared on first use (the embedded set, --data sources) are cached in a folder of
# this test session, removed at its end: never in the user's cache, never in the source tree.
# Commands the tests start as processes inherit it.
os.environ["PYG_MPNN_CACHE"] = tempfile.mkdtemp(prefix="pyg_mpnn-test-cache-")
atexit.register(shutil.rmtree, os.environ["PYG_MPNN_CACHE"], ignore_errors=True)


def pytest_configure(config):
    # PYG_MPNN_TEST_LOG=FILE: which test files read the shared data, and every test's outcome
    config.pluginmanager.register(_shared_audit, "shared_audit")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder (not at {SHARED_DATA}; PYG_MPNN_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Twelve small real structures prepared into a dataset folder (``tests/_train_tiny.py``)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset"))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests: the shared 2-core CI machine is much slower
    with two (small per-step ops, as in sampling, spend their time in thread hand-offs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_benchmark(tmp_path):
    """``tiny_benchmark(NAME, *args)``: the JSON result of ``python -m benchmarks.NAME --tiny
    --threads 1 *args --out FILE``, run from the repository's root with one thread; fails the
    test with its stderr when it exits with an error."""

    def run(name: str, *args: str) -> dict:
        out = tmp_path / f"{name}.json"
        cmd = [sys.executable, "-m", f"benchmarks.{name}", "--tiny", "--threads", "1", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run(
            cmd + ["--out", str(out)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out.read_text())

    return run
