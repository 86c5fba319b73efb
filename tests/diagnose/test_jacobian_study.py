"""The Jacobian study's scorer on maps whose answer is known, the encoder Jacobian against
finite differences and its receptive field, and a tiny run of studies/jacobian_study.py
(train, checkpoints, maps, JSON) rendered by tools/render_docs.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_mpnn.diagnose.jacobian import (
    candidate_pairs,
    contact_map,
    encoder_jacobian,
    load_probe,
    pair_metrics,
    top_precision,
)
from pyg_mpnn.nn.graph import knn_edges
from pyg_mpnn.nn.model import ProteinMPNN
from studies import jacobian_study
from tools import render_docs

REPO = Path(__file__).resolve().parents[2]

PROTEIN = str(REPO / "tests" / "fixtures" / "mdanalysistests__1i8nA.pdb.gz")  # TS50 1i8nA


def _knn(data, k=16):
    ei = knn_edges(data.coords[:, 1], k, None, data.mask)
    knn = np.zeros((data.num_nodes, data.num_nodes), dtype=bool)
    knn[ei[1].numpy(), ei[0].numpy()] = True
    return knn


def test_scorer_on_known_maps():
    data = load_probe(PROTEIN, max_length=None)
    n, knn, contacts = data.num_nodes, _knn(data), contact_map(data)
    # the contact map as a coupling: every top pair is a contact while contacts last
    oracle = pair_metrics(contacts.astype(float), knn, data, 12, contacts)
    assert oracle["contacts"] >= n // 5 and oracle["knn_contacts"] >= n // 5
    assert oracle["precision_L5"] == 1.0 and oracle["knn_precision_L5"] == 1.0
    assert oracle["precision_L"] == pytest.approx(min(1.0, oracle["contacts"] / n))
    assert 0 < oracle["random"] < oracle["knn_random"] < 1  # kNN pairs are richer in contacts
    # random maps score the contact rate of their candidate set (a random ranking)
    rng = np.random.default_rng(1)
    draws = [pair_metrics(rng.random((n, n)), knn, data, 12, contacts) for _ in range(200)]
    for got, want in (("knn_precision_L", "knn_random"), ("precision_L", "random")):
        assert np.mean([d[got] for d in draws]) == pytest.approx(oracle[want], abs=0.02)
    # a map that ranks by C-alpha distance scores exactly the distance baseline
    ca = data.coords[:, 1].double()
    near = pair_metrics(-torch.cdist(ca, ca).numpy(), knn, data, 12, contacts)
    assert near["knn_precision_L"] == pytest.approx(near["distance_L"])
    assert near["distance_L"] > oracle["knn_random"]  # proximity alone beats random kNN pairs
    i, j = candidate_pairs(data, 6)
    assert np.all(j - i >= 6) and len(i) == (n - 6) * (n - 5) // 2


def test_top_precision_breaks_ties_as_an_expectation():
    truth = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    assert top_precision(np.zeros(6), truth, 2) == pytest.approx(0.5)
    assert top_precision(np.array([3.0, 2, 2, 2, 1, 0]), truth, 2) == pytest.approx(2 / 3)
    assert np.isnan(top_precision(np.zeros(0), np.zeros(0), 3))


def _model(enc):
    torch.manual_seed(0)
    return ProteinMPNN(hidden_dim=16, num_encoder_layers=enc, num_decoder_layers=1, k_neighbors=8)


def test_encoder_jacobian_is_exact_and_local():
    torch.set_num_threads(1)
    data = load_probe(PROTEIN, max_length=30)
    one, two = encoder_jacobian(_model(1), data), encoder_jacobian(_model(2), data)
    assert one["C"].shape == (30, 30) and np.all(np.diag(one["C"]) == 0)
    off = ~np.eye(30, dtype=bool)
    assert one["C"][off & ~one["knn"]].max() == 0 < one["C"][off & one["knn"]].min()
    assert two["C"][off & ~two["knn"]].max() > 0  # a second layer reaches two hops
    # one block against central finite differences of the encoder (same fixed graph)
    model = _model(2).eval()
    i, j = np.argwhere(off & two["knn"])[0]
    d = data.clone()
    d.edge_index = model.encode(d)[2]  # eval with augment_eps 0: no noise
    block = []
    with torch.no_grad():
        for x in range(3):  # translate residue j's four atoms along x
            hs = []
            for sign in (1, -1):
                e = d.clone()
                e.coords = d.coords.clone()
                e.coords[j, :, x] += sign * 1e-2
                hs.append(model.encode(e)[0][i])
            block.append((hs[0] - hs[1]) / 2e-2)
    fd = torch.stack(block).pow(2).sum().sqrt().item()
    assert two["C"][i, j] == pytest.approx(fd, rel=2e-2)


def test_tiny_study_runs_and_renders(tmp_path):
    out = tmp_path / "study.json"
    res = jacobian_study.main(["--tiny", "--out", str(out), "--run-dir", str(tmp_path / "run")])
    assert json.loads(out.read_text())["run"]["steps"] == [0, 2, 4]
    assert len(res["proteins"]) == 2 and res["settings"]["orders"] == 2
    variants = {r["variant"] for r in res["rows"]}
    assert variants == {"decoder", "decoder_order0", "decoder_order1", "encoder"}
    assert len(res["rows"]) == 3 * 2 * 4
    for r in res["rows"]:
        for sep in ("6", "12"):
            m = r["sep"][sep]
            for k in ("precision_L", "knn_precision_L", "knn_random", "distance_L"):
                assert 0 <= m[k] <= 1, (r["variant"], sep, k)
    dec = [r for r in res["rows"] if r["variant"] == "decoder"]
    assert all(-1 <= r["agreement"]["12"]["spearman_knn"] <= 1 for r in dec)
    for c in res["controls"].values():  # the contact map ranks contacts first
        top = min(c["length"] // 5, c["knn_pairs"])
        assert c["oracle_knn_precision_L5"] == pytest.approx(min(1.0, c["knn_contacts"] / top))
    # the docs' tables render from this JSON
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "jacobian_study.json").write_text(out.read_text())
    for kind in ("jacobian_study_trajectory", "jacobian_study_proteins"):
        text = render_docs.RENDERERS[kind](results_dir, "jacobian_study.json")
        assert text.count("\n") >= 3
    table = render_docs.RENDERERS["jacobian_study_table"](results_dir, "jacobian_study.json", "4")
    assert "encoder" in table
