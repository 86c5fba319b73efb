"""Pre-LayerNorm norms: the tracked terms before each layer's LayerNorm (the summed messages and
the residual branches, ``Block.taps``) scale with the messages where the post-LN activations,
RMS ~1 by construction, do not; the hooks change nothing in the model's outputs, record nothing
on steps that are not tracked, and diagnose reads and draws the new parts."""

import math

import pytest
import torch
from torch import nn

from pyg_mpnn.data.default import default_dataset
from pyg_mpnn.diagnose.figures import layer_grid
from pyg_mpnn.diagnose.findings import diagnose
from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.nn import ProteinMPNN
from pyg_mpnn.nn.model import Block
from pyg_mpnn.track.layers import LayerMonitor
from pyg_mpnn.track.tracker import Tracker
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

FACTOR = 8.0
PRE = ("node_message", "node_residual", "node_ffn")


def _step1(out, factor: float) -> dict:
    """Activation RMS at step 1 of a real smoke run (embedded data, one thread) whose
    ``encoder.0`` message and edge-update output weights (``W3``, ``W13``) are multiplied by
    ``factor`` after initialisation: ``{(layer, part): rms}``."""
    torch.set_num_threads(1)
    cfg = load_experiment(
        "smoke",
        [
            "train.max_steps=1",
            "track.layer_every=1",
            "track.aim=false",
            "track.histograms=false",
            "checkpoint.every_steps=null",
            "train.threads=1",
            "train.progress=false",
        ],
    )
    trainer = Trainer(cfg, out)
    enc = trainer.model.encoder_layers[0]
    with torch.no_grad():
        for w in (enc.W3, enc.W13):
            w.weight.mul_(factor)
            w.bias.mul_(factor)
    trainer.fit()
    rs = read_files(out)
    return {
        (r["layer"], r["part"]): r["value"]
        for r in rs.rows
        if r["name"] == "norm" and r["kind"] == "activation" and r["step"] == 1
    }


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    return (
        _step1(tmp_path_factory.mktemp("plain"), 1.0),
        _step1(tmp_path_factory.mktemp("scaled"), FACTOR),
        tmp_path_factory,
    )


def test_pre_ln_norms_scale_with_the_messages_post_ln_ones_do_not(scaled):
    plain, big, _ = scaled
    for part in ("node_message", "node_residual", "edge_residual"):
        # the same batch, dropout masks and inputs: W3/W13 scaled by F scale these exactly by F
        assert big[("encoder.0", part)] / plain[("encoder.0", part)] == pytest.approx(
            FACTOR, rel=1e-3
        ), part
        assert abs(math.log(plain[("encoder.0", part)])) > math.log(1.25), (part, plain)
    for part in ("node", "edge"):  # after LayerNorm: ~1 whatever the scale of what went in
        assert big[("encoder.0", part)] / plain[("encoder.0", part)] == pytest.approx(1, rel=0.1)
        assert plain[("encoder.0", part)] == pytest.approx(1, abs=0.15)
    for part in PRE:  # the decoder has the node terms too
        assert ("decoder.0", part) in plain and plain[("decoder.0", part)] > 0


def test_diagnose_reads_and_draws_the_pre_ln_parts(scaled):
    _, _, factory = scaled
    run = next(p for p in factory.getbasetemp().iterdir() if p.name.startswith("plain"))
    rs = read_files(run)
    assert set(rs.layer_series("activation", part="node_message")) == {"encoder.0", "decoder.0"}
    assert set(rs.layer_series("activation", part="edge_residual")) == {"encoder.0"}
    assert diagnose(rs) is not None  # the checks run over the new parts without error
    fig = layer_grid(rs)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert any("pre-LN" in label for label in labels), labels


def test_taps_leave_outputs_unchanged_and_record_only_when_armed(tmp_path):
    torch.manual_seed(0)
    model = ProteinMPNN(hidden_dim=16, num_encoder_layers=2, num_decoder_layers=1, k_neighbors=8)
    model.train()  # the split path, dropout on: the taps sit on the training path
    data = default_dataset("valid")[0]

    def logits():
        torch.manual_seed(1)
        return model(data)

    before = logits()
    monitor = LayerMonitor(model, Tracker(tmp_path, {}, use_aim=False), every=1, histograms=False)
    assert torch.equal(logits(), before)  # unarmed: nothing recorded, same numbers
    assert monitor.acts == {}
    monitor.arm()
    assert torch.equal(logits(), before)  # armed: the same numbers too
    parts = {(layer, part) for layer, _, part in monitor.acts}
    for layer in ("encoder.0", "encoder.1", "decoder.0"):
        assert {(layer, p) for p in PRE} <= parts
    assert ("encoder.1", "edge_residual") in parts
    monitor.remove()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch, self.norm = nn.Linear(4, 4), nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(x + self.branch(x))


def test_a_tap_that_names_no_submodule_is_an_error(tmp_path):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = Residual()

        def blocks(self):
            yield Block("layer", "body", self.layer, ("node",), (("pre", "branchh"),))

    with pytest.raises(ValueError, match="'layer' taps 'branchh'"):
        LayerMonitor(Model(), Tracker(tmp_path, {}, use_aim=False))
