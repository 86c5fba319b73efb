"""ProteinMPNN on sparse residue graphs: no padding, no dense masks.

A batch is a PyG ``Data``/``Batch`` from :func:`pyg_mpnn.io.record.to_data` (fields
``coords [N,4,3]``, ``mask``, ``seq``, ``chain``, ``residue_idx``, ``design_mask``,
optionally ``batch`` and a precomputed ``edge_index``). Reading order: featurize -> encode
-> causal context -> decode (teacher forced); sampling (autoregressive) is in
:mod:`pyg_mpnn.nn.sampling`.

The decoding order is a per-node *rank* inside each graph. The causal mask is edge-local:
edge ``j -> i`` carries ``[e_ij, s_j, h_j^(l)]`` if ``rank[j] < rank[i]`` and
``[e_ij, 0, h_j^enc]`` otherwise, so no ``[B, L, L]`` tensor is ever built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.data import Data

from pyg_mpnn.nn import recompute, sampling
from pyg_mpnn.nn.aggregate import EdgeLayout, layout_of_edges, layout_of_plan, pad_layout
from pyg_mpnn.nn.buckets import pad_edges, pad_nodes
from pyg_mpnn.nn.ca_features import CAEdgeFeatures
from pyg_mpnn.nn.decoding import DecodeControl
from pyg_mpnn.nn.features import EdgeFeatures
from pyg_mpnn.nn.graph import knn_edges, planned_knn_edges
from pyg_mpnn.nn.layers import DecoderLayer, EncoderLayer
from pyg_mpnn.nn.modes import Modes
from pyg_mpnn.nn.recompute import recompute_scope

# ``ProteinMPNN(backbone=...)``: the edge featurizer of each kind of model
BACKBONES = {"full": EdgeFeatures, "ca": CAEdgeFeatures}


class Block(NamedTuple):
    """One trackable block of a model, as :meth:`ProteinMPNN.blocks` yields it.

    ``name``: how tracking, diagnose and the fault injector call it (``encoder.1``);
    ``stack``: its group (``embed``, ``encoder``, ``decoder``, ``head``); ``module``: the
    ``nn.Module`` that holds its parameters; ``outputs``: names of the tensors its forward
    returns that are recorded as activations (``("node", "edge")`` for a layer returning
    ``(h_V, h_E)``; ``()``: none); ``taps``: ``(part, submodule)`` pairs, a named sub-module of
    ``module`` whose output is recorded as activation ``part`` too (the pre-LayerNorm terms of a
    residual layer: its branches and summed messages; ``()``: none). Any model can be tracked by
    giving it a ``blocks()`` method that yields these, or plain ``(name, stack, module)``
    triples (outputs ``("node",)``).
    """

    name: str
    stack: str
    module: nn.Module
    outputs: tuple[str, ...] = ("node",)
    taps: tuple[tuple[str, str], ...] = ()


# the pre-LayerNorm terms of the MessagePassing layers (pyg_mpnn.nn.layers): the summed messages
# (before the division by ``scale``) and the residual branches added before norm1/norm2/norm3
NODE_TAPS = (
    ("node_message", "message_sum"),
    ("node_residual", "dropout1"),
    ("node_ffn", "dropout2"),
)
EDGE_TAPS = (("edge_residual", "dropout3"),)


def decoding_rank(
    design: Tensor, randn: Tensor, batch: Tensor | None = None, ptr: Tensor | None = None
) -> Tensor:
    """Rank of each node in its graph's decoding order, from a given ``randn`` ``[N]``.

    Same key as the original, ``argsort((chain_M * mask + 0.0001) * |randn|)``: nodes
    with ``design == False`` (visible or missing atoms) come first, almost always, in
    random order; then designed ones. ``design`` must already include ``mask``. ``ptr``: the
    batch's graph offsets (PyG's ``Batch.ptr``), if known: else counted from ``batch``.
    """
    key = (design.to(randn.dtype) + 0.0001) * randn.abs()
    order = torch.argsort(key, stable=True)
    if batch is not None:
        order = order[torch.argsort(batch[order], stable=True)]
    rank = torch.empty_like(order)
    pos = torch.arange(order.numel(), device=order.device)
    if batch is not None:
        start = (ptr if ptr is not None else _graph_ptr(batch))[:-1]
        pos = pos - start[batch[order]]
    rank[order] = pos
    return rank


def _graph_ptr(batch: Tensor) -> Tensor:
    counts = torch.bincount(batch)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


class ProteinMPNN(nn.Module):
    """ProteinMPNN (Dauparas et al. 2022) with the original's parameter names.

    Args:
        num_letters: output classes (21). hidden_dim: node, edge and sequence width.
        num_encoder_layers / num_decoder_layers: depth. k_neighbors: kNN on CA atoms.
        augment_eps: std of Gaussian noise added to the backbone before the neighbour
            search, whenever ``> 0`` (as the original, also in eval mode).
        dropout: dropout of every residual branch. vocab: sequence embedding size.
        backbone: ``"full"`` (edge features from N, CA, C, O and a virtual CB:
            :class:`~pyg_mpnn.nn.features.EdgeFeatures`) or ``"ca"`` (from CA atoms alone, the
            original's CA-only model: :class:`~pyg_mpnn.nn.ca_features.CAEdgeFeatures`). Which
            residues count as present is the data's ``mask``: build it with
            :func:`pyg_mpnn.io.record.to_data` on records of the same ``backbone``.
        modes (Modes, optional): how it computes (split path, activation checkpointing,
            recomputation, shape buckets, aggregation); read them as ``model.modes`` (or
            ``model.shape_buckets``, ...) and change them with :meth:`set_modes`.
            (default: :obj:`Modes()`)

    A batch from :class:`~pyg_mpnn.data.loader.ProteinLoader` carries a ``knn_plan``
    (:class:`~pyg_mpnn.nn.graph.GraphPlan`): its kNN graph is then searched on the batch's
    device and the forward pass reads nothing back from it (no host synchronisation).
    """

    def __init__(
        self,
        num_letters: int = 21,
        hidden_dim: int = 128,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        k_neighbors: int = 48,
        augment_eps: float = 0.0,
        dropout: float = 0.1,
        vocab: int = 21,
        backbone: str = "full",
        modes: Modes | None = None,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
        self.config = dict(
            num_letters=num_letters,
            hidden_dim=hidden_dim,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            k_neighbors=k_neighbors,
            augment_eps=augment_eps,
            dropout=dropout,
            vocab=vocab,
            backbone=backbone,
        )
        self.hidden_dim, self.k_neighbors, self.augment_eps = hidden_dim, k_neighbors, augment_eps
        self.backbone = backbone
        self.features = BACKBONES[backbone](hidden_dim)
        self.W_e = nn.Linear(hidden_dim, hidden_dim)
        self.W_s = nn.Embedding(vocab, hidden_dim)
        self.encoder_layers = nn.ModuleList(
            [EncoderLayer(hidden_dim, dropout=dropout) for _ in range(num_encoder_layers)]
        )
        self.decoder_layers = nn.ModuleList(
            [
                DecoderLayer(hidden_dim, 3 * hidden_dim, dropout=dropout)
                for _ in range(num_decoder_layers)
            ]
        )
        self.W_out = nn.Linear(hidden_dim, num_letters)
        self.reset_parameters()
        self._modes = Modes()
        self.set_modes(modes or Modes())

    # -- modes ---------------------------------------------------------------------------
    @property
    def modes(self) -> Modes:
        return self._modes

    def set_modes(self, modes: Modes | None = None, **changes) -> Modes:
        """Change how the model computes (:class:`Modes`): a whole ``modes`` and/or single
        fields (``model.set_modes(shape_buckets=8)``). Returns the modes before, so that
        ``old = model.set_modes(...)`` ... ``model.set_modes(old)`` restores them."""
        old = self._modes
        self._modes = dataclasses.replace(modes or old, **changes)
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            layer.split = self._modes.split
        return old

    # read-only: set_modes writes them
    activation_checkpointing = property(lambda self: self._modes.activation_checkpointing)
    recompute_activations = property(lambda self: self._modes.recompute_activations)
    shape_buckets = property(lambda self: self._modes.shape_buckets)
    aggregation = property(lambda self: self._modes.aggregation)

    def reset_parameters(self):
        """Xavier-uniform on every matrix, as the original."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def blocks(self) -> Iterator[Block]:
        """The model's blocks in forward order: ``features``, ``W_e`` and ``W_s`` (stack
        ``embed``), ``encoder.<i>``, ``decoder.<i>``, ``W_out`` (stack ``head``). Every
        parameter belongs to exactly one; modules added later (e.g. an injected fault) do not.
        The MessagePassing layers also name their pre-LayerNorm terms (``taps``)."""
        yield Block("features", "embed", self.features, ())
        yield Block("W_e", "embed", self.W_e, ("edge",))
        yield Block("W_s", "embed", self.W_s, ("node",))
        for i, layer in enumerate(self.encoder_layers):
            yield Block(f"encoder.{i}", "encoder", layer, ("node", "edge"), NODE_TAPS + EDGE_TAPS)
        for i, layer in enumerate(self.decoder_layers):
            yield Block(f"decoder.{i}", "decoder", layer, ("node",), NODE_TAPS)
        yield Block("W_out", "head", self.W_out, ())

    # -- graph and encoder -------------------------------------------------------------
    def build_graph(self, data: Data) -> tuple[Tensor, Tensor]:
        """(possibly noised) coords and the kNN ``edge_index`` (``data.edge_index`` is used
        when present and no noise is added)."""
        coords, edge_index, _ = self._graph(data)
        return coords, edge_index

    def _graph(self, data: Data) -> tuple[Tensor, Tensor, EdgeLayout | None]:
        """:meth:`build_graph` and the edges' layout: from the batch's ``knn_plan`` (no read
        from the device), or read once from the kNN edges (sorted by centre). A bucketed batch
        (``num_padding``) gets its self-loops on the padding residues after the search, and
        they enter the layout (they come last and are sorted by target too)."""
        coords, plan = data.coords, getattr(data, "knn_plan", None)
        if self.augment_eps > 0:
            coords = coords + self.augment_eps * torch.randn_like(coords)
        elif getattr(data, "edge_index", None) is not None:
            return coords, data.edge_index, None
        k, n = self.k_neighbors, data.num_nodes
        if plan is not None:
            edge_index = planned_knn_edges(coords[:, 1], k, plan)
            layout = layout_of_plan(plan, k, n, self.aggregation)
        else:
            edge_index = knn_edges(coords[:, 1], k, getattr(data, "batch", None), data.mask)
            layout = None
        padding = getattr(data, "num_padding", 0)
        if padding:  # a bucketed batch (forward): its edge count rounded up too
            e = edge_index.shape[1]
            edge_index = pad_edges(edge_index, n, padding, self.shape_buckets)
            if layout is not None:
                layout = pad_layout(layout, edge_index[1, e:], padding)
        if layout is None and self.training:
            layout = layout_of_edges(edge_index, n, self.aggregation)
        return coords, edge_index, layout

    def encode(self, data: Data) -> tuple[Tensor, Tensor, Tensor]:
        """Returns node states ``[N, H]``, edge states ``[E, H]`` and ``edge_index``."""
        return self._encode(data)[:3]

    def _encode(self, data: Data) -> tuple[Tensor, Tensor, Tensor, EdgeLayout | None]:
        coords, edge_index, layout = self._graph(data)
        e = self.features(
            coords, edge_index, data.residue_idx, data.chain, getattr(data, "batch", None)
        )
        h_E = recompute.linear(self.W_e, e)  # self.W_e(e), recomputed in backward
        h_V = h_E.new_zeros(data.num_nodes, self.hidden_dim)
        for layer in self.encoder_layers:
            h_V, h_E = self._call(layer, h_V, edge_index, h_E, data.mask, layout=layout)
        return h_V, h_E, edge_index, layout

    def _call(self, layer: nn.Module, *args, **kwargs):
        """``layer(*args, **kwargs)``, under activation checkpointing when enabled and
        gradients are needed (its activations are recomputed in the backward pass)."""
        if self.activation_checkpointing and torch.is_grad_enabled():
            return checkpoint(layer, *args, use_reentrant=False, **kwargs)
        return layer(*args, **kwargs)

    def random_rank(self, data: Data, generator: torch.Generator | None = None) -> Tensor:
        """A random decoding rank from ``torch.randn`` (visible residues first)."""
        randn = torch.randn(data.num_nodes, generator=generator, device=data.coords.device)
        batch, ptr = getattr(data, "batch", None), getattr(data, "ptr", None)
        return decoding_rank(data.design_mask & data.mask, randn, batch, ptr)

    # -- teacher-forced decoder --------------------------------------------------------
    def forward(
        self,
        data: Data,
        decoding_rank: Tensor | None = None,
        encoded: tuple[Tensor, Tensor, Tensor] | None = None,
        seq: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced log-probabilities ``[N, num_letters]`` under ``decoding_rank``
        (random, drawn from the torch RNG, when ``None``). ``encoded``: the output of
        :meth:`encode` for ``data``, to reuse it (e.g. for scoring and sampling). ``seq``:
        the sequence to condition on (default ``data.seq``)."""
        if self.shape_buckets and encoded is None:
            data, n = pad_nodes(data, self.shape_buckets)
            p = data.num_padding
            if decoding_rank is not None:  # padding residues decode after every real one
                decoding_rank = torch.cat([decoding_rank, decoding_rank.new_full((p,), n)])
            if seq is not None:
                seq = torch.cat([seq, data.seq[n:]])
        else:
            n = None
        with recompute_scope(self.training and self.recompute_activations):
            return self._forward(data, decoding_rank, encoded, seq)[:n]

    def _forward(self, data, decoding_rank, encoded, seq) -> Tensor:
        h_enc, h_E, edge_index, layout = self._encode(data) if encoded is None else (*encoded, None)
        rank = self.random_rank(data) if decoding_rank is None else decoding_rank
        src, dst = edge_index
        causal = (rank[src] < rank[dst]).unsqueeze(-1)
        h_S = self.W_s(data.seq if seq is None else seq)
        h = h_enc
        for layer in self.decoder_layers:  # context [e, s_j, h_j] built inside (split W1)
            h = self._call(
                layer,
                h,
                edge_index,
                h_E,
                data.mask,
                causal=causal,
                x_seq=h_S,
                x_enc=h_enc,
                layout=layout,
            )
        return F.log_softmax(self.W_out(h), dim=-1)

    # -- autoregressive sampling -------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        data: Data,
        temperature: float = 0.1,
        decoding_rank: Tensor | None = None,
        generator: torch.Generator | None = None,
        omit: str = "X",
        encoded: tuple[Tensor, Tensor, Tensor] | None = None,
        control: DecodeControl | None = None,
        exact: bool = True,
    ) -> dict:
        """Sample sequences, one decoding step at a time for all graphs of the batch at once:
        :func:`pyg_mpnn.nn.sampling.sample` (its arguments and the returned dict), without
        gradients."""
        return sampling.sample(
            self, data, temperature, decoding_rank, generator, omit, encoded, control, exact
        )
