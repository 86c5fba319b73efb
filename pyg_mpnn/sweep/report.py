"""scale_sweep's outputs: the per-budget table, its summary, the JSON and the loss-vs-FLOPs plot.

Rows are one per (run, budget). The summary names the compute-optimal size at each budget and
whether the ladder brackets it (a smaller and a larger size on either side; then a parabola in
log(params) through the three gives the optimal parameter count), sets the best-to-worst gap
between sizes against the largest seed-to-seed spread of the replicates and names the sizes
within that spread of the optimum (ties), fits ``N_opt = k * C^a`` over the bracketed budgets
(with the standard error of ``a``) and ``loss = a * C^-b`` to the frontier (the lowest loss
reached at each budget).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.figure import Figure

from pyg_mpnn.atomic import atomic_write_text, csv_text, save_figure
from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.train.config import Config

COLUMNS = (
    "size",
    "seed",
    "hidden_dim",
    "layers",
    "params",
    "flops_per_residue",
    "budget_flops",
    "residues",
    "steps",
    "valid_loss",
    "valid_ppl",
    "valid_acc",
    "reached",
    "residues_per_s",
    "peak_memory_mb",
    "train_loss",
    "minutes",
)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def size_rows(results: list[dict], budgets: list[float]) -> list[dict]:
    """One row per run and budget (one per run at its end when ``budgets`` is empty)."""
    rows = []
    for r in results:
        base = {
            "size": r["size"],
            "seed": r["seed"],
            "hidden_dim": r["width"],
            "layers": r["depth"],
            "params": r["params"],
            "flops_per_residue": r["flops_per_residue"],
            "residues_per_s": r["residues_per_s"],
            "peak_memory_mb": r["peak_memory_mb"],
            "train_loss": r["train_loss"],
            "minutes": r["minutes"],
        }
        if not budgets:
            rows.append(
                {
                    **base,
                    "budget_flops": r["residues_trained"] * r["flops_per_residue"],
                    "residues": r["residues_trained"],
                    "steps": r["steps"],
                    "valid_loss": r["valid_loss"],
                    "valid_ppl": r["valid_ppl"],
                    "valid_acc": r["valid_acc"],
                    "reached": True,
                }
            )
            continue
        marks = [sweep_plan.residue_budget(b, r["flops_per_residue"]) for b in budgets]
        for b, at in zip(budgets, sweep_plan.loss_at_budgets(r["history"], marks)):
            rows.append(
                {
                    **base,
                    "budget_flops": b,
                    "reached": at is not None,
                    "residues": at["residues"] if at else None,
                    "steps": at["step"] if at else None,
                    "valid_loss": at["valid_loss"] if at else None,
                    "valid_ppl": at["valid_ppl"] if at else None,
                    "valid_acc": at["valid_acc"] if at else None,
                }
            )
    return rows


def summary(rows: list[dict], results: list[dict], budgets: list[float]) -> dict:
    """Per budget: the compute-optimal size, whether the ladder brackets it and the parabola's
    optimum, the best-worst gap against the largest seed spread, the sizes tied with the optimum.
    Then each replicate's spread, the optimal size's power law in compute, the frontier's."""
    reps = {r["size"]: r["replicate_of"] for r in results if r.get("replicate_of")}
    spreads = {rep: sweep_plan.seed_spread(rows, orig, rep) for rep, orig in reps.items()}
    main = [r for r in rows if r["size"] not in reps]
    out = {"budgets": [], "replicates": [], "power_law": None, "optimal_size_law": None}
    for b in sorted({r["budget_flops"] for r in rows}):
        best = sweep_plan.compute_optimal(main, b)
        gap = sweep_plan.size_gap(rows, b, exclude=set(reps))
        spread = max((s[b] for s in spreads.values() if b in s), default=None)
        at = [
            (r["params"], r["valid_loss"]) for r in main if r["budget_flops"] == b and r["reached"]
        ]
        optimum = sweep_plan.optimal_size(at)
        out["budgets"].append(
            {
                "budget_flops": b,
                "compute_optimal": best and best["size"],
                "valid_ppl": best and best["valid_ppl"],
                "bracketed": optimum["bracketed"],
                "optimal_params": optimum["params_opt"],
                "size_gap_loss": gap,
                "seed_spread_loss": spread,
                "gap_over_spread": _ratio(gap, spread),
                "ties_with_optimal": None
                if spread is None
                else sweep_plan.ties_with_optimal(rows, b, spread, exclude=set(reps)),
            }
        )
    gaps = {e["budget_flops"]: e["size_gap_loss"] for e in out["budgets"]}
    for rep, orig in reps.items():
        out["replicates"].append(
            {
                "size": orig,
                "replicate": rep,
                "spread_loss": spreads[rep],
                "gap_over_spread": {b: _ratio(gaps.get(b), s) for b, s in spreads[rep].items()},
            }
        )
    bracketed = [(e["budget_flops"], e["optimal_params"]) for e in out["budgets"] if e["bracketed"]]
    out["optimal_size_law"] = law = sweep_plan.fit_optimal_size_law(bracketed)
    if law and reps:
        exponents = sweep_plan.optimal_size_law_over_seeds(rows, reps)
        law["a_over_seeds"] = {"min": min(exponents), "max": max(exponents), "fits": len(exponents)}
    if budgets:
        out["power_law"] = _frontier_laws(rows, results, reps)
    return out


