"""SpatialCrop: the geometry of the crop (hypothesis over random clouds, real complexes) and the
supervision it hands to the trainer's loss."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from testdata import need_shared
from torch_geometric.data import Batch, Data

from pyg_mpnn.data.crop import SpatialCrop, make_transform
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.default import default_dataset_dir
from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.train.loss import batch_metrics, supervised_mask, training_loss


def _protein(n, seed, masked=0.0, designed=1.0, spread=30.0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.randn(n, 4, 3, generator=g) * spread
    mask = torch.rand(n, generator=g) >= masked
    coords[~mask] = 0.0
    chain = (torch.arange(n) * 3 // max(n, 1)).long()  # three chains
    design = torch.rand(n, generator=g) < designed
    return Data(
        coords=coords,
        pos=coords[:, 1].clone(),
        mask=mask,
        chain=chain,
        seq=torch.randint(21, (n,), generator=g),
        residue_idx=100 * chain + torch.arange(n),
        design_mask=design,
        name="random",
        chain_ids=["A", "B", "C"],
        num_nodes=n,
    )


def _check(data: Data, out: Data, outer: float, inner: float):
    """The crop's contract, against distances computed here from the input."""
    src = out.crop_source
    center = int(src[out.crop_center[0]])
    assert bool(data.mask[center] & data.design_mask[center])  # a valid designed centre
    d = (data.pos.double() - data.pos[center].double()).norm(dim=-1)
    tol = 1e-6
    # every kept residue inside the outer radius; every valid residue inside it kept
    assert bool((d[src] <= outer + tol).all())
    expected = ((d <= outer - tol) & data.mask).nonzero().view(-1)
    assert set(expected.tolist()) <= set(src.tolist())
    assert set(src.tolist()) <= set(((d <= outer + tol) & data.mask).nonzero().view(-1).tolist())
    assert torch.equal(src, src.sort().values)  # input order kept
    # no supervised residue outside the inner radius; all valid designed ones inside supervised
    sup = out.loss_mask
    assert bool((d[src][sup] <= inner + tol).all())
    assert bool((out.mask & out.design_mask)[sup].all())
    want = (d[src] <= inner - tol) & data.mask[src] & data.design_mask[src]
    assert bool(sup[want].all())
    assert bool(sup[out.crop_center[0]])  # the centre itself is supervised
    # fields re-indexed, per-protein ones kept
    n = len(src)
    assert out.num_nodes == n
    for key in ("coords", "pos", "seq", "mask", "chain", "residue_idx", "design_mask"):
        assert torch.equal(out[key], data[key][src]), key
    assert out.name == data.name and out.chain_ids == data.chain_ids
    # what the trainer back-propagates: mask & design_mask & loss_mask
    assert torch.equal(supervised_mask(out), sup)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 10_000),
    masked=st.sampled_from([0.0, 0.3]),
    designed=st.sampled_from([1.0, 0.5]),
    outer=st.floats(1.0, 80.0),
    frac=st.floats(0.05, 1.0),
)
def test_crop_geometry_random_clouds(n, seed, masked, designed, outer, frac):
    data = _protein(n, seed, masked, designed)
    inner = outer * frac
    out = SpatialCrop(outer, inner, seed=seed)(data.clone())
    if not bool((data.mask & data.design_mask).any()):  # nothing to supervise: graph kept
        assert out.num_nodes == n and not bool(out.loss_mask.any())
        return
    _check(data, out, outer, inner)


def test_seeded_generator_is_reproducible_and_varies():
    data = _protein(400, 1, spread=40.0)
    a, b = SpatialCrop(30, 10, seed=7), SpatialCrop(30, 10, seed=7)
    centres = [int(a(data.clone()).crop_source[0]) for _ in range(5)]
    assert centres == [int(b(data.clone()).crop_source[0]) for _ in range(5)]
    assert len(set(int(a(data.clone()).crop_center[0]) for _ in range(20))) > 1


