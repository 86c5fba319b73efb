"""ProteinMPNN's encoder and decoder layers as PyG ``MessagePassing`` operators.

Parameter names equal the original's ``EncLayer`` / ``DecLayer`` (``W1``..``W3``,
``W11``..``W13``, ``norm1``..``norm3``, ``dense.W_in`` / ``dense.W_out``), so a released
``state_dict`` maps onto them key for key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import PairTensor

from pyg_mpnn.nn.aggregate import EdgeLayout, sum_by_target
from pyg_mpnn.nn.recompute import Dropout, activation, layer_norm


class PositionWiseFeedForward(nn.Module):
    r""":math:`\mathrm{FFN}(\mathbf{x}) = \mathbf{W}_{out}\,\mathrm{GELU}(\mathbf{W}_{in}
    \mathbf{x})`, hidden size ``num_ff``."""

    def __init__(self, num_hidden: int, num_ff: int):
        super().__init__()
        self.W_in = nn.Linear(num_hidden, num_ff)
        self.W_out = nn.Linear(num_ff, num_hidden)
        self.act = nn.GELU()

    def reset_parameters(self):
        self.W_in.reset_parameters()
        self.W_out.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.W_out(activation(self.act, self.W_in(x)))


class _OriginalOrderSum:
    """Mixin: sum messages per target in the original's floating-point order.

    Used as is by the exact path (``split=False``, the default outside training); the split
    path sums its per-edge hidden activations with it too (see :class:`EncoderLayer`).

    The original sums a dense ``[B, L, K, H]`` message tensor over ``K`` with
    ``torch.sum``; a scatter-add rounds differently (up to ~1e-4 in final log-probs).
    When targets have near-uniform in-degree (kNN graphs), messages are laid out as
    ``[N, K_max, H]`` (zero-padded, in edge order per target) and summed over ``K``: the
    same result, bit for bit, and no slower. Other graphs fall back to the scatter sum.
    """

    dense_sum: bool = True

    def aggregate(
        self, inputs: Tensor, index: Tensor, ptr: Tensor | None = None, dim_size: int | None = None
    ) -> Tensor:
        n = int(dim_size) if dim_size is not None else int(index.max()) + 1
        if self.dense_sum and inputs.dim() == 2 and index.numel() > 0:
            deg = torch.bincount(index, minlength=n)
            k = int(deg.max())
            if n * k <= 2 * index.numel() + n:
                if not bool((index[1:] >= index[:-1]).all()):
                    perm = torch.argsort(index, stable=True)
                    index, inputs = index[perm], inputs[perm]
                if n * k == index.numel():  # every target has k edges: a view, no copy
                    return inputs.view(n, k, inputs.size(-1)).sum(1)
                start = deg.cumsum(0) - deg
                slot = torch.arange(index.numel(), device=index.device) - start[index]
                dense = inputs.new_zeros(n, k, inputs.size(-1))
                dense[index, slot] = inputs
                return dense.sum(1)
        return super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size)


class _NodeUpdate:
    r"""Mixin: the node update both layers share, from the summed messages
    :math:`\Delta\mathbf{h}_i = \sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}`.

    .. math::
        \tilde{\mathbf{h}}_i &= \mathrm{LN}_1\big(\mathbf{h}_i + \mathrm{Drop}(
            \Delta\mathbf{h}_i / s)\big)

        \mathbf{h}'_i &= \mathrm{LN}_2\big(\tilde{\mathbf{h}}_i + \mathrm{Drop}(
            \mathrm{FFN}(\tilde{\mathbf{h}}_i))\big)

    then :math:`\mathbf{h}'_i = 0` where ``mask`` is ``False``, as the original. The layer
    holds ``message_sum`` (a hook point: its output is :math:`\Delta\mathbf{h}`), ``scale``,
    ``norm1``, ``norm2``, ``dropout1``, ``dropout2`` and ``dense`` (the FFN).

    Args:
        x (Tensor): node states :math:`\mathbf{h}` of the targets.
        dh (Tensor): their summed messages :math:`\Delta\mathbf{h}`.
        mask (Tensor, optional): present targets. (default: :obj:`None`: all)

    Shapes:
        - **input:** x :math:`(|\mathcal{V}_t|, F)`, dh :math:`(|\mathcal{V}_t|, F)`,
          mask :math:`(|\mathcal{V}_t|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, F)`
    """

    def _add_update_modules(self, h: int) -> None:
        """The modules the update adds after the layer's own norms and dropouts (registered
        last, so that parameters keep the original's order)."""
        self.message_sum = nn.Identity()  # a hook point: the summed messages, before 1/scale
        self.act = nn.GELU()
        self.dense = PositionWiseFeedForward(h, 4 * h)

    def node_update(self, x: Tensor, dh: Tensor, mask: Tensor | None = None) -> Tensor:
        dh = self.message_sum(dh)
        h = layer_norm(self.norm1, x + self.dropout1(dh / self.scale))
        h = layer_norm(self.norm2, h + self.dropout2(self.dense(h)))
        if mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        return h


