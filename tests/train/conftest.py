"""Fixtures for the training tests: a tiny real dataset prepared from shared structures."""

import pytest
from _train_tiny import make_tiny_dataset


@pytest.fixture(scope="session")
def tiny_dataset(shared_data, tmp_path_factory):
    return make_tiny_dataset(shared_data, tmp_path_factory.mktemp("tiny_dataset"))
