"""A training run as a user starts it, kept as a result: ``python -m pyg_mpnn.train`` in a
child process writing to a scratch folder, its ``metrics.csv`` read back and summarised.

    python -m benchmarks.train_run --json --exp base_cpu30 --data ../shared/data/structures \\
        --out benchmarks/results/base_cpu30.json --figures docs/figures --prefix base_cpu30

The result holds the command the child ran, the precision ``train.precision`` resolves to on
this machine, steps, training minutes (the run's own wall time, data preparation not counted),
residues seen, the validation curve (step, wall time, perplexity, accuracy), the final and the
best validation perplexity (with its step), the training perplexity at the end, the median
residues/s and step time over logged steps, the peak memory the run logged and the child's peak
resident set size. With ``--figures`` the run's curves and per-layer norms are drawn there
(``python -m pyg_mpnn.track.plot``); with ``--keep DIR`` the run folder stays at ``DIR`` for
``pyg_mpnn.diagnose`` and ``studies.layer_norms --from-run``. Run it on an otherwise idle machine: the run is timed.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import (
    REPO,
    command,
    emit,
    finished,
    machine,
    python_m,
    result_parser,
    shown_path,
)
from pyg_mpnn.track.metrics import read_metrics
from pyg_mpnn.train.config import ConfigError, load_experiment
from pyg_mpnn.train.precision import pick_precision


def series(rows: list[dict], name: str, subset: str = "") -> list[tuple[int, float, float]]:
    """``(step, wall_s, value)`` of one scalar, in step order, one per step (the last written:
    an epoch that ends on a validation step logs it again); layer rows excluded."""
    by_step = {
        r["step"]: (r["step"], r["wall_s"], r["value"])
        for r in rows
        if r["name"] == name and r["subset"] == subset and not r["layer"]
    }
    return sorted(by_step.values())


def summarise(rows: list[dict]) -> dict:
    """The run's facts from its ``metrics.csv`` rows."""
    ppl, acc = (
        series(rows, "ppl", "valid"),
        dict((s, v) for s, _, v in series(rows, "accuracy", "valid")),
    )
    if not ppl:
        raise SystemExit(
            "benchmarks.train_run: the run validated nowhere (no valid ppl in metrics.csv)"
        )
    best = min(ppl, key=lambda p: p[2])
    rates = [v for _, _, v in series(rows, "residues_per_s")]
    step_s = [v for _, _, v in series(rows, "step_time_s")]
    memory = [v for _, _, v in series(rows, "peak_memory_mb")]
    train_ppl = series(rows, "ppl", "train")
    return {
        "steps": max(r["step"] for r in rows),
        "training_minutes": max(r["wall_s"] for r in rows) / 60,
        "valid": [
            {"step": s, "wall_s": w, "valid_ppl": v, "valid_acc": acc.get(s)} for s, w, v in ppl
        ],
        "final_valid_ppl": ppl[-1][2],
        "final_valid_acc": acc.get(ppl[-1][0]),
        "best_valid_ppl": best[2],
        "best_valid_step": best[0],
        "final_train_ppl": train_ppl[-1][2] if train_ppl else None,
        "median_residues_per_s": statistics.median(rates) if rates else None,
        "median_step_s": statistics.median(step_s) if step_s else None,
        "peak_memory_mb": max(memory) if memory else None,
    }


def parse_args(argv=None):
    ap = result_parser(__doc__)
    ap.add_argument("--exp", required=True, help="the experiment (experiments/NAME.yaml)")
    ap.add_argument("--data", default=None, help="what the run trains on (its --data)")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE, as the CLI's --set")
    ap.add_argument("--figures", default=None, help="also draw the run's figures here")
    ap.add_argument("--prefix", default=None, help="the figures' file prefix (default: --exp)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument(
        "--keep", default=None, help="train into this run folder and keep it (default: scratch)"
    )
    a = ap.parse_args(argv)
    if a.keep and Path(a.keep).exists():
        print(f"benchmarks.train_run: --keep {a.keep}: already exists", file=sys.stderr)
        raise SystemExit(2)
    return a


def main(argv=None) -> dict:
    a = parse_args(argv)
    try:  # a bad name or key: one line, before anything runs
        cfg = load_experiment(a.exp, a.set)
    except ConfigError as e:
        print(f"benchmarks.train_run: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    info, t0 = machine(cfg.train.threads), time.time()
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        run = Path(a.keep).resolve() if a.keep else Path(tmp) / a.exp
        args = ["--exp", a.exp, "--out", str(run)]
        args += ["--data", str(Path(a.data).resolve())] if a.data else []
        args += [x for kv in a.set for x in ("--set", kv)]
        child = subprocess.run([*python_m("pyg_mpnn.train"), *args], cwd=REPO)
        if child.returncode != 0:
            raise SystemExit(f"benchmarks.train_run: the run exited {child.returncode}")
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        facts = summarise(read_metrics(run))
        if a.figures:
            figures = str(Path(a.figures).resolve())
            plot = [*python_m("pyg_mpnn.track.plot"), str(run), "--out", figures]
            subprocess.run([*plot, "--prefix", a.prefix or a.exp], cwd=REPO, check=True)
    shown = {"--out": lambda x: shown_path(x) if a.keep else "RUN", "--data": shown_path}
    shown_args = [shown.get(prev, str)(x) for prev, x in zip([None, *args], args)]
    result = {
        "machine": finished(info),
        "command": command("benchmarks.train_run", argv),
        "run_command": "python -m pyg_mpnn.train " + " ".join(shown_args),
        "experiment": a.exp,
        "overrides": a.set,
        "precision": pick_precision(cfg.train.precision, torch.device("cpu")),
        "child_peak_rss_mb": peak_rss_mb,
        "wall_minutes_total": (time.time() - t0) / 60,
        **facts,
    }
    return emit(result, a, lambda r: json.dumps({k: v for k, v in r.items() if k != "valid"}))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
