"""Where the original's training step spends its time, beside ours on the same batches.

    python -m benchmarks.profile_original --json --out benchmarks/results/profile_original.json
    python -m benchmarks.profile_original --tiny --steps 2     # seconds: the CI check

The original arm is ``time_to_quality``'s (the ``proteinmpnn`` package's model with every
encoder and decoder layer under ``torch.utils.checkpoint``, as the original's
``training/model_utils.py``; length-sorted padded batches of ``--tokens`` padded tokens, as its
``StructureLoader``; the smoothed loss summed and divided by 2,000; Adam), timed phase by phase
on ``--steps`` batches of db5.5 train (the shared data; ``--tiny``: the embedded data):

* ``featurize``: the batch's padded tensors built from its proteins, as the original's
  ``featurize`` does in the training process at every step
  (:func:`pyg_mpnn.nn.reference.reference_batch_inputs`);
* ``forward`` / ``loss`` / ``backward`` / ``optimizer``: ``perf_counter`` around each (every phase
  is also a ``torch.profiler`` range);
* **recomputation**: the same batches through the same model *without* checkpointing (same
  initial weights): its backward is shorter by the time checkpointing spends re-running the
  layers' forward;
* **padding**: the share of the padded ``B x L_max`` tokens that are padding, which the dense
  model computes (node and edge tensors) and then masks;
* ``torch.profiler`` over ``--profile-steps`` of them: the operators by self CPU time.

Ours runs the same proteins per batch (:class:`pyg_mpnn.nn.model.ProteinMPNN`, split message
weights, a padding-free PyG ``Batch``, no checkpointing, fp32 and bf16 autocast), phases
``batch`` (``Batch.from_data_list``) / ``forward`` / ``loss`` / ``backward`` / ``optimizer``.

What the original's loop has that a single process cannot time here is stated, not measured,
in the JSON's ``not_timed``: its ``ProcessPoolExecutor`` reloading the next epochs' PDB
clusters (``get_pdbs``; its start-up cost is ``benchmarks.data_scale``'s) and its
``GradScaler`` (CUDA mixed precision only; a CPU run has none, so no skipped steps).
Run on an otherwise idle machine: times are wall-clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch_geometric.data import Batch

from benchmarks.common import (
    CPU,
    HIDDEN,
    command,
    emit,
    finished,
    load_records,
    machine,
    nll,
    original_batches,
    original_loss,
    reference_forward,
    reference_model,
)
from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.reference import reference_batch_inputs
from pyg_mpnn.train.precision import peak_memory_mb, reset_peak_memory

ORIGINAL_PHASES = ("featurize", "forward", "loss", "backward", "optimizer")
OURS_PHASES = ("batch", "forward", "loss", "backward", "optimizer")


class Phases:
    """Wall seconds per named phase of one step, each phase also a profiler range."""

    def __init__(self, names: tuple[str, ...]):
        self.seconds = dict.fromkeys(names, 0.0)

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        with record_function(name):
            yield
        self.seconds[name] += time.perf_counter() - t


def original_step(model, opt, graphs: list) -> tuple[dict, dict]:
    """One step of the original's loop on ``graphs``: phase seconds and padding counts."""
    ph = Phases(ORIGINAL_PHASES)
    with ph("featurize"):
        d = reference_batch_inputs(graphs)
    opt.zero_grad(set_to_none=True)
    with ph("forward"):
        log_probs = reference_forward(model, d)
    with ph("loss"):
        loss = original_loss(log_probs, d)
    with ph("backward"):
        loss.backward()
    with ph("optimizer"):
        opt.step()
    real = int(d["mask"].sum())
    return ph.seconds, {"residues": real, "padded_tokens": int(d["mask"].numel())}


def ours_step(model, opt, graphs: list, bf16: bool) -> dict:
    """One step of ours on the same proteins (padding-free batch), phase seconds."""
    ph = Phases(OURS_PHASES)
    with ph("batch"):
        b = Batch.from_data_list(graphs)
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with ph("forward"):
            log_probs = model(b)
        with ph("loss"):
            loss = nll(log_probs, b.seq, b.mask)
    with ph("backward"):
        loss.backward()
    with ph("optimizer"):
        opt.step()
    return ph.seconds


def summarise(steps: list[dict], residues: int) -> dict:
    """Mean seconds per phase over the steps, each phase's share, residues/s."""
    names = list(steps[0])
    mean = {k: statistics.fmean(s[k] for s in steps) for k in names}
    total = sum(mean.values())
    return {
        "step_s": round(total, 4),
        "residues_per_s": round(residues / len(steps) / total, 1),
        "phases_s": {k: round(v, 4) for k, v in mean.items()},
        "phases_frac": {k: round(v / total, 4) for k, v in mean.items()},
    }


def top_operators(prof, n: int = 12) -> list[dict]:
    """The ``n`` operators with the most self CPU time, with their share of it."""
    rows = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "self_cpu_s": round(e.self_cpu_time_total / 1e6, 3),
            "self_cpu_frac": round(e.self_cpu_time_total / total, 4),
            "calls": e.count,
        }
        for e in rows[:n]
    ]


def pick_batches(train: list, tokens: int, steps: int, seed: int) -> list[list]:
    """``steps`` of the original loader's batches (seeded pick): lists of graphs."""
    graphs = [to_data(r) for r in train]
    batches = original_batches(np.array([g.num_nodes for g in graphs]), tokens)
    order = np.random.default_rng(seed).permutation(len(batches))[:steps]
    return [[graphs[i] for i in batches[j]] for j in order]


