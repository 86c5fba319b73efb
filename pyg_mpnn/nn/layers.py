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
        return self.W_out(self.act(self.W_in(x)))


class _OriginalOrderSum:
    """Mixin: sum messages per target in the original's floating-point order.

    The original sums a dense ``[B, L, K, H]`` message tensor over ``K`` with
    ``torch.sum``; a scatter-add rounds differently (up to ~1e-4 in final log-probs).
    When targets have near-uniform in-degree (kNN graphs), messages are laid out as
    ``[N, K_max, H]`` (zero-padded, in edge order per target) and summed over ``K``: the
    same result, bit for bit, and no slower. Other graphs fall back to the scatter sum.
    """

    dense_sum: bool = True

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: Tensor | None = None,
                  dim_size: int | None = None) -> Tensor:
        n = int(dim_size) if dim_size is not None else int(index.max()) + 1
        if self.dense_sum and inputs.dim() == 2 and index.numel() > 0:
            deg = torch.bincount(index, minlength=n)
            k = int(deg.max())
            if n * k <= 2 * index.numel() + n:
                if not bool((index[1:] >= index[:-1]).all()):
                    perm = torch.argsort(index, stable=True)
                    index, inputs = index[perm], inputs[perm]
                start = deg.cumsum(0) - deg
                slot = torch.arange(index.numel(), device=index.device) - start[index]
                dense = inputs.new_zeros(n, k, inputs.size(-1))
                dense[index, slot] = inputs
                return dense.sum(1)
        return super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size)


def _mlp3(w1: nn.Linear, w2: nn.Linear, w3: nn.Linear, act: nn.Module, h: Tensor) -> Tensor:
    return w3(act(w2(act(w1(h)))))


class EncoderLayer(_OriginalOrderSum, MessagePassing):
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

    def __init__(self, hidden_channels: int, edge_channels: int | None = None,
                 dropout: float = 0.1, scale: float = 30.0, **kwargs):
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        h = hidden_channels
        e = hidden_channels if edge_channels is None else edge_channels
        self.hidden_channels, self.edge_channels, self.scale = h, e, scale
        self.W1, self.W2, self.W3 = nn.Linear(2 * h + e, h), nn.Linear(h, h), nn.Linear(h, h)
        self.W11, self.W12, self.W13 = nn.Linear(2 * h + e, e), nn.Linear(e, e), nn.Linear(e, e)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(h), nn.LayerNorm(h), nn.LayerNorm(e)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.act = nn.GELU()
        self.dense = PositionWiseFeedForward(h, 4 * h)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for m in (self.W1, self.W2, self.W3, self.W11, self.W12, self.W13, self.norm1,
                  self.norm2, self.norm3, self.dense):
            m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dh = self.propagate(edge_index, x=x, edge_attr=edge_attr) / self.scale
        x = self.norm1(x + self.dropout1(dh))
        x = self.norm2(x + self.dropout2(self.dense(x)))
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        de = self.edge_updater(edge_index, x=x, edge_attr=edge_attr)
        edge_attr = self.norm3(edge_attr + self.dropout3(de))
        return x, edge_attr

    def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W1, self.W2, self.W3, self.act, torch.cat([x_i, edge_attr, x_j], -1))

    def edge_update(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W11, self.W12, self.W13, self.act,
                     torch.cat([x_i, edge_attr, x_j], -1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.hidden_channels}, "
                f"edge_channels={self.edge_channels}, scale={self.scale})")


class DecoderLayer(_OriginalOrderSum, MessagePassing):
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

    def __init__(self, hidden_channels: int, context_channels: int | None = None,
                 dropout: float = 0.1, scale: float = 30.0, **kwargs):
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        h = hidden_channels
        c = 3 * h if context_channels is None else context_channels
        self.hidden_channels, self.context_channels, self.scale = h, c, scale
        self.W1, self.W2, self.W3 = nn.Linear(h + c, h), nn.Linear(h, h), nn.Linear(h, h)
        self.norm1, self.norm2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.act = nn.GELU()
        self.dense = PositionWiseFeedForward(h, 4 * h)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for m in (self.W1, self.W2, self.W3, self.norm1, self.norm2, self.dense):
            m.reset_parameters()

    def forward(self, x: Tensor | PairTensor, edge_index: Tensor, edge_attr: Tensor,
                mask: Tensor | None = None) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        dh = self.propagate(edge_index, x=x, edge_attr=edge_attr,
                            size=(x[0].size(0), x[1].size(0))) / self.scale
        h = self.norm1(x[1] + self.dropout1(dh))
        h = self.norm2(h + self.dropout2(self.dense(h)))
        if mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        return h

    def message(self, x_i: Tensor, edge_attr: Tensor) -> Tensor:
        return _mlp3(self.W1, self.W2, self.W3, self.act, torch.cat([x_i, edge_attr], -1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.hidden_channels}, "
                f"context_channels={self.context_channels}, scale={self.scale})")
