"""Shape buckets: a batch's node and edge counts rounded up to a small set of sizes.

Padding-free batches give every step new node and edge counts, so every activation tensor has
a size never seen before. glibc's heap then never finds a hole of the right size and keeps
growing (a 1 GB ``base_cpu30`` step sat in 5 GB: docs/reliability.md), oneDNN compiles a
kernel per shape, and a compiler or CUDA graph would specialise per shape. Rounding both counts
up to ``per_octave`` sizes per power of two (at most ``100 / per_octave`` % padding, half that
on average) makes the sizes repeat.

Padding, exact for every real residue:

* ``P >= 1`` padding residues, appended as one extra graph of the batch, copy the first
  valid residue (so their features are finite), with ``mask`` and ``design_mask`` False, so the kNN search gives
  them no edges and no loss or metric sees them (nor the batch's ``knn_plan``, which is kept);
* the edge count is then rounded up with self-loops on the padding residues. Messages only
  flow along edges, so nothing reaches a real residue from a padding one.

The model pads in :meth:`~pyg_mpnn.nn.model.ProteinMPNN.forward` and returns the real rows
only; attribute ``shape_buckets`` (0: off) turns it on.

Shapes:
    - **input:** a batch of ``N`` residues, ``E`` kNN edges
    - **inside the model:** ``bucket(N + 1)`` residues, ``bucket(E)`` edges
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

NODE_KEYS = ("coords", "mask", "design_mask", "seq", "residue_idx", "chain", "batch")


def bucket(n: int, per_octave: int) -> int:
    """The smallest size ``>= n`` of the form ``m * 2**j`` with ``per_octave <= m < 2 *
    per_octave`` (``n`` itself below ``per_octave``)."""
    if n <= per_octave or per_octave <= 0:
        return n
    step = 1 << ((n - 1).bit_length() - per_octave.bit_length())
    return -(-n // step) * step


def pad_nodes(data: Data, per_octave: int) -> tuple[Data, int]:
    """``data`` with padding residues appended (a new graph) up to ``bucket(N + 1)``; and
    ``N``, the number of real residues, so that outputs can be cut back with ``[:N]``."""
    n = data.num_nodes
    total = bucket(n + 1, per_octave)
    p = total - n
    padded = Data()
    batch = getattr(data, "batch", None)
    plan = getattr(data, "knn_plan", None)
    if plan is not None:  # its graph count is a host int: no read from the device
        graphs = len(plan.sizes)
    else:
        graphs = int(batch.max()) + 1 if batch is not None and n else 1
    first_valid = torch.argmax(data.mask.to(torch.uint8))  # a tensor: no host sync
    for key in NODE_KEYS:
        value = getattr(data, key, None)
        if key == "batch":
            base = value if value is not None else data.coords.new_zeros(n, dtype=torch.long)
            value = torch.cat([base, base.new_full((p,), graphs)])
        elif value is not None:
            fill = value.index_select(0, first_valid.view(1)).expand(p, *value.shape[1:])
            if value.dtype == torch.bool:
                fill = torch.zeros_like(fill)
            value = torch.cat([value, fill])
        if value is not None:
            setattr(padded, key, value)
    if plan is not None:  # still exact: the padding residues are not valid, so not in it
        padded.knn_plan = plan
    padded.num_padding = p
    return padded, n


def pad_edges(edge_index: Tensor, num_nodes: int, num_padding: int, per_octave: int) -> Tensor:
    """``edge_index`` with self-loops on the last ``num_padding`` residues appended, spread
    evenly and sorted by residue (edges sorted by target stay sorted), up to ``bucket(E)``
    edges."""
    e = edge_index.shape[1]
    extra = bucket(max(e, 1), per_octave) - e
    if extra <= 0 or num_padding <= 0:
        return edge_index
    first = num_nodes - num_padding
    loops = first + torch.arange(extra, device=edge_index.device) * num_padding // extra
    return torch.cat([edge_index, loops.expand(2, -1)], dim=1)
