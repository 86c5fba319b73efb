"""The layers are ordinary PyG operators: a small unrelated model built around EncoderLayer
(node regression on a random geometric graph) trains."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn
from torch_geometric.data import Data

from pyg_mpnn.nn import EncoderLayer, knn_edges


class ToyRegressor(nn.Module):
    def __init__(self, in_dim=3, hidden=32, layers=2):
        super().__init__()
        self.node_in = nn.Linear(in_dim, hidden)
        self.edge_in = nn.Linear(1, hidden)
        self.convs = nn.ModuleList(
            [EncoderLayer(hidden, dropout=0.0, scale=8.0) for _ in range(layers)]
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, data):
        src, dst = data.edge_index
        x = self.node_in(data.x)
        e = self.edge_in((data.pos[src] - data.pos[dst]).norm(dim=-1, keepdim=True))
        for conv in self.convs:
            x, e = conv(x, data.edge_index, e)
        return self.head(x).squeeze(-1)


def _toy_graph(n=200, k=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g)
    x = torch.randn(n, 3, generator=g)
    edge_index = knn_edges(pos, k=k + 1)  # [0] = neighbour, [1] = centre (self included)
    # target: mean of the neighbours' first feature, plus a nonlinear own term
    src, dst = edge_index
    agg = torch.zeros(n).index_add_(0, dst, x[src, 0]) / (k + 1)
    y = agg + torch.sin(2 * x[:, 1])
    return Data(x=x, pos=pos, edge_index=edge_index, y=y)


def test_encoder_layer_trains_in_an_unrelated_model():
    torch.manual_seed(0)
    data = _toy_graph()
    model = ToyRegressor()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(data), data.y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    # the first layer's node and edge paths both feed the loss (the last layer's edge
    # update is unused by this model)
    for name, p in model.convs[0].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_encoder_layer_is_permutation_equivariant():
    torch.manual_seed(1)
    data = _toy_graph(n=50, k=6, seed=3)
    layer = EncoderLayer(3, edge_channels=4, dropout=0.0).eval()
    e = torch.randn(data.edge_index.size(1), 4)
    perm = torch.randperm(50)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(50)
    x1, e1 = layer(data.x, data.edge_index, e)
    x2, e2 = layer(data.x[perm], inv[data.edge_index], e)
    assert torch.allclose(x2, x1[perm], atol=1e-5) and torch.allclose(e2, e1, atol=1e-5)


def test_the_readme_reuse_snippet_runs():
    """The README's snippet imports from the public API and runs as printed."""
    root = Path(__file__).resolve().parents[2]
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    (snippet,) = [b for b in blocks if "EncoderLayer" in b]
    assert "from pyg_mpnn.nn import" in snippet and "from pyg_mpnn.io import" in snippet
    env = {}
    cwd = os.getcwd()
    try:
        os.chdir(root)
        exec(compile(snippet, "README.md", "exec"), env)
    finally:
        os.chdir(cwd)
    assert env["h_V"].shape == (env["data"].num_nodes, 128)
    assert env["h_E"].shape == (env["edge_index"].size(1), 128)
