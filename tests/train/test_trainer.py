"""Short in-process runs of the real model: precision, accumulation, bad input, profiling,
and the scale sweep."""

import json
import math

import pytest
from _train_tiny import TINY_MODEL

from pyg_mpnn.track.aimio import open_runs
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


def _cfg(data, *extra):
    return load_experiment(
        "smoke",
        TINY_MODEL + [f"data.path={data}", "data.max_tokens=300", "track.aim=false"] + list(extra),
    )


def test_bf16_autocast_and_accumulation(tiny_dataset, tmp_path):
    t = Trainer(
        _cfg(
            tiny_dataset,
            "train.precision=bf16",
            "optim.accumulate=2",
            "train.max_steps=2",
            "optim.grad_clip=0.5",
        ),
        tmp_path,
    )
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
    t = Trainer(
        _cfg(ds, "data.max_tokens=150", "train.max_steps=12", "train.epochs=1"), tmp_path / "run"
    )
    result = t.fit()
    assert t.faults.counts["skipped_record"] == 1  # one protein a batch here, seen once
    assert "truncated shard" in (tmp_path / "run" / "faults.jsonl").read_text()
    assert t.step == len(train) - 1 and math.isfinite(result["train_loss"])


def test_profile_writes_trace_table_and_breakdown(tiny_dataset, tmp_path):
    cfg = _cfg(
        tiny_dataset,
        "profile.enabled=true",
        "profile.wait=1",
        "profile.warmup=1",
        "profile.active=2",
        "train.max_steps=null",
        "track.aim=true",
    )
    Trainer(cfg, tmp_path).fit()
    prof = tmp_path / "profile"
    trace = json.loads((prof / "trace.json").read_text())
    assert any(e.get("name") == "forward" for e in trace["traceEvents"])
    assert "aten::" in (prof / "key_averages.txt").read_text()
    b = json.loads((prof / "breakdown.json").read_text())
    assert b["steps"] == 2
    assert set(b["phases_s"]) == {
        "data_wait",
        "h2d",
        "forward",
        "backward",
        "optimizer",
        "tracking",
    }
    assert b["phases_s"]["forward"] > 0 and b["phases_s"]["backward"] > 0
    assert 0.9 < sum(b["phases_frac"].values()) <= 1.0 + 1e-6
    run = open_runs(tmp_path / "aim")[0]
    assert run.get("profile")["steps"] == 2


SWEEP = [
    "data.max_tokens=300",
    "sweep.sizes=[[8,1],[16,2]]",
    "model.k_neighbors=8",
    "train.progress=false",
    "train.threads=1",
    "sweep.replicate=[{size: [8, 1], seed: 1}, {size: [16, 2], seed: 1}]",
    "sweep.curve_flops=[0.25]",
    "sweep.overhead_s=0.1",
    "track.layer_every=0",
]


def _sweep(tiny_dataset, tmp_path, extra):
    from pyg_mpnn.sweep import run_sweep

    cfg = load_experiment("scale_sweep", [f"data.path={tiny_dataset}", *SWEEP, *extra])
    rows = run_sweep(cfg, tmp_path)
    return rows, json.loads((tmp_path / "scale_sweep.json").read_text())


def _assert_equal_compute(rows, budgets):
    assert sorted({r["budget_flops"] for r in rows}) == budgets
    for r in rows:  # every size spent its budget, and not more than one batch beyond it
        assert r["reached"]
        assert r["budget_flops"] <= r["residues"] * r["flops_per_residue"]
        assert (r["residues"] - 300) * r["flops_per_residue"] < r["budget_flops"]


