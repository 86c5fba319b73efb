"""Autoregressive sampling of :class:`~pyg_mpnn.nn.model.ProteinMPNN`, all graphs of a batch at
once (:meth:`ProteinMPNN.sample <pyg_mpnn.nn.model.ProteinMPNN.sample>` calls :func:`sample`).

Step ``t`` decodes the node of rank ``t`` in every graph (with tied residues, the ``t``-th
group). Nodes whose whole prefix is visible get their decoder states from one teacher-forced
pass; every later node is decoded from its ``k`` incoming edges alone, layer by layer, as the
original's ``h_V_stack``. What the steps share is a :class:`SamplingState`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.nn.decoding import DecodeControl, draw_probs, step_table, tied_order
from pyg_mpnn.nn.incremental import IncrementalDecoder
from pyg_mpnn.nn.layers import decoder_context

if TYPE_CHECKING:
    from pyg_mpnn.nn.model import ProteinMPNN


@dataclass
class SamplingState:
    """What the decoding steps of one :func:`sample` call read and write.

    ``seq`` ``[N]``: the sequence so far (native where not drawn yet; written in place);
    ``rank`` ``[N]`` and ``group_rank`` ``[N]`` (tied groups' rank, or ``None``): the decoding
    order; ``h_enc`` ``[N, H]``, ``h_E`` ``[E, H]``, ``edge_index`` ``[2, E]``: the encoder's
    output, edges sorted by centre, ``edge_ptr`` ``[N + 1]`` their CSR offsets; ``mask`` and
    ``design`` ``[N]``: present and designed residues; ``batch`` ``[N]``: graph of each node;
    ``first_design`` ``[B]``: the first designed rank of each graph (earlier nodes come from the
    teacher-forced prefix pass); ``logits`` ``[N, 21]`` and ``stack`` (``1 + layers`` tensors
    ``[N, H]``: encoder then decoder states): the decoded nodes' outputs, written in place.
    """

    seq: Tensor
    rank: Tensor
    group_rank: Tensor | None
    h_enc: Tensor
    h_E: Tensor
    edge_index: Tensor
    edge_ptr: Tensor
    mask: Tensor
    design: Tensor
    batch: Tensor
    first_design: Tensor
    logits: Tensor
    stack: list[Tensor]


def batch_vector(data: Data) -> Tensor:
    """``data.batch``, or zeros (one graph) when the data has none."""
    b = getattr(data, "batch", None)
    return (
        b
        if b is not None
        else torch.zeros(data.num_nodes, dtype=torch.long, device=data.coords.device)
    )


def sample(
    model: ProteinMPNN,
    data: Data,
    temperature: float = 0.1,
    decoding_rank: Tensor | None = None,
    generator: torch.Generator | None = None,
    omit: str = "X",
    encoded: tuple[Tensor, Tensor, Tensor] | None = None,
    control: DecodeControl | None = None,
    exact: bool = True,
) -> dict:
    """Sample sequences, one decoding step at a time for all graphs of the batch at once.

    Step ``t`` handles the node of rank ``t`` in every graph (or, with tied residues in
    ``control``, the ``t``-th group: its members decoded one after the other, their
    tempered logits averaged with the weights, one draw for all, as the original's
    ``tied_sample``). Residues that are not designed keep their native type. Like the original,
    one ``torch.multinomial`` over the ``[B_t, 21]`` probabilities of the valid nodes (groups)
    of step ``t`` is drawn at every step, visible ones included, so with one graph and the same
    seed the draws are the reference's. Letters in ``omit`` get probability 0; ``control`` adds
    bias, per-residue omission and tying (:class:`~pyg_mpnn.nn.decoding.DecodeControl`).
    ``encoded``: the output of ``model.encode(data)``, to reuse it. ``exact=False`` decodes the
    incremental steps with :class:`~pyg_mpnn.nn.incremental.IncrementalDecoder` (split first
    weight, cached node blocks: same function, other rounding, several times fewer operations).

    Returns a dict: ``seq`` ``[N]`` (sampled; native where not designed),
    ``log_probs`` ``[N, 21]`` (untempered log-softmax of the teacher-forced forward on
    ``seq`` in the decoding order; without tying these are the logits of the sampling
    steps themselves), ``probs`` ``[N, 21]`` (the probabilities each designed residue was
    drawn from, after bias, omission and PSSM; zeros elsewhere, as the original's
    ``probs``), ``decoding_rank`` ``[N]`` (after tying), ``score`` ``[B]`` (mean NLL over
    designed valid residues) and ``recovery`` ``[B]``.
    """
    control = control or DecodeControl()
    encoded = model.encode(data) if encoded is None else encoded
    rank = model.random_rank(data, generator) if decoding_rank is None else decoding_rank
    state, table = _start(model, data, encoded, rank, control)
    omit_vec = torch.tensor(
        [float(a in omit) for a in ALPHABET[: model.W_out.out_features]], device=rank.device
    )
    drawn_probs = state.logits.new_zeros(data.num_nodes, state.logits.size(-1))
    decode = (
        (lambda v: decode_nodes(model, v, state)) if exact else IncrementalDecoder(model, state)
    )
    for steps in table:
        found = _step_logits(steps, state, decode, temperature, control)
        if found is None:
            continue
        z, last, done = found
        probs = draw_probs(z[done], temperature, omit_vec, control, last[done])
        draw = torch.multinomial(probs, 1, generator=generator).view(-1)
        _record(steps, done, draw, probs, state, drawn_probs, None if exact else decode)
    out = _result(model, data, encoded, state, control.tied)
    out["probs"] = drawn_probs
    return out


def _start(
    model: ProteinMPNN, data: Data, encoded, rank: Tensor, control: DecodeControl
) -> tuple[SamplingState, Tensor]:
    """The state before the first step (tying applied to ``rank``) and the step table
    (:func:`~pyg_mpnn.nn.decoding.step_table`)."""
    batch = batch_vector(data)
    group, group_rank = torch.arange(data.num_nodes, device=rank.device), None
    if control.tied:
        rank, group, group_rank = tied_order(rank, control.tie_group, batch)
    table = step_table(rank, group, batch)
    return sampling_state(model, data, encoded, rank, group_rank, batch), table


def _step_logits(
    steps: Tensor, state: SamplingState, decode, temperature: float, control: DecodeControl
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Decode the members of one step (``steps`` ``[K, B]``: member ``k`` of each graph's
    group, ``-1`` for none) and sum their tempered (and, tied, weighted) logits per graph:
    ``(z [B, 21], last member [B], graph has a valid member [B])``; ``None`` if no graph has."""
    z, last, done = None, None, None
    size = (steps >= 0).sum(0).clamp(min=1)
    weight = control.tie_weight
    for nodes in steps:
        ok = nodes >= 0
        ok[ok.clone()] = state.mask[nodes[ok]]
        if not bool(ok.any()):
            continue
        cur = nodes[ok]
        todo = cur[state.rank[cur] >= state.first_design[state.batch[cur]]]
        if todo.numel():
            state.logits[todo] = decode(todo)
        zk = state.logits[cur] / temperature
        if control.tied:
            beta = weight[cur].unsqueeze(-1) if weight is not None else 1.0
            zk = beta * zk / size[ok].unsqueeze(-1).to(zk.dtype)
        z, last, done = _accumulate(z, last, done, zk, ok, nodes)
    return None if z is None else (z, last, done)


def _accumulate(z, last, done, zk, ok, nodes):
    """Sum a tied step's member contributions per graph, in member order, as the
    original (``0.0 + z_1 + z_2 + ...``); remember the last member of each group."""
    if z is None:
        z = zk.new_zeros(nodes.numel(), zk.size(-1))
        z[ok] = zk
        return z, nodes.clone(), ok.clone()
    first = ok & ~done
    z[first] = zk[first[ok]]
    again = ok & done
    z[again] = z[again] + zk[again[ok]]
    last = torch.where(ok, nodes, last)
    return z, last, done | ok


def _record(
    steps: Tensor,
    done: Tensor,
    draw: Tensor,
    probs: Tensor,
    state: SamplingState,
    drawn_probs: Tensor,
    incremental: IncrementalDecoder | None,
) -> None:
    """Write one step's draws (one per graph with ``done``) into every member of its group:
    the letter where designed, and the probabilities it was drawn from."""
    full = torch.zeros_like(steps[0])
    full[done] = draw
    full_probs = probs.new_zeros(full.numel(), probs.size(-1))
    full_probs[done] = probs
    seq, design = state.seq, state.design
    for nodes in steps:
        sel = (nodes >= 0) & done
        cur = nodes[sel]
        seq[cur] = torch.where(design[cur], full[sel], seq[cur])
        drawn_probs[cur] = full_probs[sel] * design[cur].unsqueeze(-1)
        if incremental is not None:
            incremental.drawn(cur)


def sampling_state(
    model: ProteinMPNN,
    data: Data,
    encoded,
    rank: Tensor,
    group_rank: Tensor | None,
    batch: Tensor,
) -> SamplingState:
    """Edges grouped by centre (CSR), the first designed rank of each graph, and the
    decoder states of the visible prefixes (one teacher-forced pass)."""
    h_enc, h_E, edge_index = encoded
    n, mask = data.num_nodes, data.mask
    design = data.design_mask & mask
    if not bool((edge_index[1, 1:] >= edge_index[1, :-1]).all()):  # kNN edges already are
        perm = torch.argsort(edge_index[1], stable=True)
        edge_index, h_E = edge_index[:, perm], h_E[perm]
    edge_ptr = torch.cat(
        [edge_index.new_zeros(1), torch.bincount(edge_index[1], minlength=n).cumsum(0)]
    )
    num_graphs = int(batch.max()) + 1 if n else 0
    big = torch.full((num_graphs,), n, dtype=torch.long, device=rank.device)
    state = SamplingState(
        seq=data.seq.clone(),
        rank=rank,
        group_rank=group_rank,
        h_enc=h_enc,
        h_E=h_E,
        edge_index=edge_index,
        edge_ptr=edge_ptr,
        mask=mask,
        design=design,
        batch=batch,
        first_design=big.scatter_reduce(0, batch[design], rank[design], "amin"),
        logits=model.W_out(h_enc.new_zeros(n, model.hidden_dim)),
        stack=[h_enc] + [torch.zeros_like(h_enc) for _ in model.decoder_layers],
    )
    if bool((state.first_design > 0).any()):  # visible prefixes: one teacher-forced pass
        _prefix_pass(model, state)
    return state


def _prefix_pass(model: ProteinMPNN, state: SamplingState) -> None:
    """Decoder states and logits of every node from one teacher-forced pass over all edges
    (right for the nodes before each graph's first designed one)."""
    edge_index, stack = state.edge_index, state.stack
    src, dst = edge_index
    h_S_src = seen_seq(model, state, src, dst)
    causal = (state.rank[src] < state.rank[dst]).unsqueeze(-1)
    for l, layer in enumerate(model.decoder_layers):
        ctx = decoder_context(state.h_E, h_S_src, stack[l][src], state.h_enc[src], causal)
        stack[l + 1] = layer(stack[l], edge_index, ctx, state.mask)
    state.logits = model.W_out(stack[-1])


def seen_seq(model: ProteinMPNN, state: SamplingState, src: Tensor, dst: Tensor) -> Tensor:
    """Sequence embeddings of the edge sources; with tying, zero for a source of the same
    group as the centre (decoded before it but not drawn yet, as in the original)."""
    h_S_src = model.W_s(state.seq[src])
    gr = state.group_rank
    if gr is not None:
        h_S_src = h_S_src * (gr[src] < gr[dst]).unsqueeze(-1).to(h_S_src.dtype)
    return h_S_src


def decode_nodes(model: ProteinMPNN, nodes: Tensor, state: SamplingState) -> Tensor:
    """Decoder states of ``nodes`` (one per graph) from their incoming edges only;
    writes them into the state's ``stack`` and returns their logits."""
    edge_ptr, stack = state.edge_ptr, state.stack
    deg = edge_ptr[nodes + 1] - edge_ptr[nodes]
    local = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), deg)
    first = torch.repeat_interleave(edge_ptr[nodes] - (deg.cumsum(0) - deg), deg)
    eids = first + torch.arange(local.numel(), device=nodes.device)
    src = state.edge_index[0, eids]
    sub_index = torch.stack([src, local])
    causal = (state.rank[src] < state.rank[nodes][local]).unsqueeze(-1)
    e, h_S_src = state.h_E[eids], seen_seq(model, state, src, nodes[local])
    h_enc_src = state.h_enc[src]
    for l, layer in enumerate(model.decoder_layers):
        ctx = decoder_context(e, h_S_src, stack[l][src], h_enc_src, causal)
        stack[l + 1][nodes] = layer((stack[l], stack[l][nodes]), sub_index, ctx, state.mask[nodes])
    return model.W_out(stack[-1][nodes])


def _result(model: ProteinMPNN, data: Data, encoded, state: SamplingState, tied: bool) -> dict:
    """The returned dict, less ``probs``: log-probs, per-graph score and recovery."""
    seq, rank, design, batch = state.seq, state.rank, state.design, state.batch
    if tied:  # sampling-time logits saw tied partners without their letters
        log_probs = model.forward(data, decoding_rank=rank, encoded=encoded, seq=seq)
    else:
        log_probs = F.log_softmax(state.logits, dim=-1)
    nll = -log_probs.gather(1, seq.view(-1, 1)).view(-1)
    w = design.to(nll.dtype)
    num_graphs = int(batch.max()) + 1 if data.num_nodes else 0
    per_graph = lambda v: torch.zeros(num_graphs, device=v.device).index_add_(0, batch, v)
    denom = per_graph(w).clamp(min=1)
    return dict(
        seq=seq,
        log_probs=log_probs,
        decoding_rank=rank,
        score=per_graph(nll * w) / denom,
        recovery=per_graph((seq == data.seq).to(w.dtype) * w) / denom,
    )
