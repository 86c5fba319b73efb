"""Shared pytest fixtures.

Every capability is tested on data the repository ships: the embedded dataset
``data/default.jsonl.gz`` and small real structure files under ``tests/fixtures/`` (see
``tests/testdata.py``). Only cross-checks that need the large shared sets use ``shared_data``:
``$PYG_MPNN_SHARED_DATA``, else ``../shared/data`` beside the repo root; they skip, naming what
they need, when it is absent (CI runs the suite a second time with the variable pointing to a
missing folder).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from testdata import SHARED_DATA

REPO_ROOT = Path(__file__).resolve().parent.parent

# Datasets prepared on first use (the embedded set, --data sources) are cached in a folder of
# this test session, removed at its end: never in the user's cache, never in the source tree.
# Commands the tests start as processes inherit it.
os.environ["PYG_MPNN_CACHE"] = tempfile.mkdtemp(prefix="pyg_mpnn-test-cache-")
atexit.register(shutil.rmtree, os.environ["PYG_MPNN_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder (not at {SHARED_DATA}; PYG_MPNN_SHARED_DATA)")
    return SHARED_DATA
