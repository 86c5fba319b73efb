"""The embedding case: a frozen W_s is reported as not trained ((a) no gradient, (b) frozen);
a mis-scaled one (x100 initial weights) as frozen by its update/weight ratio ((b))."""

import pytest
from _diag_runs import train

from pyg_mpnn.diagnose.findings import diagnose
from pyg_mpnn.diagnose.series import read_files


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("inject.freeze_embedding=true", {("a", "W_s"), ("b", "W_s")}),
        ("inject.embedding_scale=100", {("b", "W_s")}),
    ],
)
def test_embedding_faults(tmp_path, fault, expected):
    run = train(tmp_path, "inject.noise_after=null", "train.max_steps=10", fault)
    found = diagnose(read_files(run))
    assert {(f.code, f.layers[0]) for f in found} == expected, found
    assert all("frozen" in f.title or "no gradient" in f.title for f in found)
