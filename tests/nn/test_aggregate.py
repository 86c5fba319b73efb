"""Message sums over edges sorted by target: the CSR segment reduction (torch-scatter, or torch's
``segment_reduce`` without it) gives the dense path's sums and the same training step, up to
rounding; the dense path from a layout is the layers' own sum, bit for bit."""

from __future__ import annotations

import pytest
import torch
from testdata import structure
from torch_geometric.data import Batch

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn import aggregate
from pyg_mpnn.nn.aggregate import layout_of_edges, layout_of_plan, sum_by_target
from pyg_mpnn.nn.graph import graph_plan, planned_knn_edges
from pyg_mpnn.nn.layers import EncoderLayer
from pyg_mpnn.nn.model import ProteinMPNN

FILES = ["proteinmpnn__6MRR.pdb", "biotite__5zng.pdb", "proteinmpnn__3HTN.pdb.gz"]


@pytest.fixture(scope="module")
def batch():
    graphs = [to_data(read_structure(structure(f))) for f in FILES]
    graphs[1].mask[::5] = False  # missing residues: uneven in-degrees (zero for some)
    b = Batch.from_data_list(graphs)
    b.knn_plan = graph_plan(b.mask, b.batch, b.num_graphs)
    return b


@pytest.fixture(params=["torch_scatter", "segment_reduce"])
def backend(request, monkeypatch):
    if request.param == "torch_scatter":
        pytest.importorskip("torch_scatter")
    else:  # as without the optional extra
        monkeypatch.setattr(aggregate, "torch_scatter", None)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_csr_sum_equals_dense_sum(batch, backend, dtype):
    k, n = 16, batch.num_nodes
    edges = planned_knn_edges(batch.coords[:, 1], k, batch.knn_plan)
    dense, csr = (layout_of_plan(batch.knn_plan, k, n, mode) for mode in ("dense", "csr"))
    x = torch.randn(edges.size(1), 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    x.requires_grad_()
    a, b = sum_by_target(x, edges[1], dense), sum_by_target(x, edges[1], csr)
    assert b.dtype == dtype and b.shape == (n, 8)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    (ga,) = torch.autograd.grad(a.float().square().sum(), x)
    (gb,) = torch.autograd.grad(b.float().square().sum(), x)
    torch.testing.assert_close(gb, ga, rtol=tol, atol=tol)
    assert not b[~batch.mask].any()  # residues without edges sum to zero


def test_layout_sum_is_the_layers_own_sum_bit_for_bit(batch):
    k, n = 16, batch.num_nodes
    edges = planned_knn_edges(batch.coords[:, 1], k, batch.knn_plan)
    layout, planned = layout_of_edges(edges, n), layout_of_plan(batch.knn_plan, k, n)
    assert torch.equal(layout.ptr, planned.ptr) and torch.equal(layout.deg, planned.deg)
    assert layout[2:] == planned[2:]  # max degree, edges, nodes, mode
    x = torch.randn(edges.size(1), 8)
    expected = EncoderLayer(8).aggregate(x, edges[1], dim_size=n)
    assert torch.equal(sum_by_target(x, edges[1], layout), expected)
    assert layout_of_edges(edges.flip(1), n) is None  # not sorted by target: no layout


def test_csr_training_step_matches_dense(batch, backend):
    torch.manual_seed(0)
    model = ProteinMPNN(hidden_dim=32, num_encoder_layers=2, num_decoder_layers=2, k_neighbors=16)
    model.train()
    out = {}
    for mode in ("dense", "csr"):
        model.set_modes(aggregation=mode)
        model.zero_grad()
        torch.manual_seed(1)  # the same noise, decoding order and dropout
        lp = model(batch)
        (-lp.gather(1, batch.seq[:, None])[batch.mask].mean()).backward()
        out[mode] = (lp.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    torch.testing.assert_close(out["csr"][0], out["dense"][0], rtol=1e-5, atol=1e-5)
    for name, g in out["dense"][1].items():
        torch.testing.assert_close(out["csr"][1][name], g, rtol=1e-4, atol=1e-6, msg=name)
