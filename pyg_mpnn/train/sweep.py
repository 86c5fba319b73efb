"""scale_sweep: train a ladder of model sizes on the same residue budget, tabulate and plot.

``sweep`` config keys: ``sizes`` (list of ``[hidden_dim, layers]``; layers = encoder = decoder
depth) or ``widths`` x ``depths`` when ``sizes`` is null; ``token_budget`` (training residues per
size); ``max_minutes`` (a
safety cap on the whole sweep: each size gets an equal share of what is left, and the table
says how many residues each size really trained on).

Outputs in the sweep folder: ``<size>/`` run folders (checkpoints, metrics.csv), one Aim repo
``aim/`` with one run per size (experiment = the sweep's name, run name = the size),
``scale_sweep.csv``, ``scale_sweep.md`` and ``scale_sweep.png``.

Ablations use the same machinery with ``sweep.points`` instead of sizes: a list of
``{name: ..., set: {dotted.key: value, ...}}``, each point a run of the experiment's config with
those keys overridden (any key of base.yaml: ``model.k_neighbors``, ``model.num_encoder_layers``,
``data.transform``...). Their table (``<sweep.table>.csv/.md/.png``, default: the experiment's
name) has a ``point`` column, one column per overridden key, then the columns below plus
``loss_residues_per_s`` (supervised residues per second of step time: differs from
``residues_per_s`` when a transform such as ``spatial_crop`` supervises a subset).

Columns: parameters; FLOPs per residue (forward + backward of one training batch, counted by
``torch.utils.flop_counter.FlopCounterMode``, divided by its residues); peak memory (what
training that size added on top of the process before it: CUDA peak allocated, CPU peak
resident set size after ``malloc_trim``); residues/s
(median over steps after the first two); final train loss/accuracy (residue-weighted over the
last quarter of steps); valid loss/perplexity/accuracy at the end.
"""

from __future__ import annotations

import copy
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pyg_mpnn.train.config import apply_overrides
from pyg_mpnn.train.data import RunData
from pyg_mpnn.train.loss import Meter, supervised_mask, training_loss
from pyg_mpnn.train.precision import autocast, peak_memory_mb, reset_peak_memory

COLUMNS = ("size", "hidden_dim", "layers", "params", "flops_per_residue", "peak_memory_mb",
           "residues_per_s", "residues_trained", "steps", "train_loss", "train_acc",
           "valid_loss", "valid_ppl", "valid_acc", "minutes")
POINT_COLUMNS = ("params", "flops_per_residue", "peak_memory_mb", "residues_per_s",
                 "loss_residues_per_s", "residues_trained", "steps", "train_loss", "train_acc",
                 "valid_loss", "valid_ppl", "valid_acc", "minutes")


def sizes_of(sweep: dict) -> list[tuple[int, int]]:
    if sweep.get("sizes"):
        return [(int(w), int(d)) for w, d in sweep["sizes"]]
    return [(int(w), int(d)) for w in sweep["widths"] for d in sweep["depths"]]


def flops_per_residue(trainer, batch) -> float:
    """Forward + backward FLOPs of one training batch per residue (no optimizer step)."""
    from torch.utils.flop_counter import FlopCounterMode
    model, lo = trainer.model, trainer.cfg["loss"]
    batch = batch.to(trainer.device)
    state = torch.get_rng_state()
    with FlopCounterMode(display=False) as counter:
        with autocast(trainer.precision, trainer.device):
            log_probs = model(batch)
        loss = training_loss(log_probs, batch.seq, supervised_mask(batch),
                             lo["label_smoothing"], lo["normalize"], lo["tokens"])
        loss.backward()
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(state)  # measuring must not change the training stream
    return counter.get_total_flops() / batch.num_nodes