def test_scale_sweep_iso_flop_table_plot_and_aim_runs(tiny_dataset, tmp_path):
    from pyg_mpnn.sweep.report import COLUMNS

    rows, doc = _sweep(
        tiny_dataset, tmp_path, ["sweep.flop_budgets=[2.0e+8, 4.0e+8]", "sweep.max_minutes=null"]
    )
    assert [(r["size"], r["budget_flops"]) for r in rows] == [
        (s, b) for s in ("h8-d1", "h8-d1-s1", "h16-d2", "h16-d2-s1") for b in (2e8, 4e8)
    ]  # each replicate right after its size
    _assert_equal_compute(rows, [2e8, 4e8])
    small = [r for r in rows if r["size"] == "h8-d1"]
    big = [r for r in rows if r["size"] == "h16-d2"]
    assert small[0]["flops_per_residue"] < big[0]["flops_per_residue"]
    assert small[0]["residues"] > big[0]["residues"]  # equal FLOPs: the small size sees more
    for r in rows:
        assert math.isfinite(r["valid_loss"]) and 0 <= r["valid_acc"] <= 1
    s = doc["summary"]
    assert [e["compute_optimal"] for e in s["budgets"]] == [
        min(
            (r for r in rows if r["budget_flops"] == b and not r["size"].endswith("-s1")),
            key=lambda r: r["valid_loss"],
        )["size"]
        for b in (2e8, 4e8)
    ]
    spread = s["replicates"][0]["spread_loss"]
    assert set(map(float, spread)) == {2e8, 4e8}
    assert all(
        v == abs(a["valid_loss"] - b["valid_loss"])
        for v, a, b in zip(spread.values(), small, [r for r in rows if r["size"] == "h8-d1-s1"])
    )
    assert [r["size"] for r in s["replicates"]] == ["h8-d1", "h16-d2"]
    for e in s["budgets"]:  # the larger of the two spreads sets the ratio and the ties
        largest = max(r["spread_loss"][str(e["budget_flops"])] for r in s["replicates"])
        assert e["seed_spread_loss"] == largest
        assert e["gap_over_spread"] == pytest.approx(e["size_gap_loss"] / largest)
        other = ({"h8-d1", "h16-d2"} - {e["compute_optimal"]}).pop()
        assert e["ties_with_optimal"] == ([other] if e["size_gap_loss"] <= largest else [])
        assert e["bracketed"] is False  # two sizes bracket nothing
    assert s["optimal_size_law"] is None
    runs = {r["size"]: r for r in doc["runs"]}
    assert len(runs["h8-d1"]["history"]) == 3  # the curve point + the two budgets
    header = (tmp_path / "scale_sweep.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    md = (tmp_path / "scale_sweep.md").read_text()
    assert "compute-optimal size" in md and "seed spread of h8-d1" in md
    assert (tmp_path / "scale_sweep.png").read_bytes()[:4] == b"\x89PNG"
    aim_runs = open_runs(tmp_path / "aim")
    assert sorted(r.name for r in aim_runs) == ["h16-d2", "h16-d2-s1", "h8-d1", "h8-d1-s1"]
    assert {r.experiment for r in aim_runs} == {"scale_sweep"}
    _assert_docs_render(tmp_path, rows)


def _assert_docs_render(sweep_dir, rows):
    """The docs' tables of ``make run`` render from the report as benchmarks.fresh_clone keeps
    it: one row per size and budget, one per budget with the replicate's spread."""
    from benchmarks.fresh_clone import sweep_report
    from tools.docrender.sweep import render_scale_sweep_summary, render_scale_sweep_table

    results = sweep_dir / "results"
    results.mkdir()
    report = sweep_report(sweep_dir / "scale_sweep.json")
    assert all("history" not in r for r in report["runs"])
    (results / "fresh_clone.json").write_text(json.dumps({"scale_sweep": report}))
    lines = render_scale_sweep_table(results, "fresh_clone.json").splitlines()
    assert len(lines) == 2 + len(rows)
    assert [ln.split(" | ")[0].lstrip("| ") for ln in lines[2:]] == [r["size"] for r in rows]
    assert sum("**" in ln for ln in lines) == 2  # one best perplexity per budget
    summary = render_scale_sweep_summary(results, "fresh_clone.json").splitlines()
    assert len(summary) == 2 + 2 and "seed spread of h16-d2" in summary[0]
    assert [ln.split(" | ")[3] for ln in summary[2:]] == ["no", "no"]  # two sizes bracket nothing


def test_scale_sweep_time_cap_shrinks_every_budget_alike(tiny_dataset, tmp_path, capsys):
    """A cap that the asked budgets would pass never trains sizes on unequal budgets: every
    budget shrinks by one factor, and the sweep says so."""
    rows, doc = _sweep(
        tiny_dataset, tmp_path, ["sweep.flop_budgets=[1.0e+11, 2.0e+11]", "sweep.max_minutes=0.05"]
    )
    assert 0 < doc["budget_scale"] < 1
    assert "EVERY budget is scaled" in capsys.readouterr().err
    budgets = doc["budgets_flops"]
    assert budgets == pytest.approx([1e11 * doc["budget_scale"], 2e11 * doc["budget_scale"]])
    _assert_equal_compute(rows, budgets)
    assert "budgets scaled by" in (tmp_path / "scale_sweep.md").read_text()
