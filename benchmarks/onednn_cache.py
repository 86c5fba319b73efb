"""bf16 training speed against oneDNN's primitive-cache capacity.

    python -m benchmarks.onednn_cache --json --out benchmarks/results/onednn_cache.json

On a CPU, bf16 matmuls run through oneDNN, which compiles one kernel ("primitive") per tensor
shape and caches ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` of them (oneDNN's default: 1,024).
Padding-free batches change the node and edge counts at every step, so a run needs many more
primitives than that; pyg_mpnn sets the capacity to 8,192 when it is imported
(``pyg_mpnn/__init__.py``) unless the variable is already set.

Each capacity trains the scale_sweep's smallest size (hidden 32, 1 + 1 layers, k = 16,
1,000-residue batches, ``precision: fast``) for ``--steps`` optimizer steps of the embedded
data in a fresh process (the variable is read once per process), tracking off, and reports the
median residues/s of the first and the last 100 steps and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, emit, finished, machine, python_m


def child(steps: int, threads: int) -> dict:
    """One training run in this process; the capacity comes from the environment."""
    import torch

    from pyg_mpnn import sweep
    from pyg_mpnn.train.config import apply_overrides, load_experiment
    from pyg_mpnn.train.trainer import Trainer

    torch.set_num_threads(threads)
    cfg = apply_overrides(
        load_experiment("scale_sweep"),
        sweep.size_overrides(32, 1)
        + [f"train.max_steps={steps}", "train.progress=false", "track.aim=false"],
    )
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out)
        t0 = time.time()
        trainer.fit()
        wall = time.time() - t0
    rates = [s["residues"] / s["total"] for s in trainer.step_times[2:]]
    window = min(100, len(rates))
    return {
        "capacity": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"),
        "precision": trainer.precision,
        "steps": trainer.step,
        "wall_s": wall,
        "residues_per_s_first": statistics.median(rates[:window]),
        "residues_per_s_last": statistics.median(rates[-window:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capacities", default="1024,8192", help="comma-separated")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.steps, a.threads)))
        return {}
    info, runs = machine(a.threads), []
    for cap in a.capacities.split(","):
        env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": cap.strip()}
        cmd = python_m("benchmarks.onednn_cache") + ["--child", "--steps", str(a.steps)]
        cmd += ["--threads", str(a.threads)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"capacity {cap}: the run failed\n{proc.stderr[-2000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not a.json:
            print(runs[-1], file=sys.stderr)
    result = {"machine": finished(info), "size": "h32-d1 (scale_sweep)", "runs": runs}
    return emit(result, a)


if __name__ == "__main__":
    main()
