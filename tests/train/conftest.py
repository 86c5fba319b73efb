"""Fixtures for the training tests: a tiny real dataset prepared from shared structures."""

from pathlib import Path

import pytest

from _train_tiny import SMALL


@pytest.fixture(scope="session")
def tiny_dataset(shared_data, tmp_path_factory) -> Path:
    from pyg_mpnn.data.prepare import prepare
    out = tmp_path_factory.mktemp("tiny_dataset")
    srcs = [str(shared_data / "structures" / f"mdanalysistests__{n}.pdb.gz") for n in SMALL]
    prepare(srcs, out, progress=False)
    return out
