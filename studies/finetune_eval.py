"""Before/after table of fine-tunes (docs/finetuning.md): test metrics, TS50, which parts moved.

    .venv/bin/python -m studies.finetune_eval --base original:v_48_020 \\
        --run full=runs/finetune/full --run enc=runs/finetune/frozen_enc \\
        --test ../shared/data/training/db5.5_test.jsonl.gz \\
        --ts50 ../shared/data/benchmarks/ts50.jsonl --json benchmarks/results/finetune_db55.json

For the base weights and each run's ``checkpoints/best.pt`` (best validation loss; ``--which
last`` for the newest step): ``pyg_mpnn.evaluate.evaluate`` (the evaluate CLI's protocol, seed
0) on the test set and on TS50. From each run's Aim repo (``run.json`` names it): the median
per-layer update/weight ratio over the run, i.e. which parts of the model moved. With
``--load-log`` (lines of ``uptime`` output), the 1-minute load averages seen while each run
trained. Prints a Markdown table; ``--json`` also writes everything.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks.common import write_json
from pyg_mpnn.diagnose.series import read_aim
from pyg_mpnn.evaluate import evaluate, iter_records, limit_chains
from pyg_mpnn.nn.weights import load_model
from pyg_mpnn.track.layers import parameter_blocks

METRICS = ("perplexity", "accuracy", "median_recovery")


def _eval(weights: str, sets: dict) -> dict:
    model = load_model(weights)
    return {name: evaluate(model, recs, seed=0, progress=False) for name, recs in sets.items()}


def update_ratios(run: Path) -> dict:
    """``{layer: median update/weight ratio}`` from the run's Aim repo."""
    info = json.loads((run / "run.json").read_text())
    rs = read_aim(info["aim_repo"], info["aim_run_hash"])
    out = {}
    for layer, (_, vals) in rs.layer_series("update", "update_ratio").items():
        vals = [v for v in vals if v == v]
        if vals:
            out[layer] = statistics.median(vals)
    return out  # layer_series: in the model's block order


def drift(weights: str, base: str) -> dict:
    """``{layer: ||theta - theta_base|| / ||theta_base||}``: how far each layer (block of the
    model's ``blocks()``) ended up."""
    model, ref = load_model(weights), dict(load_model(base).named_parameters())
    out = {}
    for layer, (_, named) in parameter_blocks(model).items():
        num = sum(float((p.detach() - ref[n].detach()).pow(2).sum()) for n, p in named)
        den = sum(float(ref[n].detach().pow(2).sum()) for n, _ in named)
        out[layer] = (num / den) ** 0.5
    return out


def run_facts(run: Path, which: str) -> dict:
    steps = sorted((run / "checkpoints").glob("step_*.pt"))
    last = torch.load(steps[-1], map_location="cpu", weights_only=False)
    ckpt = run / "checkpoints" / "best.pt" if which == "best" else steps[-1]
    chosen = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = last["train_config"]
    mtime = {p: p.stat().st_mtime for p in steps}
    return {
        "weights": str(ckpt),
        "chosen_step": chosen["step"],
        "steps": last["step"],
        "minutes": last.get("elapsed", 0.0) / 60,
        "freeze": cfg["model"].get("freeze"),
        "residues_seen": last.get("residues_seen"),
        "best_valid_loss": last.get("best"),
        "end": max(mtime.values()),
        "start": max(mtime.values()) - last.get("elapsed", 0.0),
    }  # run.json: rewritten on resume


def load_during(log: Path, start: float, end: float) -> list[float]:
    """1-minute load averages of ``uptime`` lines (prefixed by an epoch time) in a window."""
    out = []
    for line in log.read_text().splitlines():
        m = re.match(r"(\d+)\s.*load average:\s*([\d.]+)", line)
        if m and start <= int(m.group(1)) <= end:
            out.append(float(m.group(2)))
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="original:v_48_020")
    p.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER")
    p.add_argument("--test", required=True)
    p.add_argument("--ts50", required=True)
    p.add_argument(
        "--skip-base",
        action="store_true",
        help="do not evaluate --base (e.g. done with the evaluate CLI); it is still "
        "the reference for the per-layer distance",
    )
    p.add_argument(
        "--max-chains",
        type=int,
        default=None,
        help="only the first N chains of --test (TS50 is always whole)",
    )
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.add_argument("--load-log", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def run_row(folder: Path, a, sets: dict) -> dict:
    """One fine-tune: its facts, which layers moved (Aim, and against ``--base``), the load
    it trained under (``--load-log``) and its metrics on ``sets``."""
    facts = run_facts(folder, a.which)
    row = {**facts, "update_ratio": update_ratios(folder), "drift": drift(facts["weights"], a.base)}
    if a.load_log:
        row["load"] = load_during(a.load_log, facts["start"], facts["end"])
    row.update(_eval(facts["weights"], sets))
    return row


def table(rows: dict) -> str:
    """The Markdown before/after table: test and TS50 metrics per weights."""
    head = (
        "| weights | steps (chosen) | min | test ppl | test acc % | test median rec. % | "
        "TS50 ppl | TS50 acc % | TS50 median rec. % |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in rows.items():
        cells = [
            name,
            f"{r.get('steps', 0)} ({r.get('chosen_step', '-')})",
            f"{r.get('minutes', 0):.1f}",
        ]
        for s in ("test", "ts50"):
            cells += [
                f"{r[s]['perplexity']:.3f}",
                f"{r[s]['accuracy']:.1f}",
                f"{r[s]['median_recovery']:.1f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def movement(name: str, r: dict) -> str:
    """Which layers of run ``name`` moved (update ratios, distance from the base) and the
    load it trained under."""
    lines = []
    if "update_ratio" in r:
        lines.append(
            f"\n{name}: median update/weight ratio per step and layer (Aim): "
            + ", ".join(f"{k} {v:.1e}" for k, v in r["update_ratio"].items())
        )
        lines.append(
            f"{name}: ||theta - theta_base|| / ||theta_base|| per layer ({r['weights']}): "
            + ", ".join(f"{k} {v:.1e}" for k, v in r["drift"].items())
        )
    if r.get("load"):
        lines.append(
            f"{name}: 1-min load average while training: median "
            f"{statistics.median(r['load']):.2f}, range {min(r['load']):.2f}-"
            f"{max(r['load']):.2f} ({len(r['load'])} samples)"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    sets = {
        "test": list(limit_chains(iter_records(a.test), a.max_chains)),
        "ts50": list(iter_records(a.ts50)),
    }
    t0 = time.time()
    rows = {} if a.skip_base else {"before": {"weights": a.base, **_eval(a.base, sets)}}
    for item in a.run:
        name, folder = item.split("=", 1)
        rows[name] = run_row(Path(folder), a, sets)
        if a.json:  # after every model: a partial result survives a stop
            write_json(a.json, json.dumps(rows, indent=1, default=str))
    print(table(rows))
    for name, r in rows.items():
        if text := movement(name, r):
            print(text)
    print(
        f"\nevaluation took {time.time() - t0:.0f} s at {a.threads} thread(s), "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        file=sys.stderr,
    )
    if a.json:
        write_json(a.json, json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
