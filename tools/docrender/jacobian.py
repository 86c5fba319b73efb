"""Renderers for the categorical Jacobian study (studies/jacobian_study.py)."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import (
    RenderError,
    load,
    machine_load,
    machine_threads,
    renderer,
    table,
)

# -- categorical Jacobian study ------------------------------------------------------------------
JAC_LABELS = {
    "decoder": "decoder, mean of the orders",
    "decoder_order0": "decoder, order seed 0",
    "decoder_order1": "decoder, order seed 1",
    "encoder": "encoder (structure Jacobian)",
}


def _ms(s: dict, spec: str = ".2f") -> str:
    """``mean ± sd`` over proteins (``—`` when there is none)."""
    return "—" if s["mean"] is None else f"{s['mean']:{spec}} ± {s['sd']:{spec}}"


def _jac_step(r: dict, step: str) -> int:
    steps = r["run"]["steps"]
    return steps[-1] if step == "last" else steps[0] if step == "first" else int(step)


def _jac_item(r: dict, step: int, variant: str) -> dict:
    for item in r["summary"]:
        if item["step"] == step and item["variant"] == variant:
            return item
    raise RenderError(f"jacobian study: no summary for step {step}, variant {variant!r}")


@renderer("jacobian_study_value")
def render_jacobian_study_value(
    results: Path, file: str, step: str, variant: str, sep: str, metric: str, spec: str = ".2f"
) -> str:
    """One summary value (mean over proteins; ``spec`` ``pm``: ``mean ± sd``) for prose."""
    r = load(results, file)
    s = _jac_item(r, _jac_step(r, step), variant)["sep"][sep][metric]
    return _ms(s) if spec == "pm" else format(s["mean"], spec)


@renderer("jacobian_study_setup")
def render_jacobian_study_setup(results: Path, file: str) -> str:
    """What was measured: proteins, orders, model, checkpoints, time and machine."""
    r = load(results, file)
    m, run, st, mod = r["machine"], r["run"], r["settings"], r["run"]["model"]
    proteins = ", ".join(f"`{p['name']}` ({p['length']})" for p in r["proteins"])
    return (
        f"{len(r['proteins'])} TS50 chains ({proteins} residues), {st['orders']} decoding "
        f"orders (seeds {', '.join(map(str, st['order_seeds']))}), {st['substitutions']} amino "
        f"acids per site; the model: hidden {mod['hidden_dim']}, {mod['num_encoder_layers']}+"
        f"{mod['num_decoder_layers']} layers, k = {mod['k_neighbors']}; checkpoints at steps "
        f"{', '.join(map(str, run['steps']))}; training {r['seconds']['train']:.0f} s, maps "
        f"{r['seconds']['evaluate']:.0f} s on {m['cpu']}, {machine_threads(m)}, load average "
        f"{machine_load(m)}; `benchmarks/results/{file}`"
    )


@renderer("jacobian_study_table")
def render_jacobian_study_table(results: Path, file: str, step: str = "last", sep: str = "12"):
    """One checkpoint, one separation: each variant's precision next to every baseline."""
    r = load(results, file)
    at, rows = _jac_step(r, step), []
    for variant, label in JAC_LABELS.items():
        m = _jac_item(r, at, variant)["sep"][sep]
        rows.append(
            [label]
            + [_ms(m[k]) for k in ("precision_L", "random", "knn_precision_L", "knn_precision_L5")]
            + [_ms(m[k]) for k in ("knn_random", "distance_L", "distance_L5", "knn_rank_L")]
        )
    header = [
        f"step {at}, pairs with |i − j| ≥ {sep}",
        "top-L, all pairs",
        "random, all pairs",
        "**top-L, kNN pairs**",
        "top-L/5, kNN pairs",
        "random kNN pair",
        "kNN pairs by Cα distance",
        "top-L/5 by Cα distance",
        "kNN pairs by neighbour rank",
    ]
    return table(header, ["---"] + ["---:"] * 8, rows)


@renderer("jacobian_study_trajectory")
def render_jacobian_study_trajectory(results: Path, file: str, sep: str = "12") -> str:
    """Per checkpoint: validation perplexity, the kNN-pair precision of each map (mean ± sd
    over proteins), the orders' agreement and the graph-only baselines."""
    r, rows = load(results, file), []
    for step in r["run"]["steps"]:
        dec, enc = _jac_item(r, step, "decoder"), _jac_item(r, step, "encoder")
        orders = [_jac_item(r, step, f"decoder_order{k}") for k in r["settings"]["order_seeds"]]
        agree = (dec.get("agreement") or {}).get(sep)
        ppl = r["run"]["valid_ppl"].get(str(step))
        rows.append(
            [
                f"{step:,}",
                "—" if ppl is None else f"{ppl:.2f}",
                _ms(dec["sep"][sep]["knn_precision_L"]),
                " / ".join(f"{o['sep'][sep]['knn_precision_L']['mean']:.2f}" for o in orders),
                "—" if not agree else _ms(agree["spearman_knn"]),
                "—" if not agree else _ms(agree["top_L_overlap_knn"]),
                _ms(enc["sep"][sep]["knn_precision_L"]),
                _ms(dec["sep"][sep]["knn_random"]),
                _ms(dec["sep"][sep]["distance_L"]),
                _ms(dec["sep"][sep]["knn_rank_L"]),
            ]
        )
    header = [
        "step",
        "validation ppl",
        "decoder",
        "decoder per order (mean)",
        "orders' Spearman ρ",
        "orders' top-L overlap",
        "encoder",
        "random kNN pair",
        "Cα distance",
        "neighbour rank",
    ]
    return table(header, ["---:"] * 10, rows)


@renderer("jacobian_study_proteins")
def render_jacobian_study_proteins(results: Path, file: str, step: str = "last", sep: str = "12"):
    """Per protein at one checkpoint: top-L precision among kNN pairs of each map and the
    baselines."""
    r = load(results, file)
    at, rows = _jac_step(r, step), []
    for p in r["proteins"]:
        got = {
            x["variant"]: x["sep"][sep]
            for x in r["rows"]
            if x["step"] == at and x["protein"] == p["name"]
        }
        d = got["decoder"]
        rows.append(
            [f"`{p['name']}`", p["length"], f"{d['knn_pairs']} ({d['knn_contacts']})"]
            + [f"{got[v]['knn_precision_L']:.2f}" for v in JAC_LABELS]
            + [f"{d[k]:.2f}" for k in ("knn_random", "distance_L", "knn_rank_L")]
        )
    header = ["protein", "L", "kNN pairs (contacts)"] + list(JAC_LABELS.values())
    header += ["random kNN pair", "Cα distance", "neighbour rank"]
    return table(header, ["---", "---:", "---:"] + ["---:"] * 7, rows)
