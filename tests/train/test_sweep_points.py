"""Ablation points with seeds, FLOP-matched widths and budgets in supervised residues
(pyg_mpnn/sweep/points.py): the arithmetic, real FLOP counts on tiny models, and tiny
real runs through studies/ablation.py and the docs' renderers."""

import json
import math

import pytest
from _train_tiny import TINY_MODEL
from hypothesis import given
from hypothesis import strategies as st

from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.sweep.points import match_flops, points_of
from pyg_mpnn.sweep.run import first_batches, flops_of_config
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.data import RunData
from studies import ablation
from tools import render_docs

TINY = TINY_MODEL + [
    "data.max_tokens=300",
    "data.valid_max_proteins=2",
    "sweep.max_minutes=null",
    "schedule.warmup_steps=5",
    "track.layer_every=0",
    "track.aim=false",
]


# -- the arithmetic ----------------------------------------------------------------------------
@given(st.floats(1e2, 1e5), st.floats(0, 1e4), st.integers(2, 100), st.integers(1, 300))
def test_solve_increasing_finds_the_nearest_integer(a, b, answer, start):
    def f(x):
        return a * x * x + b * x

    target = f(answer) * 1.004  # just above f(answer): answer is the nearest in ratio
    x, fx, tried = sweep_plan.solve_increasing(f, target, start)
    assert x == answer and fx == f(answer)
    assert min(abs(f(n) / target - 1) for n in range(1, 500)) == pytest.approx(abs(fx / target - 1))
    assert len(tried) <= 20  # the sqrt guess is exact for a quadratic: few evaluations


def test_solve_increasing_stops_at_lo_when_the_target_is_too_small():
    x, fx, _ = sweep_plan.solve_increasing(lambda v: 100.0 * v, 5.0, start=40, lo=1)
    assert (x, fx) == (1, 100.0)


def test_seed_summary_spread_and_comparison():
    rows = [
        {"point": "a", "seed": 0, "valid_loss": 2.0, "valid_ppl": math.exp(2.0)},
        {"point": "a", "seed": 1, "valid_loss": 2.2, "valid_ppl": math.exp(2.2)},
        {"point": "b", "seed": 0, "valid_loss": 2.1, "valid_ppl": math.exp(2.1)},
        {"point": "b", "seed": 1, "valid_loss": 2.5, "valid_ppl": math.exp(2.5)},
        {"point": "c", "seed": 0, "valid_loss": 3.0, "valid_ppl": math.exp(3.0)},
    ]
    s = sweep_plan.seed_summary(rows, ("valid_loss", "valid_ppl"))
    a = s["points"]["a"]["valid_loss"]
    assert (a["mean"], a["min"], a["max"], a["n"]) == (pytest.approx(2.1), 2.0, 2.2, 2)
    assert a["sd"] == pytest.approx(math.sqrt(0.02))  # sample sd of (2.0, 2.2)
    assert s["points"]["c"]["valid_loss"]["sd"] == 0.0
    c = s["comparison"]
    assert c["best"] == "a"
    b, cc = c["others"]
    assert b["point"] == "b" and b["loss_gap"] == pytest.approx(0.2)
    assert b["ranges_overlap"] and (b["best_wins"], b["common_seeds"]) == (2, 2)
    assert not cc["ranges_overlap"] and (cc["best_wins"], cc["common_seeds"]) == (1, 1)


# -- FLOP matching with real counts ------------------------------------------------------------
def test_matched_points_cost_the_target_flops_per_residue(tiny_dataset):
    cfg = load_experiment(
        "enc_dec_isoflop",
        TINY + [f"data.path={tiny_dataset}", "model.hidden_dim=48", "sweep.match_tolerance=0.03"],
    )
    data = RunData(cfg.data, cfg.seed, progress=False)
    batch = first_batches(data, 1)[0]
    raw = points_of(cfg.sweep)

    def measured(sets):
        items = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
        return flops_of_config(cfg.override(items + ["sweep.points=null"]), batch)

    unmatched = [measured(sets) for _, sets in raw]
    assert max(unmatched) / min(unmatched) > 1.1  # at one width the splits differ in cost
    points, m = match_flops(cfg, raw, batch)
    assert m["target"] == pytest.approx(unmatched[1])  # e3+d3 at hidden_dim 48
    widths = [sets["model.hidden_dim"] for _, sets in points]
    assert widths[1] == 48 and widths[0] > 48 > widths[2]  # encoder layers cost more
    for name, sets in points:
        assert measured(sets) / m["target"] == pytest.approx(1, abs=0.03), name
        assert m["points"][name]["ratio"] == pytest.approx(measured(sets) / m["target"])


