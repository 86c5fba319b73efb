import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every module here runs with one intra-op thread (``one_thread``, tests/conftest.py)."""
