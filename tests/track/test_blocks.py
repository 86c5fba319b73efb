"""Tracking knows blocks, not ProteinMPNN: a small PyG model that is not ProteinMPNN (two GCNConv
layers and a linear head) names its blocks with ``blocks()`` and gets per-block weight,
gradient, activation and update tracking into a real Aim repo and metrics.csv; ProteinMPNN's
blocks cover each of its parameters once, under the names the tracking files have always used.
"""

import csv
import json
import math

import torch
from aim.storage.context import Context
from torch import nn
from torch_geometric.nn import GCNConv

from pyg_mpnn.nn import ProteinMPNN
from pyg_mpnn.track.aimio import open_runs
from pyg_mpnn.track.layers import LayerMonitor, parameter_blocks
from pyg_mpnn.track.tracker import Tracker


class TwoGCN(nn.Module):
    """Node classification: GCNConv -> ReLU -> GCNConv -> ReLU -> Linear."""

    def __init__(self, in_channels: int, hidden: int, classes: int):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden)
        self.conv2 = GCNConv(hidden, hidden)
        self.head = nn.Linear(hidden, classes)

    def blocks(self):
        yield "gcn.0", "gcn", self.conv1  # plain triples: activations recorded as "node"
        yield "gcn.1", "gcn", self.conv2
        yield "head", "head", self.head

    def forward(self, x, edge_index):
        x = self.conv1(x, edge_index).relu()
        return self.head(self.conv2(x, edge_index).relu())


def two_communities(n: int = 40, seed: int = 0):
    """Two dense communities, sparse links between them; features = noisy community label."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) >= n // 2).long()
    same = y.view(-1, 1) == y.view(1, -1)
    p = torch.where(same, 0.3, 0.02)
    adj = torch.rand(n, n, generator=g) < p
    adj = (adj | adj.T) & ~torch.eye(n, dtype=torch.bool)
    x = torch.nn.functional.one_hot(y, 2).float() + 0.8 * torch.randn(n, 2, generator=g)
    return x, adj.nonzero().T.contiguous(), y


BLOCKS = {"gcn.0": "gcn", "gcn.1": "gcn", "head": "head"}


def test_a_non_proteinmpnn_pyg_model_is_tracked_per_block(tmp_path):
    torch.manual_seed(0)
    x, edge_index, y = two_communities()
    model = TwoGCN(2, 8, 2)
    tracker = Tracker(tmp_path, {"model": "TwoGCN"}, experiment="gcn")
    monitor = LayerMonitor(model, tracker, every=2, bins=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = 6
    for step in range(1, steps + 1):
        due = monitor.due(step)
        monitor.arm(due)
        loss = nn.functional.cross_entropy(model(x, edge_index), y)
        opt.zero_grad()
        loss.backward()
        tracker.track(loss.item(), "loss", step, subset="train")
        if due:
            monitor.capture(step)
        opt.step()
        if due:
            monitor.after_step(step)
    monitor.remove()
    tracker.close()

    tracked = [1, 2, 4, 6]
    (run,) = open_runs(tmp_path / "aim")
    series = {
        (m.name, tuple(sorted(m.context.to_dict().items()))): list(m.data.items_list()[0])
        for m in run.metrics()
    }
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for layer, stack in BLOCKS.items():
        for kind, part in (("weight", ""), ("gradient", ""), ("activation", "node")):
            ctx = {"layer": layer, "stack": stack, "kind": kind, **({"part": part} if part else {})}
            assert series[("norm", tuple(sorted(ctx.items())))] == tracked, (layer, kind)
            values = [
                float(r["value"])
                for r in rows
                if r["name"] == "norm" and all(r[k] == v for k, v in ctx.items())
            ]
            assert len(values) == len(tracked) and all(v > 0 and math.isfinite(v) for v in values)
        ratio = (
            "update_ratio",
            tuple(sorted({"layer": layer, "stack": stack, "kind": "update"}.items())),
        )
        assert series[ratio] == tracked
        gradient = Context({"layer": layer, "stack": stack, "kind": "gradient"})
        assert run.get_distribution_sequence("hist", gradient) is not None
    layers = {r["layer"] for r in rows if r["layer"]}
    assert layers == set(BLOCKS)  # no parameter outside the blocks, nothing parsed from names
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["blocks"] == [[k, v] for k, v in BLOCKS.items()]
    assert run["blocks"] == info["blocks"]


def test_a_model_without_blocks_gets_one_block_per_child():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    groups = parameter_blocks(model)
    assert {k: (s, [n for n, _ in ps]) for k, (s, ps) in groups.items()} == {
        "0": ("body", ["0.weight", "0.bias"]),
        "2": ("body", ["2.weight", "2.bias"]),
    }


def test_proteinmpnn_blocks_cover_every_parameter_once_under_the_tracked_names():
    model = ProteinMPNN(hidden_dim=16, num_encoder_layers=2, num_decoder_layers=1, k_neighbors=8)
    names = [(b.name, b.stack) for b in model.blocks()]
    assert names == [
        ("features", "embed"),
        ("W_e", "embed"),
        ("W_s", "embed"),
        ("encoder.0", "encoder"),
        ("encoder.1", "encoder"),
        ("decoder.0", "decoder"),
        ("W_out", "head"),
    ]
    held = [id(p) for b in model.blocks() for p in b.module.parameters()]
    assert sorted(held) == sorted(id(p) for p in model.parameters())
    groups = parameter_blocks(model)
    assert groups["encoder.1"][1][0][0].startswith("encoder_layers.1.")
    model.extra = nn.Linear(2, 2)  # added later (as the noise fault does): its own block
    assert parameter_blocks(model)["extra"][0] == "other"
