"""TS50 with the reference implementation and with ours, under one protocol; prints JSON.

    .venv/bin/python -m studies.ts50_eval [--data ../shared/data/benchmarks/ts50.jsonl]
        [--weights original:v_48_020] [--seeds 0,1] [--threads 1] [--out FILE]

    python -m studies.ts50_eval --seeds 0,1 --out benchmarks/results/ts50.json   # docs/model.md

Protocol (both sides; see pyg_mpnn/evaluate.py): residues of designed chains with a complete
backbone (with a CA atom for the CA-only ``ca:`` weights); perplexity exp(pooled NLL) and accuracy (argmax) under one random decoding order
per protein; recovery of one sequence per protein sampled at T=0.1 with X omitted, under a
fresh random order, median and mean over chains. The reference runs one protein at a time
(its own ``argsort`` of ``randn`` and ``torch.multinomial`` on the global RNG, seeded once),
ours runs ``pyg_mpnn.evaluate.evaluate`` on batched graphs (its own seeded draws), so the two
differ only by the random orders and samples drawn.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import DATA, command, finished, machine, shown_path, write_json
from pyg_mpnn.evaluate import evaluate, iter_records
from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.reference import (
    is_ca_only,
    reference_log_probs,
    reference_model,
    reference_sample,
)
from pyg_mpnn.nn.weights import load_model


@torch.no_grad()
def evaluate_reference(weights: str, records, seed: int = 0, temperature: float = 0.1) -> dict:
    model = reference_model(weights)
    backbone = "ca" if is_ca_only(model) else "full"
    torch.manual_seed(seed)
    nll_sum, correct, residues, recov = 0.0, 0, 0, []
    for rec in records:
        data = to_data(rec, backbone)
        scored = data.design_mask & data.mask
        lp = reference_log_probs(model, data, torch.randn(data.num_nodes))
        nll_sum += float(-lp.gather(1, data.seq.view(-1, 1)).view(-1)[scored].sum())
        correct += int((lp.argmax(-1) == data.seq)[scored].sum())
        residues += int(scored.sum())
        seq = reference_sample(model, data, torch.randn(data.num_nodes), temperature)["seq"]
        for c in torch.unique(data.chain[scored]):
            sel = scored & (data.chain == c)
            recov.append(float((seq[sel] == data.seq[sel]).float().mean()))
    return dict(
        perplexity=math.exp(nll_sum / residues),
        accuracy=100.0 * correct / residues,
        median_recovery=100.0 * statistics.median(recov),
        mean_recovery=100.0 * statistics.fmean(recov),
        chains=len(recov),
        residues=residues,
    )


def compare(weights: str, records: list, seed: int) -> dict:
    """Both sides on ``records`` with one seed, their wall times and the differences."""
    t0 = time.perf_counter()
    ref = evaluate_reference(weights, records, seed)
    t1 = time.perf_counter()
    ours = evaluate(load_model(weights), records, seed=seed, progress=False)
    t2 = time.perf_counter()
    ref["seconds"], ours["seconds"] = round(t1 - t0, 1), round(t2 - t1, 1)
    return {
        "seed": seed,
        "reference": ref,
        "ours": ours,
        "diff": {
            "perplexity_rel_percent": 100 * (ours["perplexity"] / ref["perplexity"] - 1),
            "median_recovery_points": ours["median_recovery"] - ref["median_recovery"],
            "mean_recovery_points": ours["mean_recovery"] - ref["mean_recovery"],
            "accuracy_points": ours["accuracy"] - ref["accuracy"],
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA / "benchmarks" / "ts50.jsonl"))
    p.add_argument("--weights", default="original:v_48_020")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, one comparison each")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)
    try:
        seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds {a.seeds!r}: comma-separated integers")
    if not seeds:
        p.error("--seeds: at least one seed")
    if not Path(a.data).exists():
        p.error(f"--data {shown_path(a.data)}: not found (set PYG_MPNN_SHARED_DATA)")
    torch.set_num_threads(a.threads)
    info = machine()
    records = list(iter_records(a.data))
    runs = [compare(a.weights, records, seed) for seed in seeds]
    result = {
        "machine": finished(info),
        "command": command("studies.ts50_eval", argv),
        "data": shown_path(a.data),
        "weights": a.weights,
        "threads": a.threads,
        "device": "cpu",
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if a.out:
        write_json(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
