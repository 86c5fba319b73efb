"""Score given sequences and compute per-residue probabilities (no sampling).

* :func:`score_sequence`: the original's ``score_only``: teacher-forced log-probs of a
  sequence under ``num_orders`` random decoding orders; ``score`` = mean NLL over the designed
  residues, ``global_score`` over all residues with a backbone, each averaged over the orders,
  and the per-residue NLL averaged over the orders.
* :func:`conditional_log_probs`: the original's ``conditional_probs_only``:
  :math:`\\log p(s_i \\mid s_{\\setminus i}, X)` for every designed residue ``i`` (``i`` decoded
  last, the others in a random order); with ``backbone_only`` (the original's
  ``conditional_probs_only_backbone``) ``i`` is decoded first instead, seeing no letter:
  :math:`\\log p(s_i \\mid X)` one residue at a time.
* :func:`unconditional_log_probs`: ``unconditional_probs_only``:
  :math:`\\log p(s_i \\mid X)` in one pass (no residue sees any letter).

Orders are batched as copies of the graph sharing one encoder pass. With backbone noise
(``noise`` > 0, drawn from ``generator``) each forward pass of the original gets its own noisy
backbone here too: each order of :func:`score_sequence`, each order of
:func:`conditional_log_probs` (shared by its residues), the one pass of
:func:`unconditional_log_probs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

from pyg_mpnn.design.sampling import (
    add_noise,
    chunks,
    copies_of,
    per_graph_mean,
    repeat_encoded,
)
from pyg_mpnn.nn.model import ProteinMPNN, decoding_rank


@dataclass
class SequenceScore:
    """Scores of one sequence: means over the orders, ``per_order`` ``[O, 2]`` (score,
    global score per order) and per-residue NLL ``nll`` ``[N]`` (mean over orders)."""

    score: float
    global_score: float
    per_order: Tensor
    nll: Tensor


def order_keys(data: Data, num_orders: int, generator: torch.Generator) -> Tensor:
    """``[O, N]`` standard normal draws, one row per decoding order (the original's randn)."""
    return torch.randn(num_orders, data.num_nodes, generator=generator)


def _encoded_copies(model, data, copies, encoded, noise, generator):
    """Encoder output of ``copies`` copies of ``data``: ``encoded`` tiled, or with ``noise``
    each copy noised and encoded."""
    if noise > 0:
        return model.encode(add_noise(copies_of(data, copies), noise, generator))
    encoded = model.encode(data) if encoded is None else encoded
    return repeat_encoded(encoded, copies, data.num_nodes)


@torch.no_grad()
def score_sequence(
    model: ProteinMPNN,
    data: Data,
    seq: Tensor,
    randn: Tensor,
    batch_size: int = 32,
    encoded=None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> SequenceScore:
    """Score ``seq`` ``[N]`` on ``data`` under the orders of ``randn`` ``[O, N]``."""
    if noise <= 0 and encoded is None:
        encoded = model.encode(data)
    rows, nlls = [], []
    for start, b in zip(range(0, len(randn), batch_size), chunks(len(randn), batch_size)):
        batch = copies_of(data, b)
        rank = decoding_rank(
            batch.design_mask & batch.mask, randn[start : start + b].reshape(-1), batch.batch
        )
        seq_b = seq.repeat(b)
        enc = _encoded_copies(model, data, b, encoded, noise, generator)
        lp = model(batch, decoding_rank=rank, encoded=enc, seq=seq_b)
        nll = -lp.gather(1, seq_b.view(-1, 1)).view(-1)
        score = per_graph_mean(nll, batch.design_mask.float() * batch.mask, batch.batch, b)
        glob = per_graph_mean(nll, batch.mask.float(), batch.batch, b)
        rows.append(torch.stack([score, glob], 1))
        nlls.append(nll.view(b, -1))
    per_order = torch.cat(rows)
    nll = torch.cat(nlls).mean(0) * data.mask
    return SequenceScore(
        float(per_order[:, 0].mean()), float(per_order[:, 1].mean()), per_order, nll
    )


@torch.no_grad()
def conditional_log_probs(
    model: ProteinMPNN,
    data: Data,
    randn: Tensor,
    batch_size: int = 32,
    encoded=None,
    backbone_only: bool = False,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[O, N, 21]`` log-probs of each designed residue decoded last (``backbone_only``:
    first), zeros elsewhere."""
    targets = torch.nonzero(data.design_mask & data.mask).view(-1)
    n = data.num_nodes
    out = torch.zeros(len(randn), n, model.W_out.out_features)
    if noise <= 0 and encoded is None:
        encoded = model.encode(data)
    for o in range(len(randn)):
        enc_o = model.encode(add_noise(data, noise, generator)) if noise > 0 else encoded
        for start, b in zip(range(0, len(targets), batch_size), chunks(len(targets), batch_size)):
            idx = targets[start : start + b]
            batch = copies_of(data, b)
            target = torch.zeros(b, n, dtype=torch.bool)
            target[torch.arange(b), idx] = True
            key = ~target if backbone_only else target  # the original's order_mask
            rank = decoding_rank(key.view(-1), randn[o].repeat(b), batch.batch)
            lp = model(batch, decoding_rank=rank, encoded=repeat_encoded(enc_o, b, n))
            out[o, idx] = lp.view(b, n, -1)[torch.arange(b), idx]
    return out


@torch.no_grad()
def unconditional_log_probs(
    model: ProteinMPNN,
    data: Data,
    encoded=None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[1, N, 21]`` log-probs of every residue given the backbone only."""
    if noise > 0:
        encoded = model.encode(add_noise(data, noise, generator))
    lp = model(data, decoding_rank=torch.zeros(data.num_nodes, dtype=torch.long), encoded=encoded)
    return (lp * data.mask.unsqueeze(-1)).unsqueeze(0)
