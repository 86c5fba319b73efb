"""Same-seed fp32 against bf16 autocast: the validation perplexity at equal steps.

    python -m benchmarks.precision_parity --json --steps 600 \
        --out benchmarks/results/precision_parity_<cpu>.json
    python -m benchmarks.precision_parity --tiny --json      # seconds: the CI check

Training defaults to bf16 autocast on CPUs with native bf16 (``train.precision: fast``) only
once such a run shows the bf16 validation perplexity within 1 % of fp32's at the same step:
this script makes that run. Both arms are :class:`pyg_mpnn.train.trainer.Trainer` with the
time-to-quality settings of ``benchmarks/time_to_quality.py`` (its ``ours`` arm: width 128,
3 + 3 layers, k 48, its Noam schedule, clipping, every activation kept, eager), the same seed
(model init, noise, decoding orders, dropout, batch order) and the same data (``--data``,
default the full embedded set), differing only in ``train.precision`` (``fp32`` or ``bf16``:
bf16 autocast, fp32 kNN, loss and master weights). Both validate on the same proteins every
``--steps / --points`` steps; the JSON has both curves, the last perplexities, their relative
difference and ``within_1pct``. It records wall time too, but it is not a timing benchmark:
run it on an idle machine only to keep the wall time short.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.time_to_quality import OURS, machine
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.precision import native_bf16
from pyg_mpnn.train.trainer import Trainer

TOLERANCE = 0.01  # bf16's last validation perplexity within 1 % of fp32's
TINY = [  # --tiny: a small model on the embedded default set, a few steps
    "model.hidden_dim=16",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=1",
    "model.k_neighbors=8",
    "data.valid_max_proteins=4",
    "data.max_length=150",
]


def settings(a: argparse.Namespace, precision: str) -> list[str]:
    """``--set`` values of one arm: time_to_quality's ours arm, this run's length and data."""
    out = [s for s in OURS if not s.startswith("train.precision=")]
    out += [
        f"train.precision={precision}",
        f"seed={a.seed}",
        f"train.max_steps={a.steps}",
        f"train.valid_every_steps={max(a.steps // a.points, 1)}",
        f"data.max_tokens={a.tokens}",
        f"train.threads={a.threads}",
    ]
    out += [f"data.path={a.data}"] if a.data else []
    return out + (TINY if a.tiny else [])


def run_arm(a: argparse.Namespace, precision: str, work: Path) -> dict:
    """One training run; its validation curve (step, residues, perplexity) and wall time."""
    cfg = load_experiment("base", settings(a, precision))
    t0 = time.perf_counter()
    trainer = Trainer(cfg, work / precision)
    final = trainer.fit()
    curve = [
        {"step": v["step"], "residues": v["residues"], "valid_ppl": round(v["valid_ppl"], 5)}
        for v in trainer.valid_history
    ]
    if not curve or curve[-1]["step"] != trainer.step:
        curve.append({"step": trainer.step, "residues": trainer.residues_seen})
        curve[-1]["valid_ppl"] = round(final["valid_ppl"], 5)
    return {
        "precision": trainer.precision,
        "steps": trainer.step,
        "curve": curve,
        "valid_ppl": curve[-1]["valid_ppl"],
        "train_loss": round(final["train_loss"], 5),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def compare(fp32: dict, bf16: dict) -> dict:
    """Relative perplexity difference of bf16 against fp32 at each common step, and the verdict
    on the last one."""
    ppl32 = {p["step"]: p["valid_ppl"] for p in fp32["curve"]}
    rel = [
        {"step": p["step"], "rel_diff": round(p["valid_ppl"] / ppl32[p["step"]] - 1, 5)}
        for p in bf16["curve"]
        if p["step"] in ppl32
    ]
    last = rel[-1]["rel_diff"] if rel else None
    return {
        "rel_diff_by_step": rel,
        "last_rel_diff": last,
        "tolerance": TOLERANCE,
        "within_1pct": last is not None and abs(last) <= TOLERANCE,
    }


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps of each arm")
    ap.add_argument("--points", type=int, default=6, help="validations along the way")
    ap.add_argument("--tokens", type=int, default=1000, help="residues per batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--data", default="embedded", help="data.path (default: the embedded set)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model, a few steps (CI)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.tiny:
        a.steps, a.points, a.tokens = min(a.steps, 4), min(a.points, 2), min(a.tokens, 300)
        a.data = None if a.data == "embedded" else a.data  # the embedded default set
    return a


def main(argv=None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    arms = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            log(f"precision_parity: {precision}, {a.steps} steps")
            arms[precision] = run_arm(a, precision, Path(tmp))
    res = {
        "command": "python -m benchmarks.precision_parity "
        + " ".join(sys.argv[1:] if argv is None else list(argv)),
        "what": "same seed, same steps: bf16 autocast against fp32 (time_to_quality's ours arm)",
        "machine": machine(),
        "native_bf16": native_bf16(torch.device("cpu")),
        "settings": settings(a, "PRECISION"),
        "arms": arms,
        **compare(arms["fp32"], arms["bf16"]),
    }
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.write_text(text + "\n")
    print(text if a.json else f"bf16/fp32 - 1 = {res['last_rel_diff']}: {res['within_1pct']}")
    return res


if __name__ == "__main__":
    main()
