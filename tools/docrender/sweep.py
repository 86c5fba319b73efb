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
    """Per budget: the compute-optimal size, its perplexity, whether the ladder brackets it
    (and the parabola's optimal parameter count), the best-worst gap between sizes, each seed
    replicate's spread, the gap in units of the largest spread, and the sizes tied with the
    optimum (within that spread)."""
    summary = _report(results, file)["summary"]
    reps = summary["replicates"]
    # JSON wrote the budgets (float keys) as strings
    spreads = [{float(k): v for k, v in r["spread_loss"].items()} for r in reps]
    out = []
    for e in summary["budgets"]:
        b = float(e["budget_flops"])
        largest = max((s[b] for s in spreads if b in s), default=None)
        ratio = e.get("gap_over_spread")
        if ratio is None and largest and e["size_gap_loss"] is not None:
            ratio = e["size_gap_loss"] / largest
        if "bracketed" not in e:  # a report from before the sweep fitted its optimum
            bracket = "—"
        elif e["bracketed"]:
            bracket = f"yes ({e['optimal_params']:,.0f})"
        else:
            bracket = "no"
        ties = e.get("ties_with_optimal")
        row = [_e(b), e["compute_optimal"] or "—", _g(e["valid_ppl"], ".2f"), bracket]
        row += [_g(e["size_gap_loss"], ".3f"), *[_g(s.get(b), ".4f") for s in spreads]]
        row += ["—" if ratio is None else f"**{ratio:.1f}**"]
        row += ["—" if ties is None else ", ".join(ties) or "none"]
        out.append(row)
    header = [
        "budget (training FLOPs)",
        "compute-optimal size",
        "its valid ppl",
        "bracketed (optimal params)",
        "best–worst gap (nats)",
    ]
    header += [f"seed spread of {rep['size']} (nats)" for rep in reps]
    header += ["gap / largest spread", "tied with the optimum"]
    return table(header, ["---", "---", "---:", "---", *["---:"] * (len(header) - 5), "---"], out)


@renderer("scale_sweep_optimal_size_law")
def render_scale_sweep_optimal_size_law(results: Path, file: str) -> str:
    """``N_opt ∝ C^a`` over the bracketed budgets: ``a = 0.52 ± 0.10 (standard error, 3
    bracketed budgets)``, or why there is no fit; then the range of ``a`` over seeds."""
    law = _report(results, file)["summary"].get("optimal_size_law")
    if not law:
        return "not fitted (fewer than two budgets where the ladder brackets the optimum)"
    se = "" if law["a_se"] is None else f" ± {law['a_se']:.2f} (standard error"
    tail = (
        f", {law['budgets']} bracketed budgets)"
        if se
        else f" ({law['budgets']} bracketed budgets, no standard error from two points)"
    )
    seeds = law.get("a_over_seeds")
    if seeds:
        tail += (
            f"; with each replicated size's loss from either of its seeds, a = "
            f"{seeds['min']:.2f}–{seeds['max']:.2f} ({seeds['fits']} fits)"
        )
    return f"a = {law['a']:.2f}{se}{tail}"