def _ratio(gap: float | None, spread: float | None) -> float | None:
    """The best-worst gap in units of the seed spread (infinite for a zero spread)."""
    if gap is None or spread is None:
        return None
    return gap / spread if spread > 0 else math.inf


def _frontier_laws(rows: list[dict], results: list[dict], reps: dict) -> dict:
    """``loss = a * C^-b`` fitted to the frontier at the budgets and along every validation."""
    front = sweep_plan.frontier(
        [
            (r["budget_flops"], r["valid_loss"])
            for r in rows
            if r["reached"] and r["size"] not in reps
        ]
    )
    fit = sweep_plan.fit_power_law(front)
    points = [
        (h["residues"] * r["flops_per_residue"], h["valid_loss"])
        for r in results
        if r["size"] not in reps
        for h in r["history"]
    ]
    fit_all = sweep_plan.fit_power_law(sweep_plan.frontier(points))
    return {
        "frontier_at_budgets": fit and {"a": fit[0], "b": fit[1]},
        "frontier_all_points": fit_all and {"a": fit_all[0], "b": fit_all[1]},
    }


def _summary_md(s: dict, scale: float) -> list[str]:
    md = [
        "",
        "| budget (training FLOPs) | compute-optimal size | its valid ppl | bracketed | "
        "optimal params (parabola) | best-worst gap (nats) | largest seed spread (nats) | "
        "gap / spread | tied with the optimum |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {_fmt(e['budget_flops'])} | {e['compute_optimal']} | {_fmt(e['valid_ppl'])} | "
        f"{'yes' if e['bracketed'] else 'no'} | {_fmt(e['optimal_params'])} | "
        f"{_fmt(e['size_gap_loss'])} | {_fmt(e['seed_spread_loss'])} | "
        f"{_fmt(e['gap_over_spread'])} | {', '.join(e['ties_with_optimal'] or []) or '-'} |"
        for e in s["budgets"]
    ]
    for rep in s["replicates"]:
        for b, spread in rep["spread_loss"].items():
            md.append(
                f"\nseed spread of {rep['size']} ({rep['replicate']}) at {_fmt(b)} FLOPs: "
                f"{spread:.4f} nats"
            )
    law = s.get("optimal_size_law")
    if law:
        se = f" ± {law['a_se']:.3f}" if law["a_se"] is not None else " (two budgets: no error)"
        md.append(
            f"\noptimal size: N_opt = {law['k']:.3g} * C^{law['a']:.3f}{se} "
            f"(standard error), fitted over {law['budgets']} bracketed budgets"
        )
        seeds = law.get("a_over_seeds")
        if seeds:
            md.append(
                f"\nwith either seed of each replicated size: a from {seeds['min']:.3f} to "
                f"{seeds['max']:.3f} ({seeds['fits']} fits)"
            )
    front = (s.get("power_law") or {}).get("frontier_at_budgets")
    if front:
        md.append(f"\nfrontier power law: valid loss = {front['a']:.3g} * C^-{front['b']:.4f}")
    if scale < 1:
        md.append(
            f"\nbudgets scaled by {scale:.3f} (one factor for every size) to fit sweep.max_minutes"
        )
    return md


