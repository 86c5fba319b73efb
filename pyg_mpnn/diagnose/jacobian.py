"""The categorical-Jacobian probe for the ``diagnose`` CLI and its post-hoc runs, and its
encoder-side counterpart.

The decoder's probe lives in :mod:`pyg_mpnn.track.jacobian` (the trainer runs it while
tracking, and ``pyg_mpnn.train`` does not import ``pyg_mpnn.diagnose``); these are its names
for ``python -m pyg_mpnn.diagnose``, :mod:`pyg_mpnn.diagnose.posthoc` and
``studies/jacobian_study.py``.

Encoder-side coupling (:func:`encoder_jacobian`). The categorical Jacobian asks the decoder how
the letter at ``j`` moves the prediction at ``i``; the encoder never sees the sequence, so its
coupling is asked of the structure. With the model in eval mode, no backbone noise and the kNN
graph of the unperturbed structure held fixed, let ``h_i`` be residue ``i``'s node state after
the last encoder layer (``H`` numbers) and ``t_j`` a rigid translation of residue ``j`` (its
four backbone atoms N, CA, C, O moved together by the same vector). Then

    E[i, j] = || d h_i / d t_j ||_F        (an H x 3 block; E[i, i] set to 0)

computed exactly by forward-mode automatic differentiation (``torch.autograd.forward_ad``):
three tangents per residue, ``3 L`` in all, batched as disjoint copies of the graph like the
decoder's perturbed sequences. ``E`` goes through the same reduction as the decoder's ``C``
(``S = E + E^T``, APC) and :func:`~pyg_mpnn.track.jacobian.pair_metrics`. With one encoder layer
``E[i, j] = 0`` unless ``j -> i`` is an edge (``X_j`` enters ``h_i`` only through the edge
features of ``j -> i``); each further layer adds one hop.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
from torch_geometric.data import Data

from pyg_mpnn.nn.probe import probe_mode
from pyg_mpnn.track.jacobian import (
    TS50,
    apc,
    candidate_pairs,
    categorical_jacobian,
    contact_map,
    evaluate,
    load_probe,
    load_results,
    neighbour_rank,
    outside_knn,
    pair_metrics,
    probe_figure,
    save_result,
    top_precision,
)

__all__ = [
    "TS50",
    "apc",
    "candidate_pairs",
    "categorical_jacobian",
    "contact_map",
    "encoder_jacobian",
    "evaluate",
    "load_probe",
    "load_results",
    "neighbour_rank",
    "outside_knn",
    "pair_metrics",
    "probe_figure",
    "save_result",
    "top_precision",
]


def encoder_jacobian(model, data: Data, edge_budget: int = 250_000) -> dict:
    """``E`` (``[L, L]`` float64, ``E[i, j]`` = effect of residue ``j``'s backbone on ``h_i``,
    see the module docstring) and the kNN mask (``knn[i, j]``: edge ``j -> i``).
    ``edge_budget`` bounds the edges of one batched encoder call (memory)."""
    with probe_mode(model):
        device = next(model.parameters()).device
        data = data.to(device)
        data.edge_index = None
        with torch.no_grad():
            _, _, ei = model.encode(data)
        n = data.num_nodes
        knn = torch.zeros(n, n, dtype=torch.bool)
        knn[ei[1].cpu(), ei[0].cpu()] = True
        present = data.mask.nonzero().view(-1).tolist()
        jobs = [(j, x) for j in present for x in range(3)]
        per_copy = max(1, edge_budget // max(ei.shape[1], 1))
        sq = torch.zeros(n, n, dtype=torch.float64)  # sq[i, j] = ||d h_i / d X_j||_F^2
        for start in range(0, len(jobs), per_copy):
            chunk = jobs[start : start + per_copy]
            tangent = _encoder_tangents(model, data, ei, chunk)  # [B, L, H]
            js = torch.tensor([j for j, _ in chunk])
            sq.index_add_(1, js, tangent.pow(2).sum(-1).t().double().cpu())
        E = sq.sqrt()
        E.fill_diagonal_(0.0)
        return {"C": E.numpy(), "knn": knn.numpy()}


@torch.no_grad()
def _encoder_tangents(model, data: Data, ei: torch.Tensor, chunk: list) -> torch.Tensor:
    """``d h / d t[j, x]`` (``[B, L, H]``) for the ``B`` translations (residue ``j``, axis
    ``x``) of ``chunk``: one forward-mode pass over ``B`` disjoint copies of the graph."""
    b, n = len(chunk), data.num_nodes
    off = (torch.arange(b, device=ei.device) * n).repeat_interleave(ei.shape[1])
    coords = data.coords.float().repeat(b, 1, 1)
    tangent = torch.zeros_like(coords)
    rows = torch.tensor([c * n + j for c, (j, _) in enumerate(chunk)])
    tangent[rows, :, [x for _, x in chunk]] = 1.0  # all four atoms of j along axis x
    with fwAD.dual_level():
        big = Data(
            coords=fwAD.make_dual(coords, tangent),
            mask=data.mask.repeat(b),
            chain=data.chain.repeat(b),
            residue_idx=data.residue_idx.repeat(b),
            edge_index=ei.repeat(1, b) + off,
            num_nodes=b * n,
        )
        h, _, _ = model.encode(big)
        out = fwAD.unpack_dual(h).tangent
    if out is None:  # h does not depend on the coordinates at all
        return torch.zeros(b, n, model.hidden_dim)
    return out.float().view(b, n, -1)
