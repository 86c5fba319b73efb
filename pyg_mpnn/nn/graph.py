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
