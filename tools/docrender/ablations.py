"""Renderers for the seeded ablations (studies/ablation.py)."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import (
    RenderError,
    load,
    machine_cpu,
    machine_load,
    machine_threads,
    renderer,
    runnable,
    table,
)


# -- ablations with seeds (studies/ablation.py) ----------------------------------------------------
def _mean_sd(s: dict, spec: str) -> str:
    """``mean ± sd (min–max)`` of a summary spread, formatted with ``spec``."""
    if not s.get("n"):
        return "—"
    if s["n"] == 1:
        return format(s["mean"], spec)
    return f"{s['mean']:{spec}} ± {s['sd']:{spec}} ({s['min']:{spec}}–{s['max']:{spec}})"


def _point_rows(r: dict) -> dict:
    out = {}
    for row in r["rows"]:
        out.setdefault(row["point"], []).append(row)
    return out


def _per_seed(rows: list[dict], key: str, spec: str) -> str:
    return " / ".join(
        f"{row[key]:{spec}}" for row in sorted(rows, key=lambda x: x.get("seed") or 0)
    )


@renderer("ablation_machine")
def render_ablation_machine(results: Path, file: str) -> str:
    """Where and how an ablation ran: CPU, threads, load, its minutes and its command."""
    r = load(results, file)
    m = r["machine"]
    return (
        f"{machine_cpu(m, flags=True)}, {machine_threads(m)}, load average {machine_load(m)}, "
        f"{r['minutes']:.1f} minutes in all; "
        f"`{runnable(r['command'])}` (`benchmarks/results/{file}`)"
    )


@renderer("enc_dec_isoflop_table")
def render_enc_dec_isoflop_table(results: Path, file: str) -> str:
    """One row per encoder/decoder split: its matched width, cost and the seeds' spread."""
    r = load(results, file)
    match, by_point = r["matching"], _point_rows(r)
    rows = []
    for point, s in r["summary"]["points"].items():
        runs = by_point[point]
        rows.append(
            [
                point,
                runs[0][match["key"]],
                f"{runs[0]['params']:,}",
                f"{s['flops_per_residue']['mean']:.3e} ({s['flops_per_residue']['mean'] / match['target']:.3f}×)",
                f"{s['residues_trained']['mean']:,.0f}",
                _mean_sd(s["valid_ppl"], ".2f"),
                _per_seed(runs, "valid_ppl", ".2f"),
                _mean_sd(s["valid_acc"], ".3f"),
                f"{s['residues_per_s']['mean']:,.0f}",
            ]
        )
    header = [
        "point",
        f"`{match['key']}`",
        "params",
        "FLOPs/residue (× target)",
        "training residues",
        "valid ppl: mean ± sd (min–max)",
        "valid ppl per seed",
        "valid acc: mean ± sd (min–max)",
        "residues/s",
    ]
    return table(
        header, ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"], rows
    )


@renderer("crop_supervised_table")
def render_crop_supervised_table(results: Path, file: str) -> str:
    """Whole graphs against crops at equal supervised residues: cost and the seeds' spread."""
    r = load(results, file)
    by_point = _point_rows(r)
    rows = []
    for point, s in r["summary"]["points"].items():
        runs = by_point[point]
        rows.append(
            [
                point,
                f"{s['supervised_trained']['mean']:,.0f}",
                f"{s['residues_trained']['mean']:,.0f}",
                f"{s['residues_trained']['mean'] / s['supervised_trained']['mean']:.2f}",
                _mean_sd(s["valid_ppl"], ".2f"),
                _per_seed(runs, "valid_ppl", ".2f"),
                _mean_sd(s["valid_acc"], ".3f"),
                f"{s['minutes']['mean']:.1f}",
            ]
        )
    header = [
        "point",
        "supervised residues",
        "residues computed",
        "computed ÷ supervised",
        "valid ppl: mean ± sd (min–max)",
        "valid ppl per seed",
        "valid acc: mean ± sd (min–max)",
        "minutes a run",
    ]
    return table(header, ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"], rows)


@renderer("ablation_comparison")
def render_ablation_comparison(results: Path, file: str) -> str:
    """The best point by mean validation loss against each other point, from the summary."""
    c = load(results, file)["summary"]["comparison"]
    if c is None:
        raise RenderError(f"{results / file}: fewer than two points to compare")
    parts = [
        f"`{o['point']}` {o['ppl_gap']:+.2f} perplexity ({o['loss_gap']:+.3f} nats; seed ranges "
        f"{'overlap' if o['ranges_overlap'] else 'do not overlap'}; `{c['best']}` better on "
        f"{o['best_wins']} of {o['common_seeds']} seeds)"
        for o in c["others"]
    ]
    return f"lowest mean validation loss: `{c['best']}`; against it: " + "; ".join(parts)
