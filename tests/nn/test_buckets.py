"""Shape buckets: sizes repeat, padding stays small, and real residues never notice it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.data import Batch

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.aggregate import layout_of_edges
from pyg_mpnn.nn.buckets import bucket, pad_nodes
from pyg_mpnn.nn.graph import graph_plan
from pyg_mpnn.nn.model import ProteinMPNN
from tests.testdata import structure


@given(st.integers(1, 10**7), st.sampled_from([4, 8, 16, 32, 64]))
def test_bucket_bounds(n, per_octave):
    b = bucket(n, per_octave)
    assert n <= b <= max(n, n + n / per_octave)


@pytest.mark.parametrize("per_octave", [8, 32])
def test_bucket_sizes_per_octave(per_octave):
    sizes = {bucket(n, per_octave) for n in range(1025, 2049)}
    assert len(sizes) <= per_octave


def _batch(backbone: str = "full"):
    names = ["biotite__5zng.pdb", "gemmi__1orc.pdb"]
    records = [read_structure(structure(n)) for n in names]
    for r in records:
        r.backbone = backbone
    return Batch.from_data_list([to_data(r, backbone=backbone) for r in records])


@pytest.mark.parametrize("backbone", ["full", "ca"])
def test_padding_leaves_real_residues_unchanged(backbone):
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, k_neighbors=16, augment_eps=0.0, dropout=0.0, backbone=backbone
    )
    model.eval()
    data = _batch(backbone)
    rank = torch.randperm(data.num_nodes)
    grads = []
    outs = []
    for buckets in (0, 8):
        model.set_modes(shape_buckets=buckets)
        model.zero_grad()
        lp = model(data, decoding_rank=rank)
        (lp[data.mask] * torch.arange(21.0)).sum().backward()
        outs.append(lp.detach())
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    assert outs[0].shape == outs[1].shape == (data.num_nodes, 21)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", ["full", "ca"])
def test_padding_with_a_knn_plan(backbone):
    """A loader batch's kNN plan survives the padding: the planned search gives the padding
    residues no edges, their self-loops enter the edge layout, and training outputs match."""
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, k_neighbors=16, augment_eps=0.0, dropout=0.0, backbone=backbone
    )
    model.train()
    data = _batch(backbone)
    _, plain_edges = model.build_graph(data)
    data.knn_plan = graph_plan(data.mask, data.batch, data.num_graphs)
    padded, n = pad_nodes(data, 8)
    _, edge_index, _ = model._graph(padded)  # shape_buckets 0: no edges padded
    assert torch.equal(edge_index, plain_edges)  # the padding residues get no kNN edges
    model.set_modes(shape_buckets=8)
    _, edge_index, layout = model._graph(padded)
    e = plain_edges.shape[1]
    assert torch.equal(edge_index[:, :e], plain_edges)
    assert (edge_index[:, e:] >= n).all() and (edge_index[0, e:] == edge_index[1, e:]).all()
    read = layout_of_edges(edge_index, padded.num_nodes)  # None unless sorted by target
    assert layout.num_edges == read.num_edges == edge_index.shape[1] > e
    assert layout.max_degree == read.max_degree
    assert torch.equal(layout.deg, read.deg) and torch.equal(layout.ptr, read.ptr)
    rank = torch.randperm(data.num_nodes)
    outs = []
    for buckets in (0, 8):
        model.set_modes(shape_buckets=buckets)
        outs.append(model(data, decoding_rank=rank).detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
