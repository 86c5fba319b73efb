"""Renderers for memory and scale: the memory curves, spatial crops, recomputed activations,
memory per residue, data at scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.docrender.core import load, num, renderer, table


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


@renderer("recompute_memory_table")
def render_recompute_memory_table(results: Path, *files: str) -> str:
    """memory_curve rows of the variants ``keep_all`` and ``plain``, per size (from one or
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


@renderer("memory_per_residue_table")
def render_memory_per_residue_table(results: Path, file: str, variant: str = "plain") -> str:
    """Peak memory of one training step per size, and per residue, for one variant."""
    rows = []
    for row in load(results, file)["rows"]:
        if row.get("variant") != variant:
            continue
        if "error" in row:
            rows.append([f"{row['residues']:,}", "—", "failed", "—"])
            continue
        mb = row["peak_mem_mb"]
        rows.append(
            [
                f"{row['residues']:,}",
                f"{row['edges']:,}",
                f"{mb:,.0f}",
                f"{mb / row['residues']:.3f}",
            ]
        )
    header = ["residues", "edges", "peak MiB (step)", "MiB per residue"]
    return table(header, ["---:"] * 4, rows)


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


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


@renderer("data_scale_ours")
def render_data_scale_ours(results: Path, file: str) -> str:
    """Ours per index size: start-up by phase, memory of the main process and of one worker
    (RSS / USS), batches/s, residues a batch and the index's size."""
    rows = []
    for o in load(results, file)["ours"]:
        worker = o["workers"][0]
        rows.append(
            [
                _size(o["rows"]),
                f"{o['clusters_per_epoch']:,}",
                f"{o['open_s']:.3f}",
                f"{o['plan_s']:.2f}",
                f"{o['first_batch_s']:.2f}",
                f"**{o['startup_s']:.2f}**",
                f"{o['main']['rss_mb']:,.0f} / {o['main']['uss_mb']:,.0f}",
                f"{worker['rss_mb']:,.0f} / {worker['uss_mb']:,.0f}",
                f"**{o['batches_per_s']:.1f}**",
                f"{o['residues_per_batch']:,}",
                num(o["index_mb"]),
            ]
        )
    header = [
        "index rows",
        "epoch (clusters)",
        "open s",
        "plan s",
        "first batch s",
        "**startup s**",
        "main RSS / USS MB",
        "each worker RSS / USS MB",
        "**batches/s**",
        "residues/batch",
        "index.npz MB",
    ]
    return table(header, ["---:"] * 11, rows)


@renderer("data_scale_original")
def render_data_scale_original(results: Path, file: str) -> str:
    """The original's list.csv parse (measured where it was, else rows × the measured time a
    row), first ``get_pdbs`` pass, start-up and RAM held, per index size (extrapolated)."""
    orig = load(results, file)["original"]
    measured = {m["rows"]: m["parse_s"] for m in orig["parse_measured"]}
    rows = []
    for e in orig["estimates"]:
        n = e["rows"]
        parse = (
            f"{num(measured[n])} (measured)" if n in measured else num(n * orig["parse_s_per_row"])
        )
        rows.append(
            [
                _size(n),
                parse,
                f"{e['first_get_pdbs_s']:,.0f}",
                f"**{e['startup_s']:,.0f}**",
                f"**{num(e['held_in_ram_gb'])}**",
            ]
        )
    header = ["list.csv rows", "parse s", "first `get_pdbs` pass s", "**startup s**"]
    return table(header + ["**held in RAM GB**"], ["---:"] * 5, rows)


# -- memory over a long run ----------------------------------------------------------------------
@renderer("soak_table")
def render_soak_table(results: Path, file: str, only: str = "") -> str:
    """benchmarks/soak.py: per variant (those named in ``only``, comma-separated, or all),
    steps, peak, end of warm-up, slope and working set."""
    data = load(results, file)
    rows = []
    for r in data["results"]:
        if only and r["variant"] not in only.split(","):
            continue
        slope = r["slope_mb_per_1000_steps"]
        rows.append(
            [
                f"`{r['variant']}`",
                f"{r['steps']:,}",
                f"{r['peak_rss_mb']:,.0f}",
                f"{r['rss_end_of_warmup_mb']:,.0f} (step {r['warmup_steps']})",
                "—" if slope is None else f"{slope:+,.0f}",
                f"{r['working_set_total_mb']:,.0f}",
                f"{r['peak_rss_mb'] / r['working_set_total_mb']:.2f}×",
                "—" if r["cpu_s_per_step"] is None else f"{r['cpu_s_per_step']:.2f}",
            ]
        )
    header = [
        "variant",
        "steps",
        "peak RSS (MB)",
        "RSS after warm-up (MB)",
        "slope (MB / 1,000 steps)",
        "working set (MB)",
        "peak ÷ working set",
        "CPU s / step",
    ]
    return table(header, ["---", *["---:"] * 7], rows)


def _fit(x, y) -> tuple[float, float]:
    """Least-squares slope of ``y`` on ``x`` and its standard error, per 1,000 of ``x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, icept = np.polyfit(x, y, 1)
    resid = y - (slope * x + icept)
    se = np.sqrt(resid @ resid / max(len(x) - 2, 1) / ((x - x.mean()) @ (x - x.mean())))
    return 1000 * slope, 1000 * se


@renderer("soak_trend")
def render_soak_trend(results: Path, file: str, window: str = "25") -> str:
    """benchmarks/soak.py after warm-up, three fits per variant (MB per 1,000 steps): the RSS at
    every step (± standard error), its minimum in each ``window`` of steps (right after a
    release of free pages), and malloc's memory in use (what a leak would raise)."""
    w, rows = int(window), []
    for r in load(results, file)["results"]:
        per = [row for row in r["per_step"] if row[0] >= r["warmup_steps"]]
        step, rss, in_use = (np.array([row[i] for row in per], float) for i in (0, 1, 2))
        bins = [(step > lo) & (step <= lo + w) for lo in range(int(step[0]) - 1, int(step[-1]), w)]
        floor = [(step[b][np.argmin(rss[b])], rss[b].min()) for b in bins if b.sum() == w]
        slope, se = _fit(step, rss)
        rows.append(
            [
                f"`{r['variant']}`",
                f"{int(step[0]):,}–{int(step[-1]):,}",
                f"{slope:+,.0f} ± {se:,.0f}",
                f"{_fit(*zip(*floor))[0]:+,.0f} ({len(floor)} windows)" if len(floor) > 2 else "—",
                f"{_fit(step, in_use)[0]:+,.0f}" if in_use.any() else "—",
            ]
        )
    header = [
        "variant",
        "steps fitted",
        "RSS, every step",
        f"lowest RSS of each {w} steps",
        "malloc in use",
    ]
    return table(header, ["---", "---:", "---:", "---:", "---:"], rows)


def _toggles(r: dict) -> str:
    """What a soak variant changes: its environment and config overrides, in code spans."""
    parts = [f"`{k}={v}`" for k, v in r["env"].items()] + [f"`{o}`" for o in r["overrides"]]
    return ", ".join(parts) or "—"


@renderer("soak_suspects_table")
def render_soak_suspects_table(results: Path, file: str, early: str = "10") -> str:
    """benchmarks/soak.py, one suspect toggled a variant: RSS at step ``early`` and at the
    end, malloc's in-use and free bytes at the end, Python objects (when traced)."""
    rows = []
    for r in load(results, file)["results"]:
        per = {row[0]: row for row in r["per_step"]}
        first, last = per[int(early)], r["per_step"][-1]
        rows.append(
            [
                f"`{r['variant']}`",
                _toggles(r),
                f"{first[1]:,.0f}",
                f"{last[1]:,.0f} (step {last[0]})",
                f"{last[1] - first[1]:+,.0f}",
                f"{last[2]:,.0f}" if last[2] else "—",
                f"{last[3]:,.0f}" if last[2] else "—",
                f"{last[4]:,.1f}" if len(last) > 4 and last[4] else "—",
            ]
        )
    header = [
        "variant",
        "what it changes",
        f"RSS at step {early} (MB)",
        "RSS at the end (MB)",
        "growth (MB)",
        "malloc in use (MB)",
        "malloc free (MB)",
        "Python objects (MB)",
    ]
    return table(header, ["---", "---", *["---:"] * 6], rows)


@renderer("soak_speed_table")
def render_soak_speed_table(results: Path, file: str, baseline: str) -> str:
    """benchmarks/soak.py on the same batches: wall and CPU seconds a step after warm-up, and
    each variant's wall time against ``baseline``'s; peak RSS."""
    data = load(results, file)["results"]
    base = next(r for r in data if r["variant"] == baseline)["wall_s_per_step"]
    rows = [
        [
            f"`{r['variant']}`",
            _toggles(r),
            f"{r['steps']:,}",
            f"{r['wall_s_per_step']:.3f}",
            f"{r['wall_s_per_step'] / base:.3f}×",
            f"{r['cpu_s_per_step']:.2f}",
            f"{r['peak_rss_mb']:,.0f}",
        ]
        for r in data
    ]
    header = [
        "variant",
        "what it changes",
        "steps",
        "wall s / step",
        f"÷ `{baseline}`",
        "CPU s / step",
        "peak RSS (MB)",
    ]
    return table(header, ["---", "---", *["---:"] * 5], rows)