def run_original(batches: list, checkpointed: bool, profile_steps: int) -> tuple[dict, list]:
    """Every batch through the original's step (one warm-up step first), then ``profile_steps``
    more under torch.profiler: (summary with padding, top operators)."""
    torch.manual_seed(0)
    model = reference_model(checkpointed=checkpointed).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    original_step(model, opt, batches[0])  # warm-up
    steps, counts = [], []
    base = reset_peak_memory(CPU)
    for i, graphs in enumerate(batches):
        torch.manual_seed(i)
        sec, cnt = original_step(model, opt, graphs)
        steps.append(sec)
        counts.append(cnt)
    residues = sum(c["residues"] for c in counts)
    padded = sum(c["padded_tokens"] for c in counts)
    out = summarise(steps, residues)
    out["peak_mem_mb"] = round(peak_memory_mb(CPU) - base, 1)
    out["padding"] = {
        "residues": residues,
        "padded_tokens": padded,
        "padding_frac": round(1 - residues / padded, 4),
    }
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for graphs in batches[:profile_steps]:
            original_step(model, opt, graphs)
    return out, top_operators(prof)


def run_ours(batches: list, bf16: bool, profile_steps: int) -> tuple[dict, list]:
    torch.manual_seed(0)
    model = ProteinMPNN(hidden_dim=HIDDEN, augment_eps=0.2, dropout=0.1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    ours_step(model, opt, batches[0], bf16)  # warm-up
    steps = []
    base = reset_peak_memory(CPU)
    for i, graphs in enumerate(batches):
        torch.manual_seed(i)
        steps.append(ours_step(model, opt, graphs, bf16))
    out = summarise(steps, sum(g.num_nodes for b in batches for g in b))
    out["peak_mem_mb"] = round(peak_memory_mb(CPU) - base, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for graphs in batches[:profile_steps]:
            ours_step(model, opt, graphs, bf16)
    return out, top_operators(prof)


NOT_TIMED = {
    "process_pool": "the original reloads the next epochs' PDB clusters in a ProcessPoolExecutor "
    "(get_pdbs, 3 epochs queued ahead); its first pass is start-up time before step 1 "
    "(benchmarks/results/data_scale_original.json: first_get_pdbs_s per index size); afterwards "
    "training waits only when an epoch's reload outlasts an epoch of training",
    "grad_scaler": "the original's GradScaler runs only with --mixed_precision on CUDA; a CPU "
    "fp32 run has none, so no step is skipped",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed batches per arm")
    ap.add_argument("--profile-steps", type=int, default=3, help="steps under torch.profiler")
    ap.add_argument("--tokens", type=int, default=None, help="padded tokens per batch (1000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a few embedded proteins (CI)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    a.tokens = a.tokens or (300 if a.tiny else 1000)
    if a.steps < 1 or a.profile_steps < 0 or a.profile_steps > a.steps:
        ap.error("--steps must be >= 1 and 0 <= --profile-steps <= --steps")
    return a


def main(argv=None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    info = machine()
    train, _ = load_records(a.tiny, 0)
    batches = pick_batches(train, a.tokens, a.steps, a.seed)
    arms, ops = {}, {}
    for name, run in (
        ("original_training", lambda: run_original(batches, True, a.profile_steps)),
        ("original", lambda: run_original(batches, False, 0)),
        ("ours", lambda: run_ours(batches, False, a.profile_steps)),
        ("ours_bf16", lambda: run_ours(batches, True, a.profile_steps)),
    ):
        log(f"{name}: {len(batches)} steps ...")
        arms[name], top = run()
        if top:
            ops[name] = top
        log(f"{name}: {arms[name]['step_s']:.3f} s/step, {arms[name]['residues_per_s']} res/s")
    ckpt, plain = arms["original_training"], arms["original"]
    recompute = ckpt["phases_s"]["backward"] - plain["phases_s"]["backward"]
    res = {
        "command": command("benchmarks.profile_original", argv),
        "machine": finished(info),
        "data": "embedded (tiny)" if a.tiny else "shared/data/training db5.5 train",
        "tokens_per_batch": a.tokens,
        "steps": len(batches),
        "profile_steps": a.profile_steps,
        "arms": arms,
        "recomputation": {
            "seconds_per_step": round(recompute, 4),
            "frac_of_step": round(recompute / ckpt["step_s"], 4),
            "how": "backward of original_training minus backward of original (same batches, "
            "same initial weights)",
        },
        "top_operators": ops,
        "not_timed": NOT_TIMED,
    }
    return emit(res, a, _table, indent=1)


def _table(res: dict) -> str:
    lines = [f"{res['steps']} steps of {res['tokens_per_batch']} padded tokens"]
    for name, arm in res["arms"].items():
        parts = ", ".join(f"{k} {100 * v:.1f} %" for k, v in arm["phases_frac"].items())
        lines.append(f"{name:18s} {arm['step_s']:.3f} s/step  {parts}")
    pad = res["arms"]["original_training"]["padding"]
    lines.append(f"padding: {100 * pad['padding_frac']:.1f} % of the original's tokens")
    r = res["recomputation"]
    lines.append(
        f"recomputation: {r['seconds_per_step']:.3f} s/step ({100 * r['frac_of_step']:.1f} %)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
