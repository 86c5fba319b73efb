"""Control of autoregressive sampling: amino-acid bias and omission, and tied decoding.

:class:`DecodeControl` carries per-residue tensors for :meth:`ProteinMPNN.sample
<pyg_mpnn.nn.model.ProteinMPNN.sample>`; :func:`tied_order` turns a decoding rank into the
order in which tied residues are decoded together; :func:`draw_probs` applies the bias and
omission to tempered logits in the original's operation order, so that with one structure,
the same order and the same seed the draws are the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class DecodeControl:
    r"""What the sampler may draw, per residue (every field optional).

    At a decoding step of residue :math:`i` (or of a tied group whose last member is
    :math:`i`), the probabilities are

    .. math::
        p = \mathrm{normalize}\Big(\mathrm{softmax}\big(\mathbf{z}/T - 10^8\,\mathbf{o}
            + \mathbf{b}/T + \mathbf{b}_i/T\big) \odot (1 - \mathbf{m}_i)\Big)

    with :math:`\mathbf{z}` the logits (for a tied group, the weighted mean
    :math:`\frac{1}{|g|}\sum_{j \in g} \beta_j \mathbf{z}_j`), :math:`\mathbf{o}` the global
    omission (``omit`` of :meth:`sample`), :math:`\mathbf{b}` = ``bias``, :math:`\mathbf{b}_i`
    = ``bias_by_res[i]`` and :math:`\mathbf{m}_i` = ``omit_mask[i]`` (the renormalisation is
    done only when ``omit_mask`` is given), as the original's ``sample`` / ``tied_sample``.
    With a PSSM, between the softmax and the omission, as the original (``pssm_bias_flag``,
    then ``pssm_log_odds_flag``):

    .. math::
        p \leftarrow (1 - w_i)\,p + w_i\,\mathbf{q}_i, \qquad
        p \leftarrow \mathrm{normalize}\big(p \odot (\mathbf{k}_i + 0.001)\big)

    with :math:`w_i` = ``pssm_mix[i]``, :math:`\mathbf{q}_i` = ``pssm_bias[i]`` and
    :math:`\mathbf{k}_i` = ``pssm_keep[i]``.

    Args:
        bias (Tensor, optional): ``[21]`` added to every residue's logits (before the
            division by the temperature). (default: :obj:`None`)
        bias_by_res (Tensor, optional): ``[N, 21]`` per-residue bias. (default: :obj:`None`)
        omit_mask (Tensor, optional): ``[N, 21]``, 1 where a letter is forbidden at a
            residue. (default: :obj:`None`)
        tie_group (Tensor, optional): ``[N]`` long, the tied group of each residue within its
            graph (``-1``: not tied). A group is decoded at the place of its earliest member,
            members one after the other in node order, and gets one draw for all. Members
            should all be designed (or all not). (default: :obj:`None`)
        tie_weight (Tensor, optional): ``[N]`` weights :math:`\beta` (default: ones).
        pssm_mix (Tensor, optional): ``[N]`` weight of the PSSM in the mixture (the original's
            ``pssm_multi * pssm_coef``); needs ``pssm_bias``. (default: :obj:`None`)
        pssm_bias (Tensor, optional): ``[N, 21]`` the PSSM's probabilities. (default:
            :obj:`None`)
        pssm_keep (Tensor, optional): ``[N, 21]``, 1 where a letter's PSSM log-odds pass the
            threshold (others keep 0.1% of their probability). (default: :obj:`None`)
    """

    bias: Tensor | None = None
    bias_by_res: Tensor | None = None
    omit_mask: Tensor | None = None
    tie_group: Tensor | None = None
    tie_weight: Tensor | None = None
    pssm_mix: Tensor | None = None
    pssm_bias: Tensor | None = None
    pssm_keep: Tensor | None = None

    @property
    def tied(self) -> bool:
        return self.tie_group is not None and bool((self.tie_group >= 0).any())

    def repeat(self, copies: int) -> DecodeControl:
        """The same control for a batch of ``copies`` identical graphs (per-node tensors
        tiled, ``bias`` kept)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and f.name != "bias":
                v = v.repeat(copies, *([1] * (v.dim() - 1)))
            out[f.name] = v
        return DecodeControl(**out)


