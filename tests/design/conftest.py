import pytest
from testdata import structure


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every module here runs with one intra-op thread (``one_thread``, tests/conftest.py)."""


class _Structures:
    """``structures / NAME``: the real structure file NAME from ``tests/fixtures`` (or the
    shared data, skipping when absent)."""

    def __truediv__(self, name: str):
        return structure(name)


@pytest.fixture(scope="session")
def structures() -> _Structures:
    return _Structures()
