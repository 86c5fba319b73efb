"""The sizes form of the sweep (``sweep.sizes`` or ``widths`` x ``depths``): every size timed,
the FLOP budgets fitted to ``sweep.max_minutes``, one run per size (see :mod:`pyg_mpnn.sweep`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from pyg_mpnn.atomic import atomic_write_text
from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.sweep.points import run_points
from pyg_mpnn.sweep.report import plot_sizes, write_size_report
from pyg_mpnn.sweep.run import first_batches, time_size, train_point
from pyg_mpnn.train.config import Config, SweepConfig
from pyg_mpnn.train.data import RunData


def sizes_of(sweep: SweepConfig) -> list[tuple[int, int]]:
    if sweep.sizes:
        return [(w, d) for w, d in sweep.sizes]
    return [(w, d) for w in sweep.widths for d in sweep.depths]


def size_overrides(width: int, depth: int) -> list[str]:
    return [
        f"model.hidden_dim={width}",
        f"model.num_encoder_layers={depth}",
        f"model.num_decoder_layers={depth}",
    ]


# -- the sizes form ----------------------------------------------------------------------------
def _runs_of(cfg: Config) -> list[dict]:
    """Every run of the sweep: each size with the config's seed, each replicate right after its
    size (the kernels oneDNN compiled for those shapes are still cached: run last, it trained
    1.3x slower)."""
    sw, seed = cfg.sweep, cfg.seed
    runs = [{"size": f"h{w}-d{d}", "width": w, "depth": d, "seed": seed} for w, d in sizes_of(sw)]
    for rep in sw.replicates:
        w, d = rep["size"]
        s = seed + 1 if rep.get("seed") is None else rep["seed"]
        name = f"h{w}-d{d}"
        mine = [i + 1 for i, r in enumerate(runs) if name in (r["size"], r.get("replicate_of"))]
        at = max(mine, default=len(runs))
        run = {"size": f"{name}-s{s}", "width": w, "depth": d, "seed": s}
        runs.insert(at, {**run, "replicate_of": name})
    return runs


def plan(cfg: Config, data: RunData, runs: list[dict]) -> tuple[list[float], float, dict]:
    """Time every run's size, then the FLOP budgets (scaled to fit ``max_minutes``)."""
    sw = cfg.sweep
    batches = first_batches(data, 6)
    timings = {}
    for run in tqdm(runs, desc="timing sizes", unit="size", disable=not cfg.train.progress):
        if run["size"] in timings or run.get("replicate_of") in timings:
            timings[run["size"]] = timings.get(run.get("replicate_of"), timings.get(run["size"]))
            continue
        c = cfg.override(size_overrides(run["width"], run["depth"]))
        timings[run["size"]] = time_size(c, run["size"], batches, data)
    budgets, scale = sweep_plan.fit_budgets(
        sw.flop_budgets, list(timings.values()), sw.max_minutes, overhead_s=sw.overhead_s
    )
    estimate = sweep_plan.estimate_minutes(list(timings.values()), budgets[-1], sw.overhead_s)
    if scale < 1:
        tqdm.write(
            f"scale_sweep: WARNING the budgets {sw.flop_budgets} would take longer "
            f"than max_minutes={sw.max_minutes}: EVERY budget is scaled by "
            f"{scale:.3f} (all sizes keep equal compute); now ~{estimate:.1f} min",
            file=sys.stderr,
        )
    else:
        tqdm.write(
            f"scale_sweep: estimated {estimate:.1f} min for {len(runs)} runs", file=sys.stderr
        )
    return budgets, scale, timings


def run_sweep(cfg: Config, out: str | Path) -> list[dict]:
    """Run every size (or ablation point) of ``cfg.sweep`` (its keys were checked with the
    config: :class:`~pyg_mpnn.train.config.SweepConfig`); the table's rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sw = cfg.sweep
    if sw.points:
        return run_points(cfg, out)
    data = RunData(cfg.data, cfg.seed, progress=cfg.train.progress, backbone=cfg.model.backbone)
    atomic_write_text(out / "sweep_config.json", json.dumps(cfg.to_dict(), indent=1, default=str))
    print(data.describe(), file=sys.stderr)
    runs = _runs_of(cfg)
    if sw.flop_budgets:
        budgets, scale, timings = plan(cfg, data, runs)
    else:  # the equal-residue form: one budget in residues
        budgets, scale, timings = [], 1.0, {}
    curve = [f * budgets[-1] for f in sw.curve_flops or []] if budgets else []
    rows, results, t0 = [], [], time.time()
    bar = tqdm(runs, desc="scale_sweep", unit="size", disable=not cfg.train.progress)
    for run in bar:
        bar.set_postfix(size=run["size"])
        if budgets:
            fpr = timings[run["size"]].flops_per_residue
            marks = [sweep_plan.residue_budget(b, fpr) for b in sorted(set(budgets + curve))]
            extra = [f"train.valid_at_residues={json.dumps(marks)}"]
            budget = marks[-1]
        else:
            extra, budget = [], sw.token_budget
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
