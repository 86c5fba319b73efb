"""Where a training step of ours spends its time: torch.profiler's operators by self CPU time.

    python benchmarks/profile_step.py --json --residues 5000 --threads 2 \\
        --out benchmarks/results/profile_ours_5k.json

The batch is train_step.py's (``pick_graphs``: consecutive chains of the length-sorted
``db5.5_train`` set from a seeded start) and so is the model (width 128, 3 + 3 layers, k = 48,
dropout 0.1, noise 0.2 A, train mode, forward + backward + Adam, fp32 unless ``--bf16``). One
warm-up step, then ``--steps`` steps under ``torch.profiler`` (CPU activities, shapes not
recorded); the JSON lists the ``--top`` operators by self CPU time with their share of the
profiled time, and the forward / backward / optimizer split (``record_function`` ranges).
For a whole training run use ``python -m pyg_mpnn.train --exp base --profile``
(docs/profiling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch_geometric.data import Batch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_step import TRAIN, _ours_impl, machine, nll, pick_graphs  # noqa: E402

PHASES = ("forward", "backward", "optimizer")


def profiled_steps(impl, batch, steps: int, bf16: bool) -> profile:
    """``steps`` training steps of ``impl`` under the profiler, phases labelled."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            impl.opt.zero_grad(set_to_none=True)
            with record_function("forward"), torch.autocast("cpu", enabled=bf16):
                loss = nll(impl.model(batch), batch.seq, batch.mask)
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                impl.opt.step()
    return prof


def summarize(prof: profile, top: int) -> dict:
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    ops = sorted((e for e in events if e.key not in PHASES), key=lambda e: -e.self_cpu_time_total)
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in PHASES}
    return {
        "profiled_cpu_s": round(total / 1e6, 3),
        "phases_s": {k: round(phases.get(k, 0.0), 3) for k in PHASES},
        "top_ops": [
            {
                "op": e.key,
                "self_cpu_s": round(e.self_cpu_time_total / 1e6, 3),
                "share": round(e.self_cpu_time_total / total, 4),
                "calls": e.count,
            }
            for e in ops[:top]
        ],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residues", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--data", type=Path, default=TRAIN)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    load_start = os.getloadavg()
    graphs = pick_graphs(a.residues, a.seed, a.data)
    batch = Batch.from_data_list(graphs)
    torch.manual_seed(a.seed)
    impl = _ours_impl("ours")
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    impl.step(Batch.from_data_list(pick_graphs(1000, a.seed + 1, a.data)), a.bf16)  # warm-up
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    prof = profiled_steps(impl, batch, a.steps, a.bf16)
    res = {
        "command": "python benchmarks/profile_step.py "
        + shlex.join(sys.argv[1:] if argv is None else list(argv)),
        "residues": batch.num_nodes,
        "chains": len(graphs),
        "steps": a.steps,
        "precision": "bf16" if a.bf16 else "fp32",
        "wall_s_per_step": round((time.perf_counter() - t0) / a.steps, 2),
        "warmup_s": round(warm, 2),
        "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        **summarize(prof, a.top),
    }
    text = json.dumps(res, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n")
    if a.json:
        print(text)
    else:
        print(f"{res['residues']} residues, {res['wall_s_per_step']} s/step under the profiler")
        for op in res["top_ops"]:
            print(f"{op['share']:7.1%} {op['self_cpu_s']:8.2f} s  {op['calls']:6d}  {op['op']}")
    return res


if __name__ == "__main__":
    main()
