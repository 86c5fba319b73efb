"""Recomputing cheap activations in backward (pyg_mpnn/nn/recompute.py, on by default while
training) changes nothing but memory: the same loss and bit-identical gradients as keeping every
saved tensor, on a real structure, in fp32 and bf16, with dropout and backbone noise; and a
forward keeps fewer bytes for backward, measured with saved_tensors_hooks against the path that
keeps everything."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from testdata import structure

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn import recompute
from pyg_mpnn.nn.model import ProteinMPNN


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def graph():
    return to_data(read_structure(structure("proteinmpnn__3HTN.pdb.gz")))


def _step(model, data, recompute_on: bool, bf16: bool = False):
    """Loss, gradients and saved bytes of one seeded training step."""
    model.set_modes(recompute_activations=recompute_on)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # same backbone noise, decoding order and dropout masks
    with recompute.count_saved() as saved, torch.autocast("cpu", enabled=bf16):
        lp = model(data)
        loss = -lp.float().gather(1, data.seq[:, None])[data.mask].mean()
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    return loss.detach(), grads, saved.bytes


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_recomputing_gives_bit_identical_gradients(graph, bf16):
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, num_encoder_layers=2, num_decoder_layers=2, k_neighbors=24,
        augment_eps=0.2, dropout=0.1,
    ).train()  # fmt: skip
    loss_keep, grads_keep, bytes_keep = _step(model, graph, False, bf16)
    loss_rc, grads_rc, bytes_rc = _step(model, graph, True, bf16)
    torch.testing.assert_close(loss_rc, loss_keep, rtol=0, atol=0)
    for name, g in grads_keep.items():
        torch.testing.assert_close(grads_rc[name], g, rtol=0, atol=0, msg=name)
    assert bytes_rc < bytes_keep


def test_saved_bytes_per_residue_go_down(graph):
    """The base model (width 128, k = 48): what one training forward keeps for backward, per
    residue, against the same step keeping everything; most of it is per-edge tensors."""
    torch.manual_seed(0)
    model = ProteinMPNN(augment_eps=0.2, dropout=0.1).train()
    per_residue = {}
    for on in (False, True):
        model.set_modes(recompute_activations=on)
        torch.manual_seed(1)
        with recompute.count_saved() as saved:
            model(graph)
        per_residue[on] = saved.bytes / graph.num_nodes
    # keeping everything: ~46 [E, H] fp32 tensors per edge-set; recomputing: ~23 (nn/recompute.py)
    assert per_residue[True] < 0.6 * per_residue[False], per_residue


def test_dropout_draws_as_torch_does():
    """Same random draws and values as F.dropout (training, CPU), and the same gradient; a
    forward hook (the tracking taps) sees its output."""
    x = torch.randn(300, 40, requires_grad=True)
    drop = recompute.Dropout(0.1).train()
    seen = []
    drop.register_forward_hook(lambda m, i, o: seen.append(o))
    torch.manual_seed(3)
    ref = F.dropout(x, 0.1, training=True)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.manual_seed(3)
    with recompute.recompute_scope():
        out = drop(x)
    (g_out,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(out, ref) and torch.equal(g_out, g_ref) and seen[0] is out
    assert torch.equal(drop.eval()(x), x)


def test_marks_are_ignored_outside_a_scope_and_without_grad():
    x = torch.randn(10, 8, requires_grad=True)
    assert recompute._scope is None
    with torch.no_grad(), recompute.recompute_scope() as scope:
        assert scope is None
    y = recompute.activation(torch.nn.GELU(), x)
    torch.testing.assert_close(y, F.gelu(x), rtol=0, atol=0)