def write_size_report(
    results: list[dict], budgets: list[float], scale: float, out: Path, cfg: Config
) -> list[dict]:
    """Write scale_sweep.csv/.md/.json for the runs so far (a partial report survives)."""
    rows = size_rows(results, budgets)
    atomic_write_text(out / "scale_sweep.csv", csv_text(rows, COLUMNS))
    s = summary(rows, results, budgets)
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    atomic_write_text(out / "scale_sweep.md", "\n".join(md + _summary_md(s, scale)) + "\n")
    doc = {
        "budgets_flops": budgets,
        "budget_scale": scale,
        "rows": rows,
        "summary": s,
        "runs": [{k: v for k, v in r.items()} for r in results],
        "config": {
            k: v
            for k, v in cfg.to_dict().items()
            if k in ("model", "data", "schedule", "train", "sweep")
        },
    }
    atomic_write_text(out / "scale_sweep.json", json.dumps(doc, indent=1, default=str))
    return rows


def plot_sizes(results: list[dict], budgets: list[float], path: Path) -> None:
    """Validation loss against training FLOPs per size, the frontier and its power law (left);
    validation perplexity against parameters at each budget, the iso-FLOP profiles (right)."""
    fig = Figure(figsize=(13, 5))  # no pyplot: no GUI backend, nothing to close
    ax, ax2 = fig.subplots(1, 2)
    main = [r for r in results if not r.get("replicate_of")]
    _plot_loss_vs_flops(ax, results, main, budgets)
    rows = size_rows(main, budgets)
    for b in sorted({r["budget_flops"] for r in rows}):
        at = sorted(
            (r["params"], r["valid_ppl"]) for r in rows if r["budget_flops"] == b and r["reached"]
        )
        if at:
            ax2.plot(*zip(*at), "o-", label=f"{b:.2g} FLOPs")
    ax2.set(
        xscale="log",
        xlabel="parameters",
        ylabel="validation perplexity",
        title="iso-FLOP profiles (one line per budget)",
    )
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_loss_vs_flops(ax, results: list[dict], main: list[dict], budgets: list[float]) -> None:
    """Every run's validation loss against its training FLOPs (a replicate dashed), the
    frontier of the ``main`` runs and its power-law fit, a line at each budget."""
    for r in results:
        pts = sorted(
            (h["residues"] * r["flops_per_residue"], h["valid_loss"]) for h in r["history"]
        )
        if pts:
            ax.plot(
                *zip(*pts),
                "o-" if not r.get("replicate_of") else "x--",
                ms=4,
                label=r["size"] + (" (replicate)" if r.get("replicate_of") else ""),
            )
    front = sweep_plan.frontier(
        [
            (h["residues"] * r["flops_per_residue"], h["valid_loss"])
            for r in main
            for h in r["history"]
        ]
    )
    if front:
        ax.plot(*zip(*front), "k:", lw=2, label="frontier")
        fit = sweep_plan.fit_power_law(front)
        if fit:
            xs = [front[0][0] * (front[-1][0] / front[0][0]) ** (i / 40) for i in range(41)]
            ax.plot(
                xs,
                [fit[0] * x ** -fit[1] for x in xs],
                "r-",
                lw=1,
                label=f"fit {fit[0]:.3g} C^-{fit[1]:.3f}",
            )
    for b in budgets:
        ax.axvline(b, color="grey", lw=0.5)
    ax.set(
        xscale="log",
        xlabel="training FLOPs",
        ylabel="validation loss (nats/residue)",
        title="validation loss vs training compute",
    )
    ax.legend(fontsize=7)