def tied_order(rank: Tensor, tie_group: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Decoding rank with tied groups decoded together.

    A group takes the place of its earliest member in ``rank`` (as the original's
    ``tied_sample`` rebuilds ``decoding_order``); its members follow one another in node order.

    Returns ``(new_rank, group, group_rank)``: the new per-graph rank ``[N]``, a compact group
    id per node ``[N]`` (untied nodes are groups of one) and each node's group position
    ``[N]`` (the old rank of its earliest member: comparable within a graph).
    """
    n = rank.numel()
    idx = torch.arange(n, device=rank.device)
    key = torch.where(tie_group >= 0, tie_group + n, idx) + batch * (2 * n + 1)
    _, group = torch.unique(key, return_inverse=True)
    first = torch.full((int(group.max()) + 1 if n else 0,), n, dtype=rank.dtype, device=rank.device)
    group_rank = first.scatter_reduce(0, group, rank, "amin")[group]
    order = torch.argsort(group_rank, stable=True)  # ties: node order kept
    order = order[torch.argsort(batch[order], stable=True)]
    start = torch.cat([batch.new_zeros(1), torch.bincount(batch).cumsum(0)])[:-1]
    new_rank = torch.empty_like(rank)
    new_rank[order] = idx - start[batch[order]]
    return new_rank, group, group_rank


def step_table(rank: Tensor, group: Tensor, batch: Tensor) -> Tensor:
    """``[S, K, B]`` node table: ``table[s, k, b]`` = the ``k``-th member of graph ``b``'s
    ``s``-th group in decoding order (``-1`` where none)."""
    n = rank.numel()
    num_graphs = int(batch.max()) + 1 if n else 0
    order = torch.argsort(rank, stable=True)
    order = order[torch.argsort(batch[order], stable=True)]
    g = group[order]
    new_group = torch.ones(n, dtype=torch.bool, device=rank.device)
    new_group[1:] = (g[1:] != g[:-1]) | (batch[order][1:] != batch[order][:-1])
    gidx = torch.cumsum(new_group.long(), 0) - 1  # global group ordinal
    gstart = torch.nonzero(new_group).view(-1)
    member = torch.arange(n, device=rank.device) - gstart[gidx]
    first_of_graph = torch.full((num_graphs,), n, dtype=torch.long, device=rank.device)
    first_of_graph = first_of_graph.scatter_reduce(0, batch[order], gidx, "amin")
    step = gidx - first_of_graph[batch[order]]
    shape = (int(step.max()) + 1 if n else 0, int(member.max()) + 1 if n else 0, num_graphs)
    table = torch.full(shape, -1, dtype=torch.long, device=rank.device)
    table[step, member, batch[order]] = order
    return table


def draw_probs(
    z: Tensor, temperature: float, omit_vec: Tensor, control: DecodeControl, rows: Tensor
) -> Tensor:
    """Sampling probabilities ``[R, 21]`` from tempered logits ``z`` (``logits / T``, or a
    tied group's weighted mean of them) at residues ``rows`` ``[R]``: the original's
    ``softmax(z - o 1e8 + b / T + b_i / T)``, then the PSSM, ``omit_mask`` and
    renormalisation."""
    z = z - omit_vec * 1e8
    if control.bias is not None:
        z = z + control.bias / temperature
    if control.bias_by_res is not None:
        z = z + control.bias_by_res[rows] / temperature
    probs = F.softmax(z, dim=-1)
    if control.pssm_mix is not None:
        w = control.pssm_mix[rows].unsqueeze(-1)
        probs = (1 - w) * probs + w * control.pssm_bias[rows]
    if control.pssm_keep is not None:
        kept = probs * control.pssm_keep[rows] + probs * 0.001
        probs = kept / kept.sum(-1, keepdim=True)
    if control.omit_mask is not None:
        probs = probs * (1.0 - control.omit_mask[rows].to(probs.dtype))
        probs = probs / probs.sum(-1, keepdim=True)
    return probs
