"""A training step that a GPU runs without waiting for it: between logging steps, nothing in the
step (forward with the kNN search, backward, loss, metrics, gradient clipping, the bad-step
check, Adam) reads a value back from the device or makes a shape that depends on one.

On a CPU such reads cost nothing and cannot be seen as copies, so the step runs under a dispatch
mode that records every operator that would synchronise a GPU with the host: scalar reads
(``aten._local_scalar_dense``, ``is_nonzero``, ``equal``), operators whose output shape depends
on the values (``nonzero``, ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave``
without ``output_size``, indexing with a boolean mask), and, seen as Python calls, ``tolist``,
``numpy``, ``item`` and ``cpu``."""

from __future__ import annotations

import traceback

import pytest
import torch
from _train_tiny import TINY_MODEL
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from pyg_mpnn.data.loader import make_loader
from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.graph import graph_plan, knn_edges, planned_knn_edges
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

aten = torch.ops.aten
ALWAYS = {
    aten._local_scalar_dense,
    aten.is_nonzero,
    aten.equal,
    aten.nonzero,
    aten.masked_select,
    aten._unique,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.bincount,
}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
HOST_READS = {torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.item, torch.Tensor.cpu}


def _where() -> str:
    """The innermost pyg_mpnn frame of the current stack (where a read happens)."""
    frames = [f for f in traceback.extract_stack() if "pyg_mpnn" in f.filename]
    return f"{frames[-1].filename.split('pyg_mpnn')[-1]}:{frames[-1].lineno}" if frames else "?"


def _syncs(func, args, kwargs) -> bool:
    packet = func.overloadpacket
    if packet in ALWAYS:
        return True
    if packet is aten.repeat_interleave:  # its output size is read unless given
        return kwargs.get("output_size") is None
    if packet in INDEXING:
        return any(i is not None and i.dtype == torch.bool for i in args[1])
    return False


class SyncCounter(TorchDispatchMode):
    """Records every synchronising operator (with where it was called) in :attr:`found`."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _syncs(func, args, kwargs):
            self.found.append(f"{func} at {_where()}")
        return func(*args, **kwargs)


class HostReads(TorchFunctionMode):
    """Records Python-level reads of tensor values (``tolist``, ``item``, ...)."""

    def __init__(self, found: list[str]):
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.found.append(f"{func.__name__} at {_where()}")
        return func(*args, **(kwargs or {}))


def _trainer(data, out, *sets) -> Trainer:
    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={data}",
            "data.max_tokens=150",  # one protein a batch: enough batches for 3 steps of 2
            "track.aim=false",
            "track.layer_every=0",
            "track.log_every=3",  # steps 1 and 3 report; step 2 must read nothing
            "optim.grad_clip=1.0",
            "model.augment_eps=0.2",  # the kNN graph is searched inside the step
            *sets,
        ],
    )
    return Trainer(cfg, out)


def _counted_step(t: Trainer, it) -> list[str]:
    micro = [next(it) for _ in range(t.cfg.optim.accumulate)]
    counter = SyncCounter()
    with counter, HostReads(counter.found):
        t.train_step(micro, 0.0)
    return counter.found


@pytest.mark.parametrize(
    "sets",
    [["train.precision=fp32"], ["train.precision=bf16", "optim.accumulate=2"]],
    ids=["fp32", "bf16_accumulate"],
)
def test_no_sync_outside_logging_steps(tiny_dataset, tmp_path, sets):
    t = _trainer(tiny_dataset, tmp_path, *sets)
    assert not t.data.train_loader.pin_memory  # page-locked batches for a CUDA device only
    t.model.train()
    it = iter(t.data.train_loader)
    first = _counted_step(t, it)  # step 1 reports
    assert first, "the counter saw no read on a logging step: it would miss them everywhere"
    assert _counted_step(t, it) == []  # step 2
    assert _counted_step(t, it)  # step 3 reports again
    assert t.step == 3 and t.guard.total == 0


def test_planned_knn_is_the_graph_searched_on_the_host(tiny_dataset):
    """The device-side search (from the loader's plan) gives torch_cluster's edges, in the same
    order, for batches with missing residues and graphs smaller than k."""
    from testdata import structure
    from torch_geometric.data import Batch

    files = ["proteinmpnn__6MRR.pdb", "biotite__5zng.pdb", "proteinmpnn__3HTN.pdb.gz"]
    graphs = [to_data(read_structure(structure(f))) for f in files]
    graphs[1].mask[::7] = False  # missing backbone atoms: no edges in or out
    tiny = graphs[0].clone()
    tiny.mask[12:] = False  # a graph of 12 valid residues: fewer than k
    batch = Batch.from_data_list([*graphs, tiny])
    gen = torch.Generator().manual_seed(0)
    pos = batch.coords[:, 1] + 0.2 * torch.randn(batch.num_nodes, 3, generator=gen)
    plan = graph_plan(batch.mask, batch.batch, batch.num_graphs)
    for k in (16, 48):
        expected = knn_edges(pos, k, batch.batch, batch.mask)
        assert torch.equal(planned_knn_edges(pos, k, plan, chunk=5000), expected), k
    loader = make_loader([*graphs, tiny], [[0, 1, 2, 3]])
    assert torch.equal(next(iter(loader)).knn_plan.keep, plan.keep)
