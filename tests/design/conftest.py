import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PYG_MPNN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: sampling's small per-step ops are slower with two on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def structures() -> Path:
    """Folder of real structure files (shared data); the test is skipped when absent."""
    path = DATA / "structures"
    if not path.is_dir():
        pytest.skip(f"shared structures not found at {path}")
    return path
