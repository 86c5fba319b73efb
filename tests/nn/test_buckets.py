"""Shape buckets: sizes repeat, padding stays small, and real residues never notice it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.data import Batch

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.buckets import bucket
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
        model.shape_buckets = buckets
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