def _mlp3(w1: nn.Linear, w2: nn.Linear, w3: nn.Linear, act: nn.Module, h: Tensor) -> Tensor:
    return w3(activation(act, w2(activation(act, w1(h)))))


def _mlp2(w2: nn.Linear, w3: nn.Linear, act: nn.Module, pre: Tensor) -> Tensor:
    """The rest of a message MLP from the first layer's pre-activation."""
    return w3(activation(act, w2(activation(act, pre))))


def _sum_then_last(
    layer: MessagePassing,
    w2: nn.Linear,
    w3: nn.Linear,
    act: nn.Module,
    pre: Tensor,
    dst: Tensor,
    n: int,
    layout: EdgeLayout | None = None,
) -> Tensor:
    """``sum_j W3 act(W2 act(pre_ij))`` over the edges into each target, computed as
    ``W3 (sum_j act(W2 act(pre_ij))) + deg_i b3``: ``W3`` is linear, so it is applied once per
    node instead of once per edge (same value, another rounding). With the batch's ``layout``
    (edges sorted by target) the sum reads nothing from the device
    (:func:`~pyg_mpnn.nn.aggregate.sum_by_target`)."""
    g = act(w2(activation(act, pre)))  # g is only summed: nothing keeps it
    if layout is not None and (layer.dense_sum or layout.mode != "dense"):
        summed, deg = sum_by_target(g, dst, layout), layout.deg
    else:
        summed, deg = layer.aggregate(g, dst, dim_size=n), torch.bincount(dst, minlength=n)
    deg = deg.to(summed.dtype).unsqueeze(-1)
    out = torch.nn.functional.linear(summed, w3.weight)
    return out + deg * w3.bias.to(out.dtype) if w3.bias is not None else out


def _cols(w: nn.Linear, start: int, stop: int) -> Tensor:
    """Columns ``[start, stop)`` of a Linear's weight: the block acting on that input part."""
    return w.weight[:, start:stop]


def _split_pre(
    w1: nn.Linear,
    h: int,
    e: int,
    x_dst: Tensor,
    x_src: Tensor,
    edge_attr: Tensor,
    dst: Tensor,
    src: Tensor,
) -> Tensor:
    """``w1([x_dst[dst] || edge_attr || x_src[src]])`` without the concatenation: the two node
    blocks are applied once per node and gathered, the edge block once per edge."""
    a = x_dst @ _cols(w1, 0, h).t()
    b = x_src @ _cols(w1, h + e, 2 * h + e).t()
    pre = torch.nn.functional.linear(edge_attr, _cols(w1, h, h + e), w1.bias)
    return pre + a.index_select(0, dst) + b.index_select(0, src)


def decoder_context(
    e: Tensor, s_src: Tensor, h_src: Tensor, h_enc_src: Tensor, causal: Tensor
) -> Tensor:
    """Per-edge decoder input: ``[e, s_j, h_j]`` on causal edges, ``[e, 0, h_j^enc]``
    otherwise (``causal`` is ``[E, 1]`` bool; the ``*_src`` tensors are per edge)."""
    return torch.cat([e, s_src * causal, torch.where(causal, h_src, h_enc_src)], -1)