def test_a_tolerance_no_width_meets_is_an_error(tiny_dataset):
    cfg = load_experiment(
        "enc_dec_isoflop",
        TINY + [f"data.path={tiny_dataset}", "model.hidden_dim=48", "sweep.match_tolerance=1e-6"],
    )
    batch = first_batches(RunData(cfg.data, cfg.seed, progress=False), 1)[0]
    with pytest.raises(ValueError, match="sweep.match_tolerance"):
        match_flops(cfg, points_of(cfg.sweep), batch)


def test_seeds_and_matching_need_the_points_form(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="sweep.seeds"):  # refused with the config
        load_experiment("scale_sweep", [f"data.path={tiny_dataset}", "sweep.seeds=[0, 1]"])


# -- tiny real runs --------------------------------------------------------------------------------
def _ablation(exp, tiny_dataset, tmp_path, sets):
    out, result = tmp_path / "run", tmp_path / "result.json"
    argv = ["--exp", exp, "--data", str(tiny_dataset), "--out", str(out), "--json", str(result)]
    argv += ["--figure", str(tmp_path / "figure.png")]
    for item in TINY + sets:
        argv += ["--set", item]
    assert ablation.main(argv) == 0
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    return out, json.loads(result.read_text())


def test_supervised_budget_stops_crops_at_the_supervised_residues(tiny_dataset, tmp_path):
    budget = 300
    crop = "{name: spatial_crop, context_radius: 20, inner_radius: 12}"
    sets = [
        f"sweep.token_budget={budget}",
        f"sweep.points=[{{name: whole, set: {{data.transform: null}}}}, "
        f"{{name: crop, set: {{data.transform: {crop}}}}}]",
        "sweep.seeds=[0, 1]",
    ]
    out, doc = _ablation("spatial_crop_supervised", tiny_dataset, tmp_path, sets)
    rows = doc["rows"]
    assert [(r["point"], r["seed"]) for r in rows] == [
        ("whole", 0),
        ("whole", 1),
        ("crop", 0),
        ("crop", 1),
    ]
    for r in rows:  # stopped at the first step that reached the supervised budget
        assert budget <= r["supervised_trained"] < budget + 300
    for r in rows[2:]:  # a crop computes its outer shell too
        assert r["residues_trained"] > 1.5 * r["supervised_trained"]
    for r in rows[:2]:
        assert r["residues_trained"] < 1.2 * r["supervised_trained"]
    # the seeds are distinct runs: their own folders, initial weights and data order
    assert rows[0]["valid_loss"] != rows[1]["valid_loss"]
    assert (out / "whole-s0").is_dir() and (out / "crop-s1").is_dir()
    assert doc["summary"]["points"]["crop"]["valid_ppl"]["n"] == 2
    assert doc["machine"]["threads"] == 1 and doc["command"].startswith(
        "python -m studies.ablation "
    )
    # the computed-residue budget (the default unit) stops the crop far below it in supervision
    _, control = _ablation(
        "spatial_crop_supervised",
        tiny_dataset,
        tmp_path / "control",
        sets[:2] + ["sweep.seeds=[0]", "sweep.budget_unit=residues"],
    )
    assert control["rows"][1]["supervised_trained"] < budget
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps(doc))
    text = render_docs.RENDERERS["crop_supervised_table"](tmp_path / "results", "x.json")
    assert text.count("\n") == 3 and "| crop |" in text
    render_docs.load.cache_clear()


def test_iso_flop_run_matches_widths_and_trains_equal_flops(tiny_dataset, tmp_path):
    sets = ["model.hidden_dim=32", "sweep.flop_budget=2.0e+9", "sweep.seeds=[0, 1]"]
    sets += ["sweep.match_tolerance=0.05"]
    _, doc = _ablation("enc_dec_isoflop", tiny_dataset, tmp_path, sets)
    m, rows = doc["matching"], doc["rows"]
    assert len(rows) == 6 and len({(r["point"], r["seed"]) for r in rows}) == 6
    for r in rows:
        assert r["model.hidden_dim"] == m["points"][r["point"]]["value"]
        # each seed's first batch differs a little from the matching batch: a few % at most
        assert r["flops_per_residue"] / m["target"] == pytest.approx(1, abs=0.08)
        spent = r["residues_trained"] * r["flops_per_residue"]
        assert 2.0e9 <= spent < 2.0e9 + 300 * r["flops_per_residue"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps(doc))
    text = render_docs.RENDERERS["enc_dec_isoflop_table"](tmp_path / "results", "x.json")
    assert text.count("\n") == 4 and "± " in text
    assert "lowest mean validation loss" in render_docs.RENDERERS["ablation_comparison"](
        tmp_path / "results", "x.json"
    )
    render_docs.load.cache_clear()
