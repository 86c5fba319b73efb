"""Fixtures of the fault-injection tests: the embedded dataset, prepared, and one
uninterrupted reference run that every faulted run is compared with."""

import pytest
from _faults import REPO, train

from pyg_mpnn.data.prepare import prepare


@pytest.fixture(scope="session")
def fault_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("fault_data")
    prepare([str(REPO / "data" / "default.jsonl.gz")], out, progress=False)
    return out


@pytest.fixture(scope="session")
def reference(fault_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    train(fault_data, out)
    return out
