"""Sums of per-edge messages into their targets, over edges sorted by target.

An :class:`EdgeLayout` is built once per batch (:func:`layout_of_plan` from a
:class:`~pyg_mpnn.nn.graph.GraphPlan` without reading the device, :func:`layout_of_edges` from
any ``edge_index`` with one read) and handed to every layer, which then sums its messages
without looking at the graph again:

* ``dense`` (default): the messages laid out as ``[N, K_max, H]`` in edge order and summed over
  ``K`` -- the original's floating-point order, bit for bit
  (:class:`~pyg_mpnn.nn.layers._OriginalOrderSum`, which re-derives the layout at every call);
* ``csr``: a segment reduction over the CSR row pointer (``torch_scatter.segment_csr`` when
  torch-scatter is installed -- ``pip install pyg_mpnn[scatter]`` -- else torch's own
  ``segment_reduce``): no padded copy and no atomic scatter; the same sums up to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from pyg_mpnn.nn.graph import GraphPlan

try:
    import torch_scatter
except ImportError:  # optional: torch's segment_reduce serves instead
    torch_scatter = None

MODES = ("dense", "csr")


class EdgeLayout(NamedTuple):
    """Edges grouped by target: ``ptr`` ``[N + 1]`` (the edges into node ``i`` are
    ``ptr[i]:ptr[i + 1]``), ``deg`` ``[N]`` in-degrees, and, as host ints, ``max_degree``,
    ``num_edges`` and ``num_nodes``; ``mode``: ``dense`` or ``csr`` (module docstring)."""

    ptr: Tensor
    deg: Tensor
    max_degree: int
    num_edges: int
    num_nodes: int
    mode: str = "dense"


def _from_deg(deg: Tensor, max_degree: int, num_edges: int, mode: str) -> EdgeLayout:
    ptr = torch.cat([deg.new_zeros(1), deg.cumsum(0)])
    return EdgeLayout(ptr, deg, max_degree, num_edges, deg.numel(), mode)


@torch.compiler.disable  # host sizes of the plan: built eagerly under torch.compile
def layout_of_plan(plan: GraphPlan, k: int, num_nodes: int, mode: str = "dense") -> EdgeLayout:
    """The layout of :func:`~pyg_mpnn.nn.graph.planned_knn_edges`'s graph, from its plan
    alone (no read from the device)."""
    per = plan.count.clamp(max=k)
    deg = torch.zeros(num_nodes, dtype=torch.long, device=per.device).index_copy_(0, plan.keep, per)
    widest = min(k, max(plan.sizes, default=0))
    return _from_deg(deg, widest, plan.num_edges(k), mode)


def pad_layout(layout: EdgeLayout, loops: Tensor, num_padding: int) -> EdgeLayout:
    """``layout`` with the self-loops appended by :func:`~pyg_mpnn.nn.buckets.pad_edges`
    (``loops``: their targets, the last ``num_padding`` nodes, spread evenly and sorted);
    no read from the device."""
    extra = loops.numel()
    if extra == 0:
        return layout
    deg = layout.deg.index_add(0, loops, torch.ones_like(loops))
    widest = max(layout.max_degree, -(-extra // num_padding))
    return _from_deg(deg, widest, layout.num_edges + extra, layout.mode)


@torch.compiler.disable  # reads the device: eager under torch.compile
def layout_of_edges(edge_index: Tensor, num_nodes: int, mode: str = "dense") -> EdgeLayout | None:
    """The layout of ``edge_index`` if its edges are sorted by target (else ``None``); reads
    the device once (sortedness and the largest degree)."""
    dst = edge_index[1]
    deg = torch.bincount(dst, minlength=num_nodes)
    widest = deg.max() if deg.numel() else deg.sum()
    facts = torch.stack([(dst[1:] >= dst[:-1]).all().long(), widest])
    is_sorted, widest = facts.tolist()
    return _from_deg(deg, widest, dst.numel(), mode) if is_sorted else None


def _dense_sum(inputs: Tensor, index: Tensor, layout: EdgeLayout) -> Tensor | None:
    """:class:`~pyg_mpnn.nn.layers._OriginalOrderSum`'s sum, from the layout (``None`` where
    that would scatter instead: very uneven degrees)."""
    n, k, e = layout.num_nodes, layout.max_degree, layout.num_edges
    if n * k > 2 * e + n:
        return None
    if n * k == e:  # every target has k edges: a view, no copy
        return inputs.view(n, k, inputs.size(-1)).sum(1)
    slot = torch.arange(e, device=index.device) - layout.ptr[:-1][index]
    dense = inputs.new_zeros(n, k, inputs.size(-1))
    dense[index, slot] = inputs
    return dense.sum(1)


def segment_sum(inputs: Tensor, ptr: Tensor) -> Tensor:
    """Row sums of ``inputs`` over the segments ``ptr[i]:ptr[i + 1]`` (in fp32 for reduced
    precision inputs, returned in their dtype)."""
    x = inputs.float() if inputs.dtype in (torch.float16, torch.bfloat16) else inputs
    if torch_scatter is not None:
        out = torch_scatter.segment_csr(x, ptr, reduce="sum")
    else:
        out = torch.segment_reduce(x, "sum", offsets=ptr, axis=0, initial=0)
    return out.to(inputs.dtype)


def sum_by_target(inputs: Tensor, index: Tensor, layout: EdgeLayout) -> Tensor:
    """``sum_j inputs[j]`` over the edges ``j`` into each node (``index``: their targets,
    sorted; ``layout``: their layout), as ``layout.mode`` says."""
    if inputs.dim() == 2 and layout.num_edges > 0:
        if layout.mode == "csr":
            return segment_sum(inputs, layout.ptr)
        out = _dense_sum(inputs, index, layout)
        if out is not None:
            return out
    return scatter(inputs, index, 0, dim_size=layout.num_nodes, reduce="sum")  # PyG's sum