def test_crops_batch_together_and_bad_radii():
    t = SpatialCrop(20, 8, seed=0)
    no_design = _protein(30, 3, designed=0.0)
    batch = Batch.from_data_list([t(_protein(100, 1)), t(_protein(80, 2)), t(no_design)])
    assert batch.loss_mask.shape == batch.mask.shape
    with pytest.raises(ValueError):
        SpatialCrop(10, 20)
    assert make_transform(None) is None
    assert isinstance(make_transform("spatial_crop"), SpatialCrop)
    with pytest.raises(ValueError, match="unknown"):
        make_transform({"name": "nope"})


def test_real_complex_default_radii():
    """A 22-chain real assembly: the crop is a strict subset with the contract above."""
    path = need_shared("structures/tmtools__7ok9.cif.gz")  # 1.2 MB, 22 chains
    data = to_data(read_structure(path))
    assert data.num_nodes > 3000
    t = SpatialCrop(seed=0)  # 50 A context, 20 A supervised
    sizes = []
    for _ in range(4):
        out = t(data.clone())
        _check(data, out, 50.0, 20.0)
        sizes.append(out.num_nodes)
        assert 0 < int(out.loss_mask.sum()) < out.num_nodes < data.num_nodes
    # a 50 A sphere of a packed complex holds at most a few thousand residues
    assert max(sizes) < 0.6 * data.num_nodes


def test_embedded_largest_protein_and_model_on_crop():
    """The embedded data's largest training complex, cropped, goes through the real model."""
    ds = ProteinDataset(default_dataset_dir(), "train")
    data = ds[int(np.argmax(ds.lengths))]
    out = SpatialCrop(30, 12, seed=3)(data.clone())
    _check(data, out, 30.0, 12.0)
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=16,
        num_encoder_layers=1,
        num_decoder_layers=1,
        k_neighbors=8,
        augment_eps=0.0,
        dropout=0.0,
    )
    log_probs = model(Batch.from_data_list([out]))
    assert log_probs.shape == (out.num_nodes, 21) and bool(torch.isfinite(log_probs).all())


def test_loss_counts_only_supervised_residues():
    """Changing predictions outside loss_mask leaves loss and metrics unchanged; inside, not."""
    out = SpatialCrop(25, 10, seed=0)(_protein(200, 5, spread=20.0))
    sup = supervised_mask(out)
    assert 0 < int(sup.sum()) < out.num_nodes
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(out.num_nodes, 21, generator=g), -1)
    other = lp.clone()
    other[~sup] = torch.log_softmax(torch.randn(int((~sup).sum()), 21, generator=g), -1)
    for normalize in ("constant", "mean"):
        a = training_loss(lp, out.seq, sup, 0.1, normalize)
        assert math.isclose(float(a), float(training_loss(other, out.seq, sup, 0.1, normalize)))
    assert batch_metrics(lp, out.seq, sup)["count"] == int(sup.sum())
    changed = lp.clone()
    changed[sup] = torch.log_softmax(torch.randn(int(sup.sum()), 21, generator=g), -1)
    assert float(training_loss(changed, out.seq, sup, 0.1)) != float(
        training_loss(lp, out.seq, sup, 0.1)
    )
    # without a transform the mask is the original's mask & design_mask
    plain = _protein(50, 9, masked=0.2, designed=0.5)
    assert torch.equal(supervised_mask(plain), plain.mask & plain.design_mask)


def test_min_residues_crops_only_large_proteins():
    small, large = _protein(60, 1, masked=0.1, designed=0.7), _protein(400, 2, spread=60.0)
    t = SpatialCrop(30.0, 10.0, seed=0, min_residues=int(small.mask.sum()))
    out = t(small.clone())
    assert out.num_nodes == small.num_nodes and int(out.crop_center[0]) == -1
    assert torch.equal(out.loss_mask, small.mask & small.design_mask)
    out = t(large.clone())
    assert out.num_nodes < large.num_nodes and int(out.crop_center[0]) >= 0
    _check(large, out, 30.0, 10.0)
    assert make_transform({"name": "spatial_crop", "min_residues": 5}).min_residues == 5
