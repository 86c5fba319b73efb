"""Short in-process runs of the real model: precision, accumulation, bad input, profiling,
and the scale sweep."""

import json
import math
import shutil

import pytest
from _train_tiny import TINY_MODEL

from pyg_mpnn.track.aimio import open_runs
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


def _cfg(data, *extra):
    return load_experiment("smoke", TINY_MODEL + [f"data.path={data}", "data.max_tokens=300",
                                                  "track.aim=false"] + list(extra))


def test_bf16_autocast_and_accumulation(tiny_dataset, tmp_path):
    t = Trainer(_cfg(tiny_dataset, "train.precision=bf16", "optim.accumulate=2",
                     "train.max_steps=2", "optim.grad_clip=0.5"), tmp_path)
    result = t.fit()
    assert t.step == 2 and t.batch_in_epoch == 4  # two micro-batches per optimizer step
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["valid_loss"])
    assert (tmp_path / "log.txt").read_text().startswith("epoch: 1, step: 2, time: ")


def test_unreadable_shard_is_skipped_not_fatal(tmp_path):
    from _train_tiny import make_tiny_dataset
    ds = make_tiny_dataset(tmp_path / "ds", shard_size=1)
    from pyg_mpnn.data.dataset import ProteinDataset
    train = ProteinDataset(ds, "train")
    shard = train.shard_path(0)  # a training protein's shard
    shard.write_bytes(shard.read_bytes()[:100])  # truncated on disk
    t = Trainer(_cfg(ds, "data.max_tokens=150", "train.max_steps=12", "train.epochs=1"),
                tmp_path / "run")
    result = t.fit()
    assert t.faults.counts["skipped_record"] == 1  # one protein a batch here, seen once
    assert "truncated shard" in (tmp_path / "run" / "faults.jsonl").read_text()
    assert t.step == len(train) - 1 and math.isfinite(result["train_loss"])


def test_profile_writes_trace_table_and_breakdown(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, "profile.enabled=true", "profile.wait=1", "profile.warmup=1",
               "profile.active=2", "train.max_steps=null", "track.aim=true")
    Trainer(cfg, tmp_path).fit()
    prof = tmp_path / "profile"
    trace = json.loads((prof / "trace.json").read_text())
    assert any(e.get("name") == "forward" for e in trace["traceEvents"])
    assert "aten::" in (prof / "key_averages.txt").read_text()
    b = json.loads((prof / "breakdown.json").read_text())
    assert b["steps"] == 2
    assert set(b["phases_s"]) == {"data_wait", "h2d", "forward", "backward", "optimizer",
                                  "tracking"}
    assert b["phases_s"]["forward"] > 0 and b["phases_s"]["backward"] > 0
    assert 0.9 < sum(b["phases_frac"].values()) <= 1.0 + 1e-6
    run = open_runs(tmp_path / "aim")[0]
    assert run.get("profile")["steps"] == 2


def test_scale_sweep_table_plot_and_aim_runs(tiny_dataset, tmp_path):
    from pyg_mpnn.train.sweep import COLUMNS, run_sweep
    cfg = load_experiment("scale_sweep", [f"data.path={tiny_dataset}", "data.max_tokens=300",
                                          "sweep.sizes=[[8,1],[16,2]]", "sweep.token_budget=700",
                                          "model.k_neighbors=8", "train.progress=false",
                                          "train.threads=1"])
    rows = run_sweep(cfg, tmp_path)
    assert [r["size"] for r in rows] == ["h8-d1", "h16-d2"]
    assert rows[0]["params"] < rows[1]["params"]
    assert rows[0]["flops_per_residue"] < rows[1]["flops_per_residue"]
    for r in rows:
        assert r["residues_trained"] >= 700 and r["peak_memory_mb"] > 0
        assert math.isfinite(r["valid_loss"]) and 0 <= r["valid_acc"] <= 1
    header = (tmp_path / "scale_sweep.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    assert (tmp_path / "scale_sweep.md").read_text().count("\n") == 4
    assert (tmp_path / "scale_sweep.png").read_bytes()[:4] == b"\x89PNG"
    runs = open_runs(tmp_path / "aim")
    assert sorted(r.name for r in runs) == ["h16-d2", "h8-d1"]
    assert {r.experiment for r in runs} == {"scale_sweep"}
