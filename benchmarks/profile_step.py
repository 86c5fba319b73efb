"""Where a training step spends its time: torch.profiler's operators by self CPU time.

    python -m benchmarks.profile_step --json --residues 5000 --threads 2 \\
        --out benchmarks/results/profile_ours_5k.json
    python -m benchmarks.profile_step --json --residues 5000 --threads 2 --impl original \\
        --out benchmarks/results/profile_original_5k.json

The batch is train_step's (:func:`benchmarks.common.pick_graphs`: consecutive chains of the
length-sorted ``db5.5_train`` set from a seeded start) and so are the models: ``--impl`` names
one of train_step's implementations (default ``ours``; ``original`` is the reference package's
model on its padded batch), width 128, 3 + 3 layers, k = 48, dropout 0.1, noise 0.2 A, train
mode, forward + backward + Adam, fp32 unless ``--bf16``. One warm-up step, then ``--steps`` steps under ``torch.profiler`` (CPU activities, shapes not
recorded); the JSON lists the ``--top`` operators by self CPU time with their share of the
profiled time, and the forward / backward / optimizer split (``record_function`` ranges).
For a whole training run use ``python -m pyg_mpnn.train --exp base --profile``
(docs/profiling.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.common import (
    TRAIN,
    command,
    emit,
    finished,
    machine,
    pick_graphs,
    result_parser,
)
from benchmarks.train_step import build

PHASES = ("forward", "backward", "optimizer")


def profiled_steps(impl, inputs, steps: int, bf16: bool) -> profile:
    """``steps`` training steps of ``impl`` on ``inputs`` under the profiler, phases labelled."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            impl.opt.zero_grad(set_to_none=True)
            with record_function("forward"):
                loss = impl.loss_of(inputs, bf16)
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
    ap = result_parser(__doc__)
    ap.add_argument("--residues", type=int, default=5000, help="residues in the batch")
    ap.add_argument("--steps", type=int, default=1, help="profiled steps")
    ap.add_argument("--top", type=int, default=20, help="operators listed, by self CPU time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--impl", default="ours", help="a train_step implementation (default ours)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--data", type=Path, default=TRAIN)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    info = machine()
    graphs = pick_graphs(a.residues, a.seed, a.data)
    impl = build([a.impl], a.seed)[0]
    inputs = impl.inputs(graphs)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    impl.step(impl.inputs(pick_graphs(1000, a.seed + 1, a.data)), a.bf16)  # warm-up
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    prof = profiled_steps(impl, inputs, a.steps, a.bf16)
    res = {
        "command": command("benchmarks.profile_step", argv),
        "impl": a.impl,
        "residues": sum(g.num_nodes for g in graphs),
        "chains": len(graphs),
        "steps": a.steps,
        "precision": "bf16" if a.bf16 else "fp32",
        "wall_s_per_step": round((time.perf_counter() - t0) / a.steps, 2),
        "warmup_s": round(warm, 2),
        "machine": finished(info),
        **summarize(prof, a.top),
    }
    return emit(res, a, _table)


def _table(res: dict) -> str:
    lines = [f"{res['residues']} residues, {res['wall_s_per_step']} s/step under the profiler"]
    for op in res["top_ops"]:
        lines.append(f"{op['share']:7.1%} {op['self_cpu_s']:8.2f} s  {op['calls']:6d}  {op['op']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
