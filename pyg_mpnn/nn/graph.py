"""Neighbour graphs on CA coordinates, built with ``torch_cluster`` on batched coordinates.

The model's graph builder lives here, beside the model, so that :mod:`pyg_mpnn.nn` needs
nothing from :mod:`pyg_mpnn.data` (whose transforms :class:`~pyg_mpnn.data.graph.KNNEdges` and
:class:`~pyg_mpnn.data.graph.RadiusEdges` call these functions, as PyG's ``KNNGraph`` transform
calls :func:`torch_geometric.nn.knn_graph`).

Edges follow PyG's ``source_to_target`` convention: ``edge_index[0]`` is the neighbour j,
``edge_index[1]`` the centre i whose k nearest neighbours (itself included, as in the
original) send it messages. Residues with ``mask == False`` (a backbone atom missing) get no
edges at all, in either direction, so they can never influence a prediction. Nothing here
builds an N x N tensor: ``torch_cluster`` searches per graph of the ``batch`` vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch_cluster
from torch import Tensor


def _restrict(pos: Tensor, batch: Tensor | None, mask: Tensor | None):
    if mask is None or bool(mask.all()):
        return pos, batch, None
    keep = mask.nonzero().view(-1)
    return pos[keep], (batch[keep] if batch is not None else None), keep


@torch.compiler.disable  # torch_cluster's kernel cannot be traced: torch.compile runs it eagerly
def knn_edges(
    pos: Tensor, k: int = 48, batch: Tensor | None = None, mask: Tensor | None = None
) -> Tensor:
    """Each valid residue receives edges from its ``min(k, n_valid)`` nearest valid residues
    of the same graph (itself included). Returns ``edge_index`` ``[2, E]`` sorted by centre."""
    p, b, keep = _restrict(pos, batch, mask)
    if p.shape[0] == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    edge_index = torch_cluster.knn_graph(p.float(), k=k, batch=b, loop=True)
    return keep[edge_index] if keep is not None else edge_index


def radius_edges(
    pos: Tensor,
    r: float = 10.0,
    batch: Tensor | None = None,
    mask: Tensor | None = None,
    max_num_neighbors: int = 64,
) -> Tensor:
    """Edges between valid residues whose CA atoms lie within ``r`` angstrom (self included)."""
    p, b, keep = _restrict(pos, batch, mask)
    if p.shape[0] == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    edge_index = torch_cluster.radius_graph(
        p.float(), r=r, batch=b, loop=True, max_num_neighbors=max_num_neighbors
    )
    return keep[edge_index] if keep is not None else edge_index


# -- the kNN graph on the training device, without a device-to-host read ----------------------
@dataclass(frozen=True)
class GraphPlan:
    """What the kNN search of a batch needs to know on the host, computed where the batch is
    built (the data loader, on the CPU) so that the search on the training device reads
    nothing back: the valid residues and, for each, its graph's first valid residue and size.

    ``keep`` ``[N_valid]``: indices of the residues with ``mask``; ``start`` and ``count``
    ``[N_valid]``: the position (among ``keep``) of the first valid residue of its graph and
    the number of valid residues there; ``sizes``: the valid residues of each graph (ints).
    ``to`` and ``pin_memory`` move the tensors, as PyG's ``Batch.to`` asks of its attributes.
    """

    keep: Tensor
    start: Tensor
    count: Tensor
    sizes: tuple[int, ...]

    def _apply(self, fn) -> GraphPlan:
        return GraphPlan(fn(self.keep), fn(self.start), fn(self.count), self.sizes)

    def to(self, *args, **kwargs) -> GraphPlan:
        return self._apply(lambda t: t.to(*args, **kwargs))

    def pin_memory(self) -> GraphPlan:
        return self._apply(lambda t: t.pin_memory())

    def num_edges(self, k: int) -> int:
        """Edges of the kNN graph: every valid residue receives ``min(k, graph size)``."""
        return sum(s * min(k, s) for s in self.sizes)


def graph_plan(mask: Tensor, batch: Tensor | None = None, num_graphs: int = 1) -> GraphPlan:
    """The :class:`GraphPlan` of a batch (on the host: it reads ``mask``); ``batch`` must be
    sorted (PyG's ``Batch``)."""
    keep = mask.nonzero().view(-1)
    b = batch[keep] if batch is not None else torch.zeros_like(keep)
    sizes = torch.bincount(b, minlength=num_graphs)
    first = sizes.cumsum(0) - sizes
    return GraphPlan(keep, first[b], sizes[b], tuple(sizes.tolist()))


@torch.compiler.disable  # a loop over host sizes: eager under torch.compile, as knn_edges
def planned_knn_edges(pos: Tensor, k: int, plan: GraphPlan, chunk: int = 2**24) -> Tensor:
    """:func:`knn_edges` from a :class:`GraphPlan`: the same edges (each valid residue's
    ``min(k, n_valid)`` nearest valid residues of its graph, nearest first, sorted by centre),
    by a brute-force search within each graph on ``pos``'s device. Every shape follows from the
    plan's sizes, so nothing is read back from the device. ``chunk``: elements of the largest
    temporary (rows x widest graph x 3)."""
    n, widest = plan.keep.numel(), max(plan.sizes, default=0)
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    p = pos.index_select(0, plan.keep).float()
    cols = torch.arange(widest, device=pos.device)
    rows = max(chunk // (3 * widest), 1)
    nearest = []
    for r in range(0, n, rows):  # sizes known here: no read from the device
        start, count = plan.start[r : r + rows, None], plan.count[r : r + rows, None]
        valid = cols < count
        cand = torch.where(valid, start + cols, start)  # [R, widest] residues of its graph
        d2 = ((p[r : r + rows, None] - p[cand]) ** 2).sum(-1).masked_fill(~valid, math.inf)
        idx = d2.topk(min(k, widest), dim=1, largest=False, sorted=True).indices
        nearest.append(cand.gather(1, idx))
    nbr = torch.cat(nearest)
    per = plan.count.clamp(max=k)  # edges into each valid residue
    e = plan.num_edges(k)
    centre = torch.repeat_interleave(torch.arange(n, device=pos.device), per, output_size=e)
    slot = torch.arange(e, device=pos.device) - (per.cumsum(0) - per)[centre]
    return plan.keep[torch.stack([nbr[centre, slot], centre])]
