"""Ablations: sweep points that override arbitrary config keys, with seeds, FLOP matching and
budgets in supervised residues.

``sweep.points`` is a list of ``{name: ..., set: {dotted.key: value, ...}}``, each point a run of
the experiment's config with those keys overridden (any key of base.yaml:
``model.k_neighbors``, ``model.num_encoder_layers``, ``data.transform``...). Every point gets the
same budget: ``sweep.token_budget`` residues (``sweep.budget_unit: residues``, every residue
computed) or residues that carry loss (``budget_unit: supervised``: a spatial crop's inner
sphere, so crops and whole graphs see the same supervision), or ``sweep.flop_budget`` training
FLOPs (a point's residue budget is it divided by that point's FLOPs per residue).

``sweep.seeds: [0, 1, 2]`` runs every point once per seed (the seed sets the initial weights and
the data order; one seed is the same data order for every point), one row each, so the table
can set the gaps between points against the seed-to-seed spread.

``sweep.match_flops_per_residue`` makes every point cost the same FLOPs per residue: the
target is a point's own count (its name) or a number; every other point's ``sweep.match_key``
(an integer key, default ``model.hidden_dim``) is chosen, before anything trains, by real
FLOP counts (:func:`pyg_mpnn.sweep.run.count_flops_per_residue` on the first training
batch) so that its count is nearest the target; a point farther than
``sweep.match_tolerance`` from it is an error.

Outputs (``<sweep.table>``, default the experiment's name): ``.csv``/``.md`` (one row per point
and seed: the point, the seed when ``sweep.seeds`` is set, one column per overridden key, then
:data:`~pyg_mpnn.sweep.run.POINT_COLUMNS`), ``.json`` (the rows, every validation, the
matching, and per point the mean, standard deviation and min-max over seeds) and ``.png``
(per point the mean over seeds, its standard deviation as an error bar, every seed a dot).
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

from matplotlib.figure import Figure
from tqdm import tqdm

from pyg_mpnn.atomic import atomic_write_text, save_figure
from pyg_mpnn.errors import BadValue
from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.sweep.run import (
    POINT_COLUMNS,
    first_batches,
    flops_of_config,
    fmt,
    train_point,
    write_table,
)
from pyg_mpnn.train.config import Config, SweepConfig
from pyg_mpnn.train.data import RunData

SUMMARY_METRICS = (
    "valid_loss",
    "valid_ppl",
    "valid_acc",
    "train_loss",
    "flops_per_residue",
    "residues_trained",
    "supervised_trained",
    "residues_per_s",
    "loss_residues_per_s",
    "peak_memory_mb",
    "minutes",
)
PANELS = (
    ("valid_ppl", "validation perplexity"),
    ("valid_acc", "validation accuracy"),
    ("train_loss", "train loss (supervised residues)"),
    ("residues_per_s", "residues / s"),
    ("loss_residues_per_s", "supervised residues / s"),
    ("peak_memory_mb", "peak memory (MiB)"),
)


def points_of(sweep: SweepConfig) -> list[tuple[str, dict]]:
    """``[(name, {dotted.key: value})]`` from ``sweep.points``."""
    out = []
    for i, p in enumerate(sweep.points):
        sets = dict(p.get("set") or {})
        out.append((str(p.get("name") or f"p{i}"), sets))
    return out


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: lists, dicts, null survive the round trip


def _value_of(cfg: Config, key: str):
    value = cfg.to_dict()
    for part in key.split("."):
        value = value[part]
    return value


def match_flops(cfg: Config, points: list[tuple[str, dict]], batch) -> tuple[list, dict]:
    """The points with ``sweep.match_key`` set so that every one costs the target FLOPs per
    residue on ``batch`` (see the module docstring), and what the matching found."""
    sw = cfg.sweep
    key, ref, tol = sw.match_key, sw.match_flops_per_residue, sw.match_tolerance
    names = [n for n, _ in points]  # SweepConfig checked: no point sets the key, ref names one

    def fpr(sets: dict, value=None) -> float:
        items = [_override(k, v) for k, v in sets.items()]
        if value is not None:
            items.append(_override(key, value))
        return flops_of_config(cfg.override(items + ["sweep.points=null"]), batch)

    if isinstance(ref, str):
        target = fpr(dict(points[names.index(ref)][1]))
    else:
        target = float(ref)
    out, found = [], {}
    for name, sets in points:
        start = _value_of(cfg.override([_override(k, v) for k, v in sets.items()]), key)
        if not isinstance(start, int) or isinstance(start, bool):
            raise BadValue(f"sweep.match_key {key}: an integer key is needed, got {start!r}")
        value, flops, tried = sweep_plan.solve_increasing(partial(fpr, sets), target, start)
        ratio = flops / target
        if abs(ratio - 1) > tol:
            raise BadValue(
                f"sweep.match_tolerance={tol}: point {name!r} costs {ratio:.3f}x the target "
                f"{target:.4g} FLOPs per residue at its nearest {key}={value} (tried {tried})"
            )
        out.append((name, {**sets, key: value}))
        found[name] = {"value": value, "flops_per_residue": flops, "ratio": ratio, "tried": tried}
    return out, {"key": key, "reference": ref, "target": target, "tolerance": tol, "points": found}


def runs_of(sweep: SweepConfig, points: list[tuple[str, dict]], seed: int) -> list[dict]:
    """Every run: each point once per seed of ``sweep.seeds`` (the config's ``seed`` when
    null), the seeds of one point one after the other (oneDNN's kernels for its shapes stay
    cached). A run's name is the point's, with ``-s<seed>`` when ``sweep.seeds`` is set."""
    seeds = sweep.seeds or [seed]
    return [
        {"point": name, "seed": s, "sets": sets, "run": f"{name}-s{s}" if sweep.seeds else name}
        for name, sets in points
        for s in seeds
    ]


def plot_points(rows: list[dict], path: Path, title: str, panels=PANELS, dpi: int = 110) -> None:
    """Per point the mean over its seeds (a square; the standard deviation as an error bar when
    there are several) and every seed's value (a dot), one panel per metric."""
    summary = sweep_plan.seed_summary(rows, tuple(k for k, _ in panels))["points"]
    names = list(summary)
    cols = min(3, len(panels))
    fig = Figure(figsize=(4.6 * cols, 3.4 * ((len(panels) + cols - 1) // cols)))
    axes = fig.subplots((len(panels) + cols - 1) // cols, cols, squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        stats = [summary[n][key] for n in names]
        means = [s.get("mean", float("nan")) for s in stats]
        sds = [s.get("sd", 0.0) if s.get("n", 0) > 1 else 0.0 for s in stats]
        ax.errorbar(range(len(names)), means, yerr=sds, fmt="s", ms=7, capsize=6, color="tab:blue")
        for i, s in enumerate(stats):
            ax.plot([i + 0.12] * len(s["values"]), s["values"], "k.", ms=5)
            ax.annotate(fmt(float(means[i])), (i - 0.1, means[i]), ha="right", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", lw=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def _budgets(sw: SweepConfig) -> dict:
    if sw.flop_budget:
        return {"budget": None, "flop_budget": sw.flop_budget, "supervised_budget": None}
    if sw.budget_unit == "supervised":
        return {"budget": None, "flop_budget": None, "supervised_budget": sw.token_budget}
    return {"budget": sw.token_budget, "flop_budget": None, "supervised_budget": None}


def _describe_budget(sw: SweepConfig) -> str:
    if sw.flop_budget:
        return f"{sw.flop_budget:.3g} training FLOPs"
    return f"{sw.token_budget:,} {'supervised' if sw.budget_unit == 'supervised' else 'training'} residues"


def _row(run: dict, keys: list[str], result: dict, seeds: bool) -> dict:
    sets = run["sets"]
    shown = {
        k: json.dumps(sets.get(k)) if isinstance(sets.get(k), (dict, list)) else sets.get(k)
        for k in keys
    }
    return {"point": run["point"], **({"seed": run["seed"]} if seeds else {}), **shown, **result}


def write_report(rows: list[dict], out: Path, name: str, columns: tuple, extra: dict) -> dict:
    """``<name>.csv/.md`` (one row per run) and ``<name>.json`` (rows, summary, ``extra``)."""
    write_table(rows, out, name, columns)
    summary = sweep_plan.seed_summary(rows, SUMMARY_METRICS)
    doc = {**extra, "columns": list(columns), "rows": rows, "summary": summary}
    atomic_write_text(out / f"{name}.json", json.dumps(doc, indent=1, default=str))
    return doc


def run_points(cfg: Config, out: Path) -> list[dict]:
    """The ablation form of :func:`pyg_mpnn.sweep.run_sweep` (``sweep.points``)."""
    sw = cfg.sweep
    name = sw.table or cfg.name
    points = points_of(sw)  # their keys were checked with the config (Config.validate)
    data = RunData(cfg.data, cfg.seed, progress=cfg.train.progress, backbone=cfg.model.backbone)
    atomic_write_text(out / "sweep_config.json", json.dumps(cfg.to_dict(), indent=1, default=str))
    print(data.describe(), file=sys.stderr)
    matching = None
    if sw.match_flops_per_residue is not None:
        points, matching = match_flops(cfg, points, first_batches(data, 1)[0])
        tqdm.write(
            f"{name}: {matching['key']} per point for {matching['target']:.4g} FLOPs/residue: "
            + ", ".join(
                f"{p} {m['value']} ({m['ratio']:.3f}x)" for p, m in matching["points"].items()
            ),
            file=sys.stderr,
        )
    keys = list(dict.fromkeys(k for _, sets in points for k in sets))
    columns = ("point", *(["seed"] if sw.seeds else []), *keys, *POINT_COLUMNS)
    runs, cap, budgets = runs_of(sw, points, cfg.seed), sw.max_minutes, _budgets(sw)
    extra = {"table": name, "budget": _describe_budget(sw), "matching": matching}
    rows, t0 = [], time.time()
    bar = tqdm(runs, desc=name, unit="run", disable=not cfg.train.progress)
    for i, run in enumerate(bar):
        bar.set_postfix(run=run["run"])
        minutes = None
        if cap:
            minutes = max((cap - (time.time() - t0) / 60) / (len(runs) - i), 0.05)
        items = [_override(k, v) for k, v in run["sets"].items()] + [f"seed={run['seed']}"]
        result = train_point(
            cfg, out, run["run"], items, data, out / "aim", minutes=minutes, **budgets
        )
        rows.append(_row(run, keys, result, bool(sw.seeds)))
        write_report(rows, out, name, columns, extra)
        tqdm.write(
            f"{run['run']}: valid ppl {result['valid_ppl']:.3f}, acc {result['valid_acc']:.3f}, "
            f"{result['residues_per_s']:.0f} residues/s, {result['minutes']:.1f} min",
            file=sys.stderr,
        )
    bar.close()
    seeds = f", {len(sw.seeds)} seeds" if sw.seeds else ""
    plot_points(rows, out / f"{name}.png", f"{name}: {_describe_budget(sw)} a point{seeds}")
    print((out / f"{name}.md").read_text())
    print(
        f"{name}: {out}/{name}.csv, .md, .json, .png; aim up --repo {out / 'aim'}", file=sys.stderr
    )
    return rows
