"""Graph building: properties over random batches (hypothesis) and one real protein."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from testdata import structure
from torch_geometric.data import Batch, Data

from pyg_mpnn.data.graph import KNNEdges, RadiusEdges, knn_edges, radius_edges
from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure


def _batch(sizes, seed, masked_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in sizes:
        pos = torch.randn(n, 3, generator=g) * 10
        mask = torch.rand(n, generator=g) >= masked_frac
        graphs.append(Data(pos=pos, mask=mask, num_nodes=n))
    return Batch.from_data_list(graphs)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=5),
    k=st.integers(1, 50),
    seed=st.integers(0, 10_000),
    masked=st.sampled_from([0.0, 0.2]),
)
def test_knn_in_degree_and_no_cross_graph_edges(sizes, k, seed, masked):
    b = _batch(sizes, seed, masked)
    ei = knn_edges(b.pos, k, b.batch, b.mask)
    src, dst = ei
    # no edge crosses graphs, none touches a masked residue
    assert torch.equal(b.batch[src], b.batch[dst])
    assert bool(b.mask[src].all()) and bool(b.mask[dst].all())
    indeg = torch.bincount(dst, minlength=b.num_nodes)
    for gi in range(len(sizes)):
        nodes = (b.batch == gi) & b.mask
        n_valid = int(nodes.sum())
        assert bool((indeg[nodes] == min(k, n_valid)).all())
        assert bool((indeg[(b.batch == gi) & ~b.mask] == 0).all())
    # self loops included for every valid node
    loops = src[src == dst]
    assert set(loops.tolist()) == set(b.mask.nonzero().view(-1).tolist())


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=4), seed=st.integers(0, 1000))
def test_knn_picks_nearest(sizes, seed):
    """Each centre's neighbours are exactly its k nearest (brute force on small graphs)."""
    b = _batch(sizes, seed)
    k = 7
    ei = knn_edges(b.pos, k, b.batch)
    for i in range(b.num_nodes):
        same = (b.batch == b.batch[i]).nonzero().view(-1)
        d = (b.pos[same] - b.pos[i]).norm(dim=-1)
        expected = set(same[d.argsort()[: min(k, len(same))]].tolist())
        assert set(ei[0, ei[1] == i].tolist()) == expected


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
    r=st.floats(2.0, 30.0),
)
def test_radius_edges_within_graph_and_radius(sizes, seed, r):
    b = _batch(sizes, seed, 0.1)
    src, dst = radius_edges(b.pos, r, b.batch, b.mask, max_num_neighbors=1000)
    assert torch.equal(b.batch[src], b.batch[dst])
    assert bool(((b.pos[src] - b.pos[dst]).norm(dim=-1) <= r + 1e-4).all())
    assert bool(b.mask[src].all() and b.mask[dst].all())


def test_transforms_on_batch_and_single():
    b = _batch([30, 50], 0)
    t = KNNEdges(k=48)
    single = t(Data(pos=b.pos[:30], mask=b.mask[:30], num_nodes=30))
    assert single.edge_index.shape[1] == 30 * 30
    batched = t(b.clone())
    assert batched.edge_index.shape[1] == 30 * 30 + 50 * 48
    rb = RadiusEdges(r=8.0)(b.clone())
    assert rb.edge_index.shape[0] == 2 and "RadiusEdges" in repr(RadiusEdges())


def test_knn_on_real_protein():
    rec = read_structure(structure("mdanalysistests__1eteA.pdb.gz"))  # TS50's first chain
    d = KNNEdges(48)(to_data(rec))
    assert d.edge_index.shape[1] == 48 * int(d.mask.sum())
    # CA neighbours of a real chain: sequence neighbours i-1, i+1 are always among them
    i = 10
    assert {i - 1, i + 1} <= set(d.edge_index[0, d.edge_index[1] == i].tolist())
