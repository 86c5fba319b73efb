"""CA-only models end to end: data with CA traces, training, fine-tuning from ``ca:`` weights,
evaluation, export and diagnosis. CA traces are made here from real fixtures by dropping every
atom but CA (:func:`testdata.ca_trace`); the models are tiny, or the released CA weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_tiny import SMALL, TINY_MODEL, small_structures
from testdata import ca_trace, structure

from pyg_mpnn import evaluate as evaluate_cli
from pyg_mpnn import export as export_cli
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.prepare import main as prepare_main
from pyg_mpnn.diagnose.__main__ import main as diagnose_main
from pyg_mpnn.evaluate import evaluate
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.reference import reference_model
from pyg_mpnn.nn.weights import load_model
from pyg_mpnn.train.config import ConfigError, explicit_keys, load_experiment
from pyg_mpnn.train.finetune import resolve_init
from pyg_mpnn.train.trainer import Trainer

QUIET = ["track.aim=false", "train.progress=false", "train.threads=1"]


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    """A folder of CA traces of the twelve small training structures."""
    out = tmp_path_factory.mktemp("ca_traces")
    for name, path in zip(SMALL, small_structures()):
        ca_trace(path, out / f"{name}_ca.pdb")
    return out


def test_prepare_keeps_ca_traces_with_keep_ca_only(tmp_path, traces, capsys):
    full = structure("mdanalysistests__1eteA.pdb.gz")
    sources = [str(traces / "1ahsA_ca.pdb"), str(traces / "1bvyF_ca.pdb"), str(full)]
    assert prepare_main([*sources, "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 1 and summary["skipped"] == {"no complete backbone": 2}
    out = tmp_path / "ca"
    assert prepare_main([*sources, "--out", str(out), "--no-progress", "--keep-ca-only"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 3
    for backbone, traced in (("ca", True), ("full", False)):
        ds = ProteinDataset(out, backbone=backbone)
        masks = {str(ds.names[i]): ds[i].mask for i in range(len(ds))}
        trace = masks["1ahsA_ca"]
        assert trace.tolist() == [traced] * len(trace)  # every residue has its CA, no N, C, O
        assert bool(masks["mdanalysistests__1eteA"].all())  # a full backbone counts for both


@pytest.fixture(scope="module")
def ca_run(tmp_path_factory, traces):
    """``--exp ca_smoke`` on the CA traces (a folder of sources: prepared for the CA model)."""
    out = tmp_path_factory.mktemp("ca_run")
    cfg = load_experiment(
        "ca_smoke",
        TINY_MODEL
        + QUIET
        + [f"data.path={traces}", "train.max_steps=4", "checkpoint.every_steps=2"],
    )
    assert cfg.model.backbone == "ca"
    with pytest.MonkeyPatch.context() as mp:  # the prepared sources: not in the repo's cache
        mp.setenv("PYG_MPNN_CACHE", str(tmp_path_factory.mktemp("cache")))
        trainer = Trainer(cfg, out)
    trainer.fit()
    return trainer, out


def test_ca_model_trains_on_ca_traces(ca_run):
    trainer, out = ca_run
    assert trainer.model.backbone == "ca" and trainer.step == 4
    assert len(ProteinDataset(trainer.data.root)) == len(SMALL)  # every trace kept
    graph = trainer.data.train[0]
    assert bool(graph.mask.all()) and graph.coords[:, 0].abs().sum() == 0  # CA, no N
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) > 4
    ckpt = torch.load(out / "checkpoints" / "best.pt", weights_only=False)
    assert ckpt["config"]["backbone"] == "ca"


def test_ca_run_evaluates_exports_and_diagnoses(ca_run, traces, tmp_path, capsys):
    _, out = ca_run
    best = str(out / "checkpoints" / "best.pt")
    trace = str(traces / "1eteA_ca.pdb")
    assert evaluate_cli.main(["--weights", best, "--data", trace, "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["residues"] > 100
    exported = tmp_path / "ca.pt"
    assert export_cli.main([best, "--out", str(exported)]) == 0
    ref = reference_model(str(exported))  # the original's CA model, strict load
    assert type(ref.features).__name__ == "CA_ProteinFeatures"
    probe = ["--jacobian-checkpoints", "1", "--substitutions", "2", "--probe-length", "40"]
    assert diagnose_main([str(out), "--no-aim", *probe]) == 0
    assert (out / "report.md").exists() and list((out / "jacobian").glob("step_*.npz"))


def test_finetune_from_ca_weights(tmp_path):
    overrides = ["init=ca:v_48_020", *QUIET, "data.max_tokens=300", "data.max_length=300"]
    cfg = load_experiment("finetune", [*overrides, "train.max_steps=1"])
    trainer = Trainer(cfg, tmp_path / "ft")
    assert cfg.model.backbone == "ca" and trainer.model.backbone == "ca"
    assert cfg.model.augment_eps == pytest.approx(0.2)  # the checkpoint's training noise
    released = load_model("ca:v_48_020").state_dict()
    assert all(torch.equal(v, released[k]) for k, v in trainer.model.state_dict().items())
    trainer.fit()
    assert trainer.step == 1
    changed = trainer.model.state_dict()["W_out.weight"]
    assert not torch.equal(changed, released["W_out.weight"])
    explicit = [*overrides, "model.backbone=full"]
    with pytest.raises(ConfigError, match="backbone"):
        resolve_init(load_experiment("finetune", explicit), explicit_keys("finetune", explicit))


def test_evaluate_with_ca_weights_counts_residues_with_ca(tmp_path, capsys):
    """The same protocol as for full-backbone weights, with masks from CA atoms: a residue
    with CA but no N, C or O is scored; the CA trace scores as the full structure."""
    path = structure("proteinmpnn__6MRR.pdb")
    rec = read_structure(path)
    rec.coords = rec.coords.copy()
    rec.coords[5, 0] = np.nan  # N missing
    rec.coords[9, 1] = np.nan  # CA missing
    n = rec.num_residues
    ca, full = load_model("ca:v_48_020"), load_model("original:v_48_020")
    assert evaluate(ca, [rec], progress=False)["residues"] == n - 1
    assert evaluate(full, [rec], progress=False)["residues"] == n - 2
    trace = ca_trace(path, tmp_path / "6MRR_ca.pdb")
    results = []
    for data in (path, trace):
        args = ["--weights", "ca:v_48_020", "--data", str(data), "--json", "--no-progress"]
        assert evaluate_cli.main(args) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1] and results[0]["residues"] == n


def test_jsonl_ca_trace_reads_and_evaluates(tmp_path, capsys):
    """A JSONL line whose coords hold CA alone is a CA trace; other missing atoms stay an
    error."""
    rec = read_structure(structure("proteinmpnn__6MRR.pdb"))
    ca = [[float(v) for v in xyz] for xyz in rec.coords[:, 1]]
    line = {"name": "6MRR_ca", "seq": rec.seq, "coords": {"CA": ca}}
    path = tmp_path / "trace.jsonl"
    path.write_text(
        json.dumps(line)
        + "\n"
        + json.dumps(dict(line, name="bad", coords={"N": ca, "CA": ca}))
        + "\n"
    )
    args = ["--weights", "ca:v_48_020", "--data", str(path), "--json", "--no-progress"]
    assert evaluate_cli.main(args) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["residues"] == rec.num_residues
    assert "bad" in cap.err and "lacks atom(s) ['C', 'O']" in cap.err