def train_point(cfg: dict, out: Path, name: str, overrides: list[str], data: RunData,
                aim_repo: Path, budget: int, minutes: float | None) -> dict:
    """Train ``cfg`` with ``overrides`` for ``budget`` residues as run ``name``; its metrics."""
    from pyg_mpnn.train.trainer import Trainer
    c = apply_overrides(copy.deepcopy(cfg), list(overrides) + [
        f"train.max_residues={budget}",
        f"train.max_minutes={minutes if minutes else 'null'}", f"track.aim_repo={aim_repo}",
        f"track.experiment={cfg['name']}"])
    c["name"] = cfg["name"]
    t0 = time.time()
    if data.transform_spec != c["data"].get("transform"):
        data = RunData(c["data"], int(c["seed"]), progress=bool(c["train"]["progress"]))
    trainer = Trainer(c, out / name, run_name=name, data=data)
    params = sum(p.numel() for p in trainer.model.parameters())
    # every point starts the data order afresh (the previous point may have stopped mid-epoch)
    data.sampler.load_state_dict({"epoch": 0, "consumed": 0, "seed": data.sampler.seed})
    state = torch.get_rng_state()  # a transform may draw from it: first batch drawn aside
    first = next(iter(data.train_loader))
    torch.set_rng_state(state)
    flops = flops_per_residue(trainer, first)
    base = reset_peak_memory(trainer.device)
    result = trainer.fit()
    peak = peak_memory_mb(trainer.device) - base
    times = trainer.step_times[2:] or trainer.step_times
    rates = [s["residues"] / s["total"] for s in times]
    last = trainer.recent[-max(len(trainer.recent) // 4, 1):]
    tail = Meter()
    for m in last:
        tail.add(m)
    n = min(len(trainer.recent), len(times))
    sup = sum(m["count"] for m in trainer.recent[-n:]) if n else 0.0
    busy = sum(s["total"] for s in times[-n:]) if n else 0.0
    return {"params": params, "flops_per_residue": flops, "peak_memory_mb": peak,
            "residues_per_s": statistics.median(rates) if rates else float("nan"),
            "loss_residues_per_s": sup / busy if busy else float("nan"),
            "residues_trained": trainer.residues_seen, "steps": trainer.step,
            "train_loss": tail.loss, "train_acc": tail.acc,
            "valid_loss": result.get("valid_loss"), "valid_ppl": result.get("valid_ppl"),
            "valid_acc": result.get("valid_acc"), "minutes": (time.time() - t0) / 60}


def train_size(cfg: dict, out: Path, width: int, depth: int, data: RunData, aim_repo: Path,
               budget: int, minutes: float | None) -> dict:
    name = f"h{width}-d{depth}"
    row = train_point(cfg, out, name, [
        f"model.hidden_dim={width}", f"model.num_encoder_layers={depth}",
        f"model.num_decoder_layers={depth}"], data, aim_repo, budget, minutes)
    return {"size": name, "hidden_dim": width, "layers": depth,
            **{k: v for k, v in row.items() if k in COLUMNS}}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_table(rows: list[dict], out: Path, name: str = "scale_sweep",
                columns: tuple = COLUMNS) -> None:
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    p = [r["params"] for r in rows]
    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        axes[0].plot(p, [r[key] for r in rows], "o-", label=label)
    axes[0].set(xscale="log", xlabel="parameters", ylabel="loss (nats/residue)",
                title="final loss at a fixed residue budget")
    axes[0].legend()
    axes[1].plot([r["flops_per_residue"] for r in rows], [r["residues_per_s"] for r in rows], "o-")
    axes[1].set(xscale="log", yscale="log", xlabel="training FLOPs / residue",
                ylabel="residues / s", title="throughput")
    axes[2].plot(p, [r["peak_memory_mb"] for r in rows], "o-")
    axes[2].set(xscale="log", xlabel="parameters", ylabel="peak memory (MiB)",
                title="peak memory")
    for ax, r in zip([axes[0]] * len(rows), rows):
        ax.annotate(r["size"], (r["params"], r["valid_loss"]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sweep(cfg: dict, out: str | Path) -> list[dict]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sw = cfg["sweep"]
    if sw.get("points"):
        return run_points(cfg, out)
    sizes = sizes_of(sw)
    budget = int(sw["token_budget"])
    cap = sw.get("max_minutes")
    (out / "sweep_config.json").write_text(json.dumps(cfg, indent=1, default=str))
    data = RunData(cfg["data"], int(cfg["seed"]), progress=bool(cfg["train"]["progress"]))
    print(data.describe(), file=sys.stderr)
    rows, t0 = [], time.time()
    bar = tqdm(sizes, desc="scale_sweep", unit="size", disable=not cfg["train"]["progress"])
    for i, (w, d) in enumerate(bar):
        bar.set_postfix(size=f"h{w}-d{d}")
        minutes = None
        if cap:
            minutes = max((float(cap) - (time.time() - t0) / 60) / (len(sizes) - i), 0.05)
        rows.append(train_size(cfg, out, w, d, data, out / "aim", budget, minutes))
        write_table(rows, out)  # a partial table survives an interrupted sweep
        tqdm.write(f"{rows[-1]['size']}: {rows[-1]['params']:,} params, valid loss "
                   f"{rows[-1]['valid_loss']:.3f}, {rows[-1]['residues_per_s']:.0f} residues/s",
                   file=sys.stderr)
    bar.close()
    plot(rows, out / "scale_sweep.png")
    print((out / "scale_sweep.md").read_text())
    print(f"scale_sweep: {out}/scale_sweep.csv, .md, .png; aim up --repo {out / 'aim'}",
          file=sys.stderr)
    return rows


# -- ablations: sweep points that override arbitrary config keys --------------------------------
def points_of(sweep: dict) -> list[tuple[str, dict]]:
    """``[(name, {dotted.key: value})]`` from ``sweep.points``."""
    out = []
    for i, p in enumerate(sweep["points"]):
        sets = dict(p.get("set") or {})
        out.append((str(p.get("name") or f"p{i}"), sets))
    return out


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: lists, dicts, null survive the round trip


def plot_points(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = (("valid_ppl", "validation perplexity"), ("valid_acc", "validation accuracy"),
              ("train_loss", "train loss (supervised residues)"),
              ("residues_per_s", "residues / s"),
              ("loss_residues_per_s", "supervised residues / s"),
              ("peak_memory_mb", "peak memory (MiB)"))
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    names = [r["point"] for r in rows]
    for ax, (key, label) in zip(axes.flat, panels):
        vals = [r[key] if r[key] is not None else float("nan") for r in rows]
        ax.bar(range(len(rows)), vals, color="tab:blue")
        ax.set_xticks(range(len(rows)), names, rotation=30, fontsize=8)
        ax.set_title(label, fontsize=10)
        for i, v in enumerate(vals):
            ax.annotate(_fmt(float(v)), (i, v), ha="center", va="bottom", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_points(cfg: dict, out: Path) -> list[dict]:
    """The ablation form of :func:`run_sweep` (``sweep.points``)."""
    sw = cfg["sweep"]
    name = sw.get("table") or cfg["name"]
    points = points_of(sw)
    keys = list(dict.fromkeys(k for _, sets in points for k in sets))
    columns = ("point", *keys, *POINT_COLUMNS)
    budget, cap = int(sw["token_budget"]), sw.get("max_minutes")
    (out / "sweep_config.json").write_text(json.dumps(cfg, indent=1, default=str))
    data = RunData(cfg["data"], int(cfg["seed"]), progress=bool(cfg["train"]["progress"]))
    print(data.describe(), file=sys.stderr)
    rows, t0 = [], time.time()
    bar = tqdm(points, desc=name, unit="point", disable=not cfg["train"]["progress"])
    for i, (pname, sets) in enumerate(bar):
        bar.set_postfix(point=pname)
        minutes = None
        if cap:
            minutes = max((float(cap) - (time.time() - t0) / 60) / (len(points) - i), 0.05)
        row = train_point(cfg, out, pname, [_override(k, v) for k, v in sets.items()], data,
                          out / "aim", budget, minutes)
        rows.append({"point": pname, **{k: json.dumps(sets.get(k)) if isinstance(
            sets.get(k), (dict, list)) else sets.get(k) for k in keys}, **row})
        write_table(rows, out, name, columns)
        tqdm.write(f"{pname}: valid ppl {row['valid_ppl']:.3f}, acc {row['valid_acc']:.3f}, "
                   f"{row['residues_per_s']:.0f} residues/s, {row['peak_memory_mb']:.0f} MiB",
                   file=sys.stderr)
    bar.close()
    plot_points(rows, out / f"{name}.png", f"{name}: budget {budget:,} training residues a "
                f"point (residues_trained in {name}.md)")
    print((out / f"{name}.md").read_text())
    print(f"{name}: {out}/{name}.csv, .md, .png; aim up --repo {out / 'aim'}", file=sys.stderr)
    return rows
