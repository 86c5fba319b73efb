"""Renderers for monitoring.md: the noise-module control and pre/post-LayerNorm norms."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import (
    RenderError,
    load,
    lookup,
    machine_cpu,
    machine_load,
    machine_threads,
    num,
    renderer,
    table,
)


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
        f"{machine_cpu(m)}, {machine_threads(m)}, load average {machine_load(m)}, "
        f"{r['seconds']:.0f} s in all; "
        f"`benchmarks/results/{file}`"
    )


def _seed_values(runs: list[dict], key: str) -> str:
    return ", ".join(f"{run[key]:.3f}" for run in runs)


@renderer("noise_control_table")
def render_noise_control_table(results: Path, file: str, steps: str) -> str:
    """One row per arm of studies/noise_control.py at run length ``steps``: loss, gradient
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


# -- training.md: one training run as a user starts it (benchmarks/train_run.py) -------------------
@renderer("train_run_table")
def render_train_run_table(results: Path, file: str) -> str:
    """One row: steps, training minutes, validation perplexity at the end and at its best,
    accuracy, training perplexity, median rate and the memory of a ``train_run`` result."""
    r = load(results, file)
    rate = r["median_residues_per_s"]
    row = [
        r["precision"],
        f"{r['steps']:,}",
        f"{r['training_minutes']:.1f}",
        f"**{r['final_valid_ppl']:.2f}**",
        f"{r['best_valid_ppl']:.2f} (step {r['best_valid_step']:,})",
        "–" if r["final_valid_acc"] is None else f"{100 * r['final_valid_acc']:.1f} %",
        "–" if r["final_train_ppl"] is None else f"{r['final_train_ppl']:.2f}",
        "–" if rate is None else f"{rate:,.0f}",
        "–" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:,.0f} MB",
        f"{r['child_peak_rss_mb']:,.0f} MB",
    ]
    header = ["precision", "steps", "training minutes", "valid ppl (end)"]
    header += ["best valid ppl", "valid acc (end)", "train ppl (end)", "residues/s (median)"]
    header += ["peak memory (logged)", "peak RSS (process)"]
    return table(header, ["---"] + ["---:"] * 9, [row])


@renderer("train_run_machine")
def render_train_run_machine(results: Path, file: str) -> str:
    """CPU, threads, load and the commit of a ``train_run`` result, and its command."""
    r = load(results, file)
    m = r["machine"]
    return (
        f"`{r['command']}` at commit {m['commit']}, on a {machine_cpu(m)} "
        f"(load average {machine_load(m)}); the run: "
        f"`{r['run_command']}`"
    )


@renderer("layer_norms_value")
def render_layer_norms_value(results: Path, file: str, layer: str, kind: str, step: str) -> str:
    """One tracked value (two significant digits): ``layer``'s ``kind`` at ``step``; ``step``
    ``A/B`` gives the ratio of the value at A to the value at B (``×`` one decimal)."""
    q = load(results, file)["layers"].get(layer, {}).get(kind)
    if q is None:
        raise RenderError(f"{results / file}: no {kind!r} tracked for layer {layer!r}")
    at = step.split("/")
    missing = [s for s in at if s not in q]
    if missing:
        raise RenderError(f"{results / file}: {layer} {kind} not tracked at step {missing[0]}")
    if len(at) == 2:
        return f"{q[at[0]] / q[at[1]]:.1f}×"
    return sig(q[at[0]])


@renderer("train_run_epoch")
def render_train_run_epoch(results: Path, file: str, residues: str) -> str:
    """How long ``residues`` training residues take at a ``train_run``'s median rate, in the
    largest of years, days, hours or minutes that is at least 2 of it."""
    seconds = float(residues) / load(results, file)["median_residues_per_s"]
    units = (("years", 365 * 86400), ("days", 86400), ("h", 3600), ("min", 60))
    unit, size = next((u, n) for u, n in units if seconds >= 2 * n or u == "min")
    return f"{num(seconds / size)} {unit}"
