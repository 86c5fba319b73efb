import pytest
import torch
from testdata import structure


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: sampling's small per-step ops are slower with two on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Structures:
    """``structures / NAME``: the real structure file NAME from ``tests/fixtures`` (or the
    shared data, skipping when absent)."""

    def __truediv__(self, name: str):
        return structure(name)


@pytest.fixture(scope="session")
def structures() -> _Structures:
    return _Structures()