class EncoderLayer(_NodeUpdate, _OriginalOrderSum, MessagePassing):
    r"""The ProteinMPNN encoder layer: a node update followed by an edge update.

    .. math::
        \mathbf{m}_{ij} &= \mathbf{W}_3\,\sigma\big(\mathbf{W}_2\,\sigma(\mathbf{W}_1
            [\mathbf{h}_i \,\|\, \mathbf{e}_{ij} \,\|\, \mathbf{h}_j])\big)

        \tilde{\mathbf{h}}_i &= \mathrm{LN}_1\Big(\mathbf{h}_i + \mathrm{Drop}\big(
            \tfrac{1}{s}\textstyle\sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\big)\Big)

        \mathbf{h}'_i &= \mathrm{LN}_2\big(\tilde{\mathbf{h}}_i + \mathrm{Drop}(
            \mathrm{FFN}(\tilde{\mathbf{h}}_i))\big)

        \mathbf{e}'_{ij} &= \mathrm{LN}_3\Big(\mathbf{e}_{ij} + \mathrm{Drop}\big(
            \mathbf{W}_{13}\,\sigma(\mathbf{W}_{12}\,\sigma(\mathbf{W}_{11}
            [\mathbf{h}'_i \,\|\, \mathbf{e}_{ij} \,\|\, \mathbf{h}'_j]))\big)\Big)

    with :math:`\sigma` = GELU, :math:`s` = ``scale``, :math:`\mathcal{N}(i)` the sources
    of the edges into :math:`i` (``edge_index[0]`` for ``edge_index[1] == i``) and
    :math:`\mathrm{FFN}` a two-layer GELU network of width ``4 * hidden_channels``.
    Nodes with ``mask == False`` are set to zero after the node update, as in the original.

    Two computations of the same function, chosen by ``split`` (``None``, the default: split
    while ``training``, exact otherwise; or ``True`` / ``False``):

    * exact (``split=False``): ``[h_i || e_ij || h_j]`` concatenated per edge, message MLP per
      edge, messages summed in the original's order -- log-probs bit-identical to the original;
    * split (``split=True``, training): :math:`\mathbf{W}_1` (and :math:`\mathbf{W}_{11}`) split
      at run time into column blocks (the same parameters, so ``state_dict`` keys are unchanged):
      :math:`\mathbf{W}_1^{(i)}\mathbf{h}` and :math:`\mathbf{W}_1^{(j)}\mathbf{h}` once per
      node, gathered per edge, plus :math:`\mathbf{W}_1^{(e)}\mathbf{e}_{ij}` per edge (no
      concatenation); and, :math:`\mathbf{W}_3` being linear, the sum over neighbours is taken
      before it: :math:`\sum_j \mathbf{m}_{ij} = \mathbf{W}_3 \sum_j \sigma(\cdot) +
      \deg(i)\,\mathbf{b}_3`, so :math:`\mathbf{W}_3` runs per node. Same values up to
      rounding (final log-probs within 1e-4 of the exact path; docs/performance.md).

    Args:
        hidden_channels (int): size of node states :math:`\mathbf{h}`.
        edge_channels (int, optional): size of edge states :math:`\mathbf{e}`
            (default: :obj:`hidden_channels`)
        dropout (float, optional): dropout on the three residual branches.
            (default: :obj:`0.1`)
        scale (float, optional): divisor of the summed messages. (default: :obj:`30.0`)
        **kwargs (optional): additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, F_e)`,
          mask :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F)`, edge features
          :math:`(|\mathcal{E}|, F_e)`
    """

    split: bool | None = None

    def __init__(
        self,
        hidden_channels: int,
        edge_channels: int | None = None,
        dropout: float = 0.1,
        scale: float = 30.0,
        **kwargs,
    ):
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        h = hidden_channels
        e = hidden_channels if edge_channels is None else edge_channels
        self.hidden_channels, self.edge_channels, self.scale = h, e, scale
        self.W1, self.W2, self.W3 = nn.Linear(2 * h + e, h), nn.Linear(h, h), nn.Linear(h, h)
        self.W11, self.W12, self.W13 = nn.Linear(2 * h + e, e), nn.Linear(e, e), nn.Linear(e, e)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(h), nn.LayerNorm(h), nn.LayerNorm(e)
        self.dropout1, self.dropout2, self.dropout3 = (Dropout(dropout) for _ in range(3))
        self._add_update_modules(h)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for m in (
            self.W1,
            self.W2,
            self.W3,
            self.W11,
            self.W12,
            self.W13,
            self.norm1,
            self.norm2,
            self.norm3,
            self.dense,
        ):
            m.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        mask: Tensor | None = None,
        layout: EdgeLayout | None = None,
    ) -> tuple[Tensor, Tensor]:
        h, e = self.hidden_channels, self.edge_channels
        src, dst = edge_index
        split = self.training if self.split is None else self.split
        if split:
            pre = _split_pre(self.W1, h, e, x, x, edge_attr, dst, src)
            dh = _sum_then_last(self, self.W2, self.W3, self.act, pre, dst, x.size(0), layout)
        else:
            dh = self.propagate(edge_index, x=x, edge_attr=edge_attr)
        x = self.node_update(x, dh, mask)
        if split:
            pre = _split_pre(self.W11, h, e, x, x, edge_attr, dst, src)
            de = _mlp2(self.W12, self.W13, self.act, pre)
        else:
            de = self.edge_updater(edge_index, x=x, edge_attr=edge_attr)
        edge_attr = layer_norm(self.norm3, edge_attr + self.dropout3(de))
        return x, edge_attr

    def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W1, self.W2, self.W3, self.act, torch.cat([x_i, edge_attr, x_j], -1))

    def edge_update(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W11, self.W12, self.W13, self.act, torch.cat([x_i, edge_attr, x_j], -1))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.hidden_channels}, "
            f"edge_channels={self.edge_channels}, scale={self.scale})"
        )


