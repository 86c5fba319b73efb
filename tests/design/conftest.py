from pathlib import Path

import pytest
import torch

from testdata import FIXTURES


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: sampling's small per-step ops are slower with two on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def structures() -> Path:
    """Folder of real structure files: ``tests/fixtures``, which holds every file these tests
    read (5zng, 1hvr, 1orc, 3HTN: byte-for-byte copies of the shared data)."""
    return FIXTURES
