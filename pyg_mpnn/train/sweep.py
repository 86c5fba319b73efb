"""scale_sweep: a ladder of model sizes compared at equal training compute (iso-FLOP).

``sweep`` config keys (sizes form): ``sizes`` (list of ``[hidden_dim, layers]``; layers =
encoder = decoder depth) or ``widths`` x ``depths``; ``flop_budgets`` (training FLOPs per size:
a size's residue budget is the budget divided by its FLOPs per residue, so all sizes of one
budget spent the same compute); ``curve_flops`` (extra validation points along each run, as
fractions of the largest budget, for the loss-vs-FLOPs plot); ``replicate`` (``{size: [w, d],
seed: 1}``: that size again with another seed, so the table can set the gaps between sizes
against the seed-to-seed spread); ``max_minutes`` (the whole sweep's time: a short timing of
every size estimates it first, and when it would be passed, *every* budget shrinks by one
factor, said loudly: budgets are never cut unevenly). ``token_budget`` (residues) replaces
``flop_budgets`` for a plain equal-residue sweep.

Each size is one run that trains to the largest budget and is validated as it crosses each
budget (:mod:`pyg_mpnn.train.sweep_plan` has the arithmetic and why that is fair under Noam).

Outputs in the sweep folder: ``<size>/`` run folders (checkpoints, metrics.csv), one Aim repo
``aim/`` with one run per size (experiment = the sweep's name, run name = the size),
``scale_sweep.csv`` (one row per size and budget), ``scale_sweep.md`` (the table, the
compute-optimal size of each budget, the seed spread against the size gap, the power-law fit),
``scale_sweep.json`` (all of it plus every validation point) and ``scale_sweep.png``.

Ablations use the same machinery with ``sweep.points`` instead of sizes: a list of
``{name: ..., set: {dotted.key: value, ...}}``, each point a run of the experiment's config with
those keys overridden (any key of base.yaml: ``model.k_neighbors``, ``model.num_encoder_layers``,
``data.transform``...). Their table (``<sweep.table>.csv/.md/.png``, default: the experiment's
name) has a ``point`` column, one column per overridden key, then the columns below plus
``loss_residues_per_s`` (supervised residues per second of step time: differs from
``residues_per_s`` when a transform such as ``spatial_crop`` supervises a subset). With
``sweep.flop_budget`` each point trains for that many FLOPs (iso-FLOP ablation) instead of
``token_budget`` residues.

Columns: parameters; FLOPs per residue (forward + backward of one training batch, counted by
``torch.utils.flop_counter.FlopCounterMode``, divided by its residues); peak memory (what
training that size added on top of the process before it: CUDA peak allocated, CPU peak
resident set size after ``malloc_trim``); residues/s (median over steps after the first two);
final train loss/accuracy (residue-weighted over the last quarter of steps); valid
loss/perplexity/accuracy.
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

from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.train import sweep_plan
from pyg_mpnn.train.config import apply_overrides
from pyg_mpnn.train.data import RunData
from pyg_mpnn.train.finetune import model_kwargs
from pyg_mpnn.train.loss import Meter, supervised_mask, training_loss
from pyg_mpnn.train.precision import (
    autocast,
    peak_memory_mb,
    pick_device,
    pick_precision,
    reset_peak_memory,
)
from pyg_mpnn.train.sweep_report import plot_sizes, write_size_report

POINT_COLUMNS = (
    "params",
    "flops_per_residue",
    "peak_memory_mb",
    "residues_per_s",
    "loss_residues_per_s",
    "residues_trained",
    "steps",
    "train_loss",
    "train_acc",
    "valid_loss",
    "valid_ppl",
    "valid_acc",
    "minutes",
)


def sizes_of(sweep: dict) -> list[tuple[int, int]]:
    if sweep.get("sizes"):
        return [(int(w), int(d)) for w, d in sweep["sizes"]]
    return [(int(w), int(d)) for w in sweep["widths"] for d in sweep["depths"]]


def size_overrides(width: int, depth: int) -> list[str]:
    return [
        f"model.hidden_dim={width}",
        f"model.num_encoder_layers={depth}",
        f"model.num_decoder_layers={depth}",
    ]


def _loss_of(model, batch, lo: dict, precision: str, device):
    with autocast(precision, device):
        log_probs = model(batch)
    return training_loss(
        log_probs,
        batch.seq,
        supervised_mask(batch),
        lo["label_smoothing"],
        lo["normalize"],
        lo["tokens"],
    )


def count_flops_per_residue(model, batch, cfg: dict, precision: str, device) -> float:
    """Forward + backward FLOPs of one training batch per residue (no optimizer step)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = batch.to(device)
    state = torch.get_rng_state()
    with FlopCounterMode(display=False) as counter:
        _loss_of(model, batch, cfg["loss"], precision, device).backward()
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(state)  # measuring must not change the training stream
    return counter.get_total_flops() / batch.num_nodes


