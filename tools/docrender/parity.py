"""Renderers for parity with the reference implementation (studies/ts50_eval.py): TS50 scored
and sampled by both sides under one protocol."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import load, machine_cpu, machine_load, renderer, table

METRICS = (  # (key, label, format, difference as percent or points)
    ("perplexity", "perplexity", ".3f", "percent"),
    ("accuracy", "accuracy (%)", ".2f", "points"),
    ("median_recovery", "median recovery (%)", ".2f", "points"),
    ("mean_recovery", "mean recovery (%)", ".2f", "points"),
)


@renderer("ts50_table")
def render_ts50_table(results: Path, file: str) -> str:
    """Per seed and metric: the reference, ours and the difference (percent for perplexity,
    points otherwise); then each side's wall time."""
    rows = []
    for run in load(results, file)["runs"]:
        ref, ours = run["reference"], run["ours"]
        for key, label, spec, kind in METRICS:
            if kind == "percent":
                diff = f"{100 * (ours[key] / ref[key] - 1):+.2f} %"
            else:
                diff = f"{ours[key] - ref[key]:+.2f} pt"
            rows.append([run["seed"], label, format(ref[key], spec), format(ours[key], spec), diff])
        rows.append(
            [run["seed"], "wall time (s)", f"{ref['seconds']:.1f}", f"{ours['seconds']:.1f}", ""]
        )
    header = ["seed", "metric", "reference", "ours", "difference"]
    return table(header, ["---", "---", "---:", "---:", "---:"], rows)


@renderer("ts50_setup")
def render_ts50_setup(results: Path, file: str) -> str:
    """What was compared: chains, residues, weights, machine and load."""
    r = load(results, file)
    first, m = r["runs"][0]["ours"], r["machine"]
    return (
        f"{first['chains']} chains, {first['residues']:,} residues, weights `{r['weights']}`, "
        f"{machine_cpu(m)}, {r['threads']} thread(s), load average {machine_load(m)}; "
        f"`benchmarks/results/{file}`"
    )
