"""The training-speed paths compute the same model: split message weights (default while
training) vs the exact concatenating path, activation checkpointing vs none, and no tensor grows
faster than the number of edges (no L x L anywhere)."""

from __future__ import annotations

import pytest
import torch
from testdata import structure
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.data import Batch

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.model import ProteinMPNN, decoding_rank
from pyg_mpnn.nn.weights import load_model

# real structures in tests/fixtures: one chain with altlocs, two chains, three chains
FILES = ["proteinmpnn__6MRR.pdb", "biotite__5zng.pdb", "proteinmpnn__3HTN.pdb.gz"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def graphs():
    return [to_data(read_structure(structure(f))) for f in FILES]


def _set_split(model, split):
    model.set_modes(split=split)


def _rank(batch, seed=1):
    randn = torch.randn(batch.num_nodes, generator=torch.Generator().manual_seed(seed))
    return decoding_rank(batch.design_mask & batch.mask, randn, batch.batch)


def test_split_path_matches_exact_path_on_released_weights(graphs):
    model = load_model("original:v_48_020").eval()
    batch = Batch.from_data_list(graphs)
    rank = _rank(batch)
    out = {}
    for split in (False, True):
        _set_split(model, split)
        with torch.no_grad():
            out[split] = model(batch, decoding_rank=rank)
    diff = (out[True] - out[False])[batch.mask].abs().max().item()
    assert 0 < diff <= 1e-4, diff  # different rounding, same function
    _set_split(model, None)
    assert not model.encoder_layers[0].training  # default: exact outside training
    with torch.no_grad():
        assert torch.equal(model(batch, decoding_rank=rank), out[False])


def test_split_path_gradients_match_exact_path(graphs):
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, num_encoder_layers=2, num_decoder_layers=2, k_neighbors=16, dropout=0.0
    ).train()
    batch = Batch.from_data_list(graphs[:2])
    rank = _rank(batch)
    grads = {}
    for split in (False, True):
        _set_split(model, split)
        model.zero_grad()
        lp = model(batch, decoding_rank=rank)
        (-lp.gather(1, batch.seq[:, None])[batch.mask].mean()).backward()
        grads[split] = {k: p.grad.clone() for k, p in model.named_parameters()}
    for k, g in grads[False].items():
        assert torch.allclose(grads[True][k], g, rtol=1e-3, atol=1e-6), k


def test_activation_checkpointing_gives_the_same_step(graphs):
    """Same loss and gradients (dropout included: checkpoint replays the RNG state)."""
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32,
        num_encoder_layers=2,
        num_decoder_layers=2,
        k_neighbors=16,
        dropout=0.1,
        augment_eps=0.1,
    ).train()
    batch = Batch.from_data_list(graphs[:2])
    res = {}
    for ckpt in (False, True):
        model.set_modes(activation_checkpointing=ckpt)
        model.zero_grad()
        torch.manual_seed(5)
        lp = model(batch)
        loss = -lp.gather(1, batch.seq[:, None])[batch.mask].mean()
        loss.backward()
        res[ckpt] = (loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()})
    assert res[True][0] == pytest.approx(res[False][0], abs=1e-6)
    for k, g in res[False][1].items():
        assert torch.allclose(res[True][1][k], g, rtol=1e-4, atol=1e-7), k


class _Largest(TorchDispatchMode):
    """Records the largest tensor (elements) any operator returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _complex(graph, copies: int):
    """One graph of ``copies`` translated replicas of ``graph`` (distinct chains)."""
    parts = []
    for c in range(copies):
        g = graph.clone()
        g.coords = g.coords + torch.tensor([60.0 * c, 0.0, 0.0])
        g.chain = g.chain + c * (int(graph.chain.max()) + 1)
        parts.append(g)
    b = Batch.from_data_list(parts)
    del b.batch, b.ptr
    b.residue_idx = 100 * b.chain + torch.cat([torch.arange(p.num_nodes) for p in parts])
    return b


@pytest.mark.parametrize("split", [True, False])
def test_no_tensor_grows_faster_than_the_edges(graphs, split):
    """Doubling a complex doubles the largest tensor of a training step (forward + backward),
    which is per edge; an L x L tensor would quadruple it."""
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=16, num_encoder_layers=1, num_decoder_layers=1, k_neighbors=48
    ).train()
    _set_split(model, split)
    largest = []
    for copies in (4, 8):
        data = _complex(graphs[0], copies)
        with _Largest() as probe:
            lp = model(data)
            (-lp.gather(1, data.seq[:, None])[data.mask].mean()).backward()
        largest.append(probe.largest)
        edges = data.num_nodes * 48
        assert probe.largest <= 416 * edges  # the widest per-edge tensor: 25 x 16 RBF + 16
    assert largest[1] <= 2.1 * largest[0], largest