class DecoderLayer(_NodeUpdate, _OriginalOrderSum, MessagePassing):
    r"""The ProteinMPNN decoder layer: a node update from per-edge context vectors.

    .. math::
        \mathbf{m}_{ij} &= \mathbf{W}_3\,\sigma\big(\mathbf{W}_2\,\sigma(\mathbf{W}_1
            [\mathbf{h}_i \,\|\, \mathbf{c}_{ij}])\big)

        \tilde{\mathbf{h}}_i &= \mathrm{LN}_1\Big(\mathbf{h}_i + \mathrm{Drop}\big(
            \tfrac{1}{s}\textstyle\sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\big)\Big)

        \mathbf{h}'_i &= \mathrm{LN}_2\big(\tilde{\mathbf{h}}_i + \mathrm{Drop}(
            \mathrm{FFN}(\tilde{\mathbf{h}}_i))\big)

    The context :math:`\mathbf{c}_{ij}` (``edge_attr``) carries everything the centre may
    know about the source :math:`j`. In ProteinMPNN it is causal and edge-local:
    :math:`[\mathbf{e}_{ij} \,\|\, \mathbf{s}_j \,\|\, \mathbf{h}^{(l)}_j]` if :math:`j`
    is decoded before :math:`i`, else :math:`[\mathbf{e}_{ij} \,\|\, \mathbf{0} \,\|\,
    \mathbf{h}^{enc}_j]` (built by :class:`~pyg_mpnn.nn.model.ProteinMPNN`). The layer reads
    no source node state itself, so ``x`` may be a pair ``(x_src, x_dst)`` to update only
    the targets ``x_dst`` (incremental decoding): the output then has ``x_dst``'s rows.

    Given ``causal`` (``[E, 1]`` bool), ``x_seq`` and ``x_enc`` (source-node sequence
    embeddings and encoder states), ``edge_attr`` is :math:`\mathbf{e}_{ij}` alone and the layer
    forms that context itself. With ``split`` (default: while ``training``) it never
    materialises it: :math:`\mathbf{W}_1` is split into its four column blocks (the ``h_i``,
    ``s_j`` and ``h_j`` blocks applied once per node, then gathered), and :math:`\mathbf{W}_3`
    is applied after the neighbour sum, as in :class:`EncoderLayer`. Without ``split`` the
    context is concatenated per edge (the original's op order, bit-identical).

    Args:
        hidden_channels (int): size of node states :math:`\mathbf{h}`.
        context_channels (int, optional): size of :math:`\mathbf{c}_{ij}`.
            (default: :obj:`3 * hidden_channels`)
        dropout (float, optional): dropout on the two residual branches.
            (default: :obj:`0.1`)
        scale (float, optional): divisor of the summed messages. (default: :obj:`30.0`)
        **kwargs (optional): additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge context :math:`(|\mathcal{E}|, F_c)`,
          mask :math:`(|\mathcal{V}_t|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}_t|, F)`
    """

    split: bool | None = None

    def __init__(
        self,
        hidden_channels: int,
        context_channels: int | None = None,
        dropout: float = 0.1,
        scale: float = 30.0,
        **kwargs,
    ):
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        h = hidden_channels
        c = 3 * h if context_channels is None else context_channels
        self.hidden_channels, self.context_channels, self.scale = h, c, scale
        self.W1, self.W2, self.W3 = nn.Linear(h + c, h), nn.Linear(h, h), nn.Linear(h, h)
        self.norm1, self.norm2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self._add_update_modules(h)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for m in (self.W1, self.W2, self.W3, self.norm1, self.norm2, self.dense):
            m.reset_parameters()

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        mask: Tensor | None = None,
        causal: Tensor | None = None,
        x_seq: Tensor | None = None,
        x_enc: Tensor | None = None,
        layout: EdgeLayout | None = None,
    ) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        if causal is None:
            dh = self.propagate(
                edge_index, x=x, edge_attr=edge_attr, size=(x[0].size(0), x[1].size(0))
            )
        elif not (self.training if self.split is None else self.split):  # exact op order
            src = edge_index[0]
            ctx = decoder_context(edge_attr, x_seq[src], x[0][src], x_enc[src], causal)
            dh = self.propagate(edge_index, x=x, edge_attr=ctx, size=(x[0].size(0), x[1].size(0)))
        else:
            pre = self._causal_pre(x, edge_index, edge_attr, causal, x_seq, x_enc)
            n = x[1].size(0)
            dh = _sum_then_last(self, self.W2, self.W3, self.act, pre, edge_index[1], n, layout)
        return self.node_update(x[1], dh, mask)

    def message(self, x_i: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W1, self.W2, self.W3, self.act, torch.cat([x_i, edge_attr], -1))

    def _causal_pre(
        self,
        x: PairTensor,
        edge_index: Tensor,
        e: Tensor,
        causal: Tensor,
        x_seq: Tensor,
        x_enc: Tensor,
    ) -> Tensor:
        """``W1 [h_i || e_ij || causal * s_j || where(causal, h_j, h_enc_j)]`` with ``W1`` split
        into its four column blocks: node blocks once per node, then gathered per edge."""
        h, ce = self.hidden_channels, e.size(-1)
        src, dst = edge_index
        a = x[1] @ _cols(self.W1, 0, h).t()
        w_s, w_h = _cols(self.W1, h + ce, 2 * h + ce), _cols(self.W1, 2 * h + ce, 3 * h + ce)
        seen = x_seq @ w_s.t() + x[0] @ w_h.t()
        unseen = x_enc @ w_h.t()
        pre = torch.nn.functional.linear(e, _cols(self.W1, h, h + ce), self.W1.bias)
        pre = pre + a.index_select(0, dst)
        # where(causal, seen[src], unseen[src]) as one gather from [seen; unseen]: the same
        # values, and backward scatters the gradient once instead of building two [E, H] ones
        rows = torch.where(causal.view(-1), src, src + seen.size(0))
        return pre + torch.cat([seen, unseen]).index_select(0, rows)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.hidden_channels}, "
            f"context_channels={self.context_channels}, scale={self.scale})"
        )
