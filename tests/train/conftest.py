"""Fixtures for the training tests: a tiny real dataset prepared from tests/fixtures."""

import pytest
from _train_tiny import make_tiny_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset"))