def flops_per_residue(trainer, batch) -> float:
    return count_flops_per_residue(
        trainer.model, batch, trainer.cfg, trainer.precision, trainer.device
    )


def first_batches(data: RunData, n: int) -> list:
    """The first ``n`` training batches of epoch 0, drawn aside (the RNG is restored)."""
    data.sampler.load_state_dict({"epoch": 0, "consumed": 0, "seed": data.sampler.seed})
    state, out = torch.get_rng_state(), []
    for batch in data.train_loader:
        out.append(batch)
        if len(out) == n:
            break
    torch.set_rng_state(state)
    return out


def time_size(cfg: dict, name: str, batches: list) -> sweep_plan.SizeTiming:
    """FLOPs per residue and residues/s of one size from throw-away training steps: one untimed
    pass over ``batches``, then a timed one. The first pass builds the kernels of those shapes
    (oneDNN compiles one per shape under bf16, ~25 % of a cold step), as a long run has done for
    almost every step; timing cold steps made the plan pessimistic by that much."""
    device = pick_device(cfg["train"]["device"])
    precision = pick_precision(cfg["train"]["precision"], device)
    state = torch.get_rng_state()
    model = ProteinMPNN(**model_kwargs(cfg["model"])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    fpr = count_flops_per_residue(model, batches[0], cfg, precision, device)
    seconds, residues = 0.0, 0
    for timed in (False, True):
        for batch in batches:
            batch = batch.to(device)
            t0 = time.perf_counter()
            _loss_of(model, batch, cfg["loss"], precision, device).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if timed:
                seconds += time.perf_counter() - t0
                residues += batch.num_nodes
    torch.set_rng_state(state)
    return sweep_plan.SizeTiming(name, fpr, residues / max(seconds, 1e-9))


def train_point(
    cfg: dict,
    out: Path,
    name: str,
    overrides: list[str],
    data: RunData,
    aim_repo: Path,
    budget: int | None,
    minutes: float | None,
    flop_budget: float | None = None,
) -> dict:
    """Train ``cfg`` with ``overrides`` for ``budget`` residues (or ``flop_budget`` FLOPs) as
    run ``name``; its metrics (and ``history``: the validations along the way)."""
    from pyg_mpnn.train.trainer import Trainer

    c = apply_overrides(
        copy.deepcopy(cfg),
        list(overrides)
        + [
            f"train.max_residues={budget if budget else 'null'}",
            f"train.max_minutes={minutes if minutes else 'null'}",
            f"track.aim_repo={aim_repo}",
            f"track.experiment={cfg['name']}",
        ],
    )
    c["name"] = cfg["name"]
    t0 = time.time()
    if data.transform_spec != c["data"].get("transform") or data.seed != int(c["seed"]):
        data = RunData(c["data"], int(c["seed"]), progress=bool(c["train"]["progress"]))
    trainer = Trainer(c, out / name, run_name=name, data=data)
    params = sum(p.numel() for p in trainer.model.parameters())
    # every point starts the data order afresh (the previous point may have stopped mid-epoch)
    first = first_batches(data, 1)[0]
    data.sampler.load_state_dict({"epoch": 0, "consumed": 0, "seed": data.sampler.seed})
    flops = flops_per_residue(trainer, first)
    if flop_budget:
        trainer.cfg["train"]["max_residues"] = sweep_plan.residue_budget(flop_budget, flops)
    base = reset_peak_memory(trainer.device)
    result = trainer.fit()
    peak = peak_memory_mb(trainer.device) - base
    times = trainer.step_times[2:] or trainer.step_times
    rates = [s["residues"] / s["total"] for s in times]
    last = trainer.recent[-max(len(trainer.recent) // 4, 1) :]
    tail = Meter()
    for m in last:
        tail.add(m)
    n = min(len(trainer.recent), len(times))
    sup = sum(m["count"] for m in trainer.recent[-n:]) if n else 0.0
    busy = sum(s["total"] for s in times[-n:]) if n else 0.0
    return {
        "params": params,
        "flops_per_residue": flops,
        "peak_memory_mb": peak,
        "residues_per_s": statistics.median(rates) if rates else float("nan"),
        "loss_residues_per_s": sup / busy if busy else float("nan"),
        "residues_trained": trainer.residues_seen,
        "steps": trainer.step,
        "train_loss": tail.loss,
        "train_acc": tail.acc,
        "valid_loss": result.get("valid_loss"),
        "valid_ppl": result.get("valid_ppl"),
        "valid_acc": result.get("valid_acc"),
        "minutes": (time.time() - t0) / 60,
        "history": trainer.valid_history,
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_table(rows: list[dict], out: Path, name: str, columns: tuple) -> None:
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")


# -- the sizes form ----------------------------------------------------------------------------
def _runs_of(cfg: dict) -> list[dict]:
    """Every run of the sweep: each size with the config's seed, the replicate right after its
    size (the kernels oneDNN compiled for those shapes are still cached: run last, it trained
    1.3x slower)."""
    sw, seed = cfg["sweep"], int(cfg["seed"])
    runs = [{"size": f"h{w}-d{d}", "width": w, "depth": d, "seed": seed} for w, d in sizes_of(sw)]
    rep = sw.get("replicate")
    if rep:
        w, d = (int(x) for x in rep["size"])
        s = int(rep.get("seed", seed + 1))
        at = next((i + 1 for i, r in enumerate(runs) if r["size"] == f"h{w}-d{d}"), len(runs))
        runs.insert(
            at,
            {
                "size": f"h{w}-d{d}-s{s}",
                "width": w,
                "depth": d,
                "seed": s,
                "replicate_of": f"h{w}-d{d}",
            },
        )
    return runs


def plan(cfg: dict, data: RunData, runs: list[dict]) -> tuple[list[float], float, dict]:
    """Time every run's size, then the FLOP budgets (scaled to fit ``max_minutes``)."""
    sw = cfg["sweep"]
    batches = first_batches(data, 6)
    timings = {}
    for run in tqdm(runs, desc="timing sizes", unit="size", disable=not cfg["train"]["progress"]):
        if run["size"] in timings or run.get("replicate_of") in timings:
            timings[run["size"]] = timings.get(run.get("replicate_of"), timings.get(run["size"]))
            continue
        c = apply_overrides(copy.deepcopy(cfg), size_overrides(run["width"], run["depth"]))
        timings[run["size"]] = time_size(c, run["size"], batches)
    budgets, scale = sweep_plan.fit_budgets(
        sw["flop_budgets"],
        list(timings.values()),
        sw.get("max_minutes"),
        overhead_s=float(sw.get("overhead_s", 20)),
    )
    estimate = sweep_plan.estimate_minutes(
        list(timings.values()), budgets[-1], float(sw.get("overhead_s", 20))
    )
    if scale < 1:
        tqdm.write(
            f"scale_sweep: WARNING the budgets {sw['flop_budgets']} would take longer "
            f"than max_minutes={sw['max_minutes']}: EVERY budget is scaled by "
            f"{scale:.3f} (all sizes keep equal compute); now ~{estimate:.1f} min",
            file=sys.stderr,
        )
    else:
        tqdm.write(
            f"scale_sweep: estimated {estimate:.1f} min for {len(runs)} runs", file=sys.stderr
        )
    return budgets, scale, timings


def run_sweep(cfg: dict, out: str | Path) -> list[dict]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sw = cfg["sweep"]
    if sw.get("points"):
        return run_points(cfg, out)
    if not sw.get("flop_budgets"):  # the equal-residue form: one budget in residues
        sw = {**sw, "flop_budgets": None}
    (out / "sweep_config.json").write_text(json.dumps(cfg, indent=1, default=str))
    data = RunData(cfg["data"], int(cfg["seed"]), progress=bool(cfg["train"]["progress"]))
    print(data.describe(), file=sys.stderr)
    runs = _runs_of(cfg)
    if sw["flop_budgets"]:
        budgets, scale, timings = plan(cfg, data, runs)
    else:
        budgets, scale, timings = [], 1.0, {}
    curve = [float(f) * budgets[-1] for f in sw.get("curve_flops") or []] if budgets else []
    rows, results, t0 = [], [], time.time()
    bar = tqdm(runs, desc="scale_sweep", unit="size", disable=not cfg["train"]["progress"])
    for run in bar:
        bar.set_postfix(size=run["size"])
        if budgets:
            fpr = timings[run["size"]].flops_per_residue
            marks = [sweep_plan.residue_budget(b, fpr) for b in sorted(set(budgets + curve))]
            extra = [f"train.valid_at_residues={json.dumps(marks)}"]
            budget = marks[-1]
        else:
            extra, budget = [], int(sw["token_budget"])
        result = train_point(
            cfg,
            out,
            run["size"],
            size_overrides(run["width"], run["depth"]) + [f"seed={run['seed']}"] + extra,
            data,
            out / "aim",
            budget,
            None,
        )
        results.append({**run, **{k: v for k, v in result.items()}})
        rows = write_size_report(results, budgets, scale, out, cfg)
        r = results[-1]
        tqdm.write(
            f"{run['size']}: {r['params']:,} params, valid ppl {r['valid_ppl']:.3f} "
            f"after {r['residues_trained']:,} residues, {r['residues_per_s']:.0f} "
            f"residues/s, {r['minutes']:.1f} min",
            file=sys.stderr,
        )
    bar.close()
    plot_sizes(results, budgets, out / "scale_sweep.png")
    print((out / "scale_sweep.md").read_text())
    print(
        f"scale_sweep: {(time.time() - t0) / 60:.1f} min; {out}/scale_sweep.csv, .md, .json, "
        f".png; aim up --repo {out / 'aim'}",
        file=sys.stderr,
    )
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

    panels = (
        ("valid_ppl", "validation perplexity"),
        ("valid_acc", "validation accuracy"),
        ("train_loss", "train loss (supervised residues)"),
        ("residues_per_s", "residues / s"),
        ("loss_residues_per_s", "supervised residues / s"),
        ("peak_memory_mb", "peak memory (MiB)"),
    )
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
    flop_budget = float(sw["flop_budget"]) if sw.get("flop_budget") else None
    budget = None if flop_budget else int(sw["token_budget"])
    cap = sw.get("max_minutes")
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
        row = train_point(
            cfg,
            out,
            pname,
            [_override(k, v) for k, v in sets.items()],
            data,
            out / "aim",
            budget,
            minutes,
            flop_budget,
        )
        rows.append(
            {
                "point": pname,
                **{
                    k: json.dumps(sets.get(k))
                    if isinstance(sets.get(k), (dict, list))
                    else sets.get(k)
                    for k in keys
                },
                **row,
            }
        )
        write_table(rows, out, name, columns)
        tqdm.write(
            f"{pname}: valid ppl {row['valid_ppl']:.3f}, acc {row['valid_acc']:.3f}, "
            f"{row['residues_per_s']:.0f} residues/s, {row['peak_memory_mb']:.0f} MiB",
            file=sys.stderr,
        )
    bar.close()
    what = f"{flop_budget:.3g} training FLOPs" if flop_budget else f"{budget:,} training residues"
    plot_points(
        rows, out / f"{name}.png", f"{name}: budget {what} a point (residues_trained in {name}.md)"
    )
    print((out / f"{name}.md").read_text())
    print(f"{name}: {out}/{name}.csv, .md, .png; aim up --repo {out / 'aim'}", file=sys.stderr)
    return rows
