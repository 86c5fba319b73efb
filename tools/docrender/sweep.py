"""The scale_sweep's report as ``benchmarks/fresh_clone.py`` records it (``make run`` in a
clean clone): the table per size and budget, and the compute-optimal size of each budget with
the seed spread."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import RenderError, load, lookup, renderer, table


def _report(results: Path, file: str) -> dict:
    report = lookup(load(results, file), "scale_sweep", file)
    if not report:
        raise RenderError(f"{file}: make run wrote no scale_sweep report")
    return report


def _e(x: float) -> str:
    """A FLOP count the way the docs write it: 1e+12 -> 1e12, 2290000.0 -> 2.29e6."""
    text = f"{x:.3g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return f"{mant}e{int(exp)}"


def _g(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


@renderer("scale_sweep_table")
def render_scale_sweep_table(results: Path, file: str) -> str:
    """One row per size and budget; a size's parameters, FLOPs per residue and speed on its
    first row; the lowest perplexity of each budget in bold (seed replicates excluded)."""
    report = _report(results, file)
    rows = report["rows"]
    replicates = {rep["replicate"] for rep in report["summary"]["replicates"]}
    best = {}
    for r in rows:
        if r["valid_ppl"] is not None and r["size"] not in replicates:
            b = r["budget_flops"]
            best[b] = min(best.get(b, r["valid_ppl"]), r["valid_ppl"])
    out, seen = [], set()
    for r in rows:
        key = (r["size"], r["seed"])
        first = key not in seen
        seen.add(key)
        ppl = _g(r["valid_ppl"], ".2f")
        if r["valid_ppl"] is not None and r["valid_ppl"] == best.get(r["budget_flops"]):
            ppl = f"**{ppl}**"
        out.append(
            [
                r["size"],
                r["seed"],
                f"{r['params']:,}" if first else "",
                _e(r["flops_per_residue"]) if first else "",
                _e(r["budget_flops"]),
                _g(r["residues"], ","),
                _g(r["steps"], ","),
                ppl,
                _g(r["valid_acc"], ".3f"),
                f"{r['residues_per_s']:,.0f}" if first else "",
            ]
        )
    header = [
        "size",
        "seed",
        "params",
        "FLOPs/res",
        "budget (FLOPs)",
        "residues",
        "steps",
        "valid ppl",
        "valid acc",
        "residues/s",
    ]
    return table(header, ["---", *["---:"] * 9], out)


@renderer("scale_sweep_summary")
def render_scale_sweep_summary(results: Path, file: str) -> str:
    """Per budget: the compute-optimal size, its perplexity, the best-worst gap between sizes
    and, for each seed replicate, the seed spread and the gap in units of it."""
    summary = _report(results, file)["summary"]
    reps = summary["replicates"]
    # JSON wrote the budgets (float keys) as strings
    by_budget = [
        (
            {float(k): v for k, v in r["spread_loss"].items()},
            {float(k): v for k, v in r["gap_over_spread"].items()},
        )
        for r in reps
    ]
    out = []
    for e in summary["budgets"]:
        b = float(e["budget_flops"])
        row = [
            _e(b),
            e["compute_optimal"] or "—",
            _g(e["valid_ppl"], ".2f"),
            _g(e["size_gap_loss"], ".3f"),
        ]
        for spreads, ratios in by_budget:
            ratio = ratios.get(b)
            row += [_g(spreads.get(b), ".4f"), "—" if ratio is None else f"**{ratio:.1f}**"]
        out.append(row)
    header = [
        "budget (training FLOPs)",
        "compute-optimal size",
        "its valid ppl",
        "best–worst gap (nats)",
    ]
    for rep in reps:
        header += [f"seed spread of {rep['size']} (nats)", "gap / spread"]
    return table(header, ["---", "---", *["---:"] * (len(header) - 2)], out)
