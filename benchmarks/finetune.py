"""Fine-tuning the released weights on DB5.5, measured: a full fine-tune and a frozen encoder,
the same number of steps each, per seed; every model (the released weights too) tested on all
DB5.5 test chains and on TS50, recovery from several samples per chain with a bootstrap
confidence interval over chains.

    python -m benchmarks.finetune --json --out benchmarks/results/finetune.json
    python -m benchmarks.finetune --tiny --steps 2 --samples 2      # seconds: the CI check

    # the same result over several calls (each model is written as soon as it is measured):
    python -m benchmarks.finetune --json --only base,full/seed0 --out benchmarks/results/finetune.json
    python -m benchmarks.finetune --json --resume --out benchmarks/results/finetune.json

The JSON is rewritten after every model (``complete: false`` and the ``missing`` models until
the last); ``--resume`` keeps the models ``--out`` holds when it was made with the same
settings (``signature``) and measures the rest. ``calls`` records each call's command, machine
(commit, CPU, load at start and end) and minutes; every model names the call that measured it.

Data: ``../shared/data/training`` (``PYG_MPNN_SHARED_DATA``): ``db5.5_{train,val,test}``
(split by complex), and ``../shared/data/benchmarks/ts50.jsonl``; ``--tiny``: a few proteins
of the embedded data's DB5.5 parts stand in for every set.

Training: ``experiments/finetune.yaml`` from ``--base`` (cosine from 1e-4 to 1e-5, 50 warm-up
steps, 1,000-residue batches, clipping 1.0), ``--steps`` optimizer steps (the cosine spans
them), validated on a fixed subset of 40 validation chains every ``--steps / 3`` steps; the
model after the last step is tested (not the best checkpoint: every setting is compared at the
same step). Settings: ``full`` (every parameter trains) and ``frozen_encoder``
(``model.freeze=[encoder_layers]``).

Test protocol (:mod:`pyg_mpnn.evaluation`'s, with more samples): teacher-forced perplexity and
accuracy under one random decoding order per protein, pooled over residues; recovery of
``--samples`` sequences per protein sampled at T = 0.1, averaged per designed chain; the mean
and median over chains with a 95 % bootstrap interval (chains resampled ``--bootstrap`` times).
Seeded: the same orders and samples for every model.

Held out? DB5.5's test complexes are split from its training complexes, but the released
weights were trained on PDB chains up to 2021, which may include these complexes or close
homologues: "test" here means unseen by the fine-tune, not by the released weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch
from tqdm import tqdm

from benchmarks.common import (
    DATA,
    command,
    emit,
    finished,
    load_records,
    machine,
    shown_path,
    write_json,
)
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.evaluation import batches, chain_recoveries, iter_records
from pyg_mpnn.io.jsonl import write_jsonl
from pyg_mpnn.io.record import ProteinRecord, to_data
from pyg_mpnn.nn.weights import load_model
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

SETTINGS = {"full": [], "frozen_encoder": ["model.freeze=[encoder_layers]"]}
TEMPERATURE, EVAL_SEED, VALID_CHAINS = 0.1, 0, 40


# -- testing ---------------------------------------------------------------------------------------
@torch.no_grad()
def score(model, records: list, samples: int, seed: int = EVAL_SEED, desc: str = "") -> dict:
    """Perplexity and accuracy (one order), and each designed chain's mean recovery over
    ``samples`` sampled sequences (a progress bar on stderr, named ``desc``)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    nll, correct, residues, per_chain = 0.0, 0, 0, []
    chunks = list(batches(records, 2000))
    for chunk in tqdm(chunks, desc=desc or "testing", unit="batch", leave=False, file=sys.stderr):
        data = Batch.from_data_list([to_data(r, model.backbone) for r in chunk])
        scored = data.design_mask & data.mask
        encoded = model.encode(data)
        lp = model(data, decoding_rank=model.random_rank(data, gen), encoded=encoded)
        nll += float(-lp.gather(1, data.seq.view(-1, 1)).view(-1)[scored].sum())
        correct += int((lp.argmax(-1) == data.seq)[scored].sum())
        residues += int(scored.sum())
        draws = [
            chain_recoveries(
                data,
                model.sample(data, temperature=TEMPERATURE, generator=gen, encoded=encoded)["seq"],
            )
            for _ in range(samples)
        ]
        per_chain += [100.0 * float(np.mean(c)) for c in zip(*draws)]
    return {
        "perplexity": math.exp(nll / residues),
        "accuracy": 100.0 * correct / residues,
        "residues": residues,
        "chains": len(per_chain),
        "samples_per_chain": samples,
        **recovery_summary(per_chain),
        "chain_recovery": per_chain,
    }


def recovery_summary(per_chain: list[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Mean and median recovery over chains, each with a 95 % bootstrap interval."""
    x = np.asarray(per_chain, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    out = {}
    for name, fn in (("mean", np.mean), ("median", np.median)):
        boot = fn(x[idx], axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out[f"{name}_recovery"] = float(fn(x))
        out[f"{name}_recovery_ci95"] = [float(lo), float(hi)]
    return out


# -- training --------------------------------------------------------------------------------------
def prepared(train: list, valid: list, work: Path) -> Path:
    for r, split in [(r, "train") for r in train] + [(r, "valid") for r in valid]:
        r.meta["split"] = split
    write_jsonl(train + valid, work / "records.jsonl")
    prepare([str(work / "records.jsonl")], work / "data", progress=False)
    return work / "data"


def fine_tune(setting: str, seed: int, data: Path, a, work: Path) -> tuple[dict, torch.nn.Module]:
    """One fine-tune of ``--base``: its facts and validation curve, and the trained model."""
    overrides = [
        f"init={a.base}",
        f"data.path={data}",
        f"seed={seed}",
        f"train.max_steps={a.steps}",
        f"schedule.total_steps={a.steps}",
        f"schedule.warmup_steps={min(50, a.steps // 3)}",
        f"train.valid_every_steps={max(1, a.steps // 3)}",
        f"data.valid_max_proteins={VALID_CHAINS}",
        f"train.threads={a.threads}",
        f"train.precision={a.precision}",
        f"train.progress={str(not a.tiny).lower()}",  # a bar for each fine-tune
        "track.aim=false",
        "track.layer_every=0",
        "checkpoint.keep_best=false",
    ]
    cfg = load_experiment("finetune", overrides + SETTINGS[setting])
    trainer = Trainer(cfg, work / f"{setting}_seed{seed}")
    t0 = time.time()
    trainer.fit()
    facts = {
        "setting": setting,
        "seed": seed,
        "freeze": cfg.model.freeze,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "steps": trainer.step,
        "training_residues": trainer.residues_seen,
        "minutes": (time.time() - t0) / 60,
        "precision": trainer.precision,
        "valid": [
            {k: v[k] for k in ("step", "valid_ppl", "valid_acc")} for v in trainer.valid_history
        ],
    }
    trainer.model.augment_eps = 0.0  # tested without training noise, as the released weights
    return facts, trainer.model


# -- the run ---------------------------------------------------------------------------------------
def fail(message: str):
    """A user's mistake: one line naming the culprit, exit 2."""
    print(f"benchmarks.finetune: {message}", file=sys.stderr)
    raise SystemExit(2)


def held_out_sets(tiny: bool) -> dict:
    if tiny:
        _, recs = load_records(True, 0)
        return {"db5.5_test": recs, "ts50": recs[:1]}
    paths = {
        "db5.5_test": DATA / "training" / "db5.5_test.jsonl.gz",
        "ts50": DATA / "benchmarks" / "ts50.jsonl",
    }
    for path in paths.values():
        if not path.exists():
            fail(f"{shown_path(path)} not found: set PYG_MPNN_SHARED_DATA or use --tiny")
    return {
        name: [r for r in iter_records(str(p)) if isinstance(r, ProteinRecord)]
        for name, p in paths.items()
    }


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="original:v_48_020", help="the weights fine-tuned")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps, every setting")
    ap.add_argument("--seeds", type=int, default=2, help="fine-tunes per setting")
    ap.add_argument("--samples", type=int, default=4, help="sequences sampled per chain")
    ap.add_argument("--precision", default="fast", help="train.precision of the fine-tunes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="a few embedded proteins (CI)")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated models to measure in this call (base, full/seed0, ...); "
        "with --resume the others come from --out",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the models --out already holds (same settings) and measure the rest",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here, after every model")
    a = ap.parse_args(argv)
    for name in ("steps", "seeds", "samples", "threads"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name} must be positive")
    names = model_names(a.seeds)
    a.only = names if a.only is None else [m.strip() for m in a.only.split(",") if m.strip()]
    unknown = [m for m in a.only if m not in names]
    if unknown:
        ap.error(f"--only: {unknown[0]!r} is not one of {', '.join(names)}")
    if a.resume and not a.out:
        ap.error("--resume needs --out: the result it adds to")
    return a


def model_names(seeds: int) -> list[str]:
    """Every model a complete result holds, in the order they are measured."""
    return ["base"] + [f"{s}/seed{seed}" for s in SETTINGS for seed in range(seeds)]


def signature(a, cpu: str) -> dict:
    """What must agree for models measured in separate calls to share one result: the
    settings, and the CPU (minutes, and what ``precision: fast`` picks, depend on it)."""
    keys = ("base", "steps", "samples", "precision", "threads", "tiny")
    return {k: getattr(a, k) for k in keys} | {"evaluation_seed": EVAL_SEED, "cpu": cpu}


def earlier_result(a, mine: dict) -> tuple[dict, list]:
    """With ``--resume``: the models and calls ``--out`` already holds, when it was made with
    the same settings (else a one-line exit naming the first difference)."""
    path = Path(a.out) if a.out else None
    if not a.resume or not path.exists():
        return {}, []
    try:
        earlier = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{a.out}: not a finetune result ({e}); remove it or drop --resume")
    if "signature" not in earlier:
        fail(f"{a.out}: made without a signature, before --resume existed; drop --resume")
    for key, value in mine.items():
        theirs = earlier["signature"].get(key)
        if theirs != value:
            fail(f"{a.out}: made with {key}={theirs!r}, this call has {value!r}")
    models = {k: v for k, v in earlier["models"].items() if k in model_names(a.seeds)}
    return models, earlier.get("calls", [])


def result_of(a, argv, models: dict, sets: dict, train_chains: int, calls: list, sig) -> dict:
    missing = [m for m in model_names(a.seeds) if m not in models]
    return {
        "machine": calls[-1]["machine"],
        "command": command("benchmarks.finetune", argv),
        "complete": not missing,
        "missing": missing,
        "signature": sig,
        "tiny": a.tiny,
        "base": a.base,
        "steps": a.steps,
        "seeds": list(range(a.seeds)),
        "sets": {k: {"proteins": len(v)} for k, v in sets.items()},
        "train_chains": train_chains,
        "protocol": f"T = {TEMPERATURE}, {a.samples} samples per chain, seed {EVAL_SEED}; "
        "95 % bootstrap intervals over chains",
        "wall_minutes_total": sum(c["wall_minutes"] for c in calls),
        "calls": calls,
        "models": {m: models[m] for m in model_names(a.seeds) if m in models},
    }


def main(argv=None) -> dict:
    a = parse_args(argv)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    torch.set_num_threads(a.threads)
    info, t0 = machine(), time.time()
    sig = signature(a, info["cpu"])
    models, calls = earlier_result(a, sig)
    todo = [m for m in a.only if m not in models]
    log(f"kept from {a.out}: {', '.join(models) or 'none'}; measuring: {', '.join(todo) or 'none'}")
    train, valid = load_records(a.tiny, 10**9)  # every validation chain; training reads 40
    sets = held_out_sets(a.tiny)
    evaluate = lambda model: {k: score(model, v, a.samples, desc=k) for k, v in sets.items()}
    call = {"command": command("benchmarks.finetune", argv), "models": todo}

    def measured(name: str, facts: dict) -> None:
        """One model done: into the result, written at once (a killed call keeps it)."""
        models[name] = {**facts, "measured_at": {"commit": info["commit"], "call": len(calls)}}
        call.update(machine=finished(info), wall_minutes=(time.time() - t0) / 60)
        if a.out:
            done = result_of(a, argv, models, sets, len(train), [*calls, call], sig)
            write_json(a.out, json.dumps(done, indent=1))

    if "base" in todo:
        measured("base", {"weights": a.base, **evaluate(load_model(a.base))})
        log(", ".join(f"{a.base}: {k} ppl {models['base'][k]['perplexity']:.3f}" for k in sets))
    with tempfile.TemporaryDirectory() as tmp:
        tunes = [m for m in todo if m != "base"]
        data = prepared(train, valid, Path(tmp)) if tunes else None
        for name in tunes:
            setting, seed = name.split("/seed")
            facts, model = fine_tune(setting, int(seed), data, a, Path(tmp))
            measured(name, {**facts, **evaluate(model)})
            log(f"{name}: {facts['steps']} steps, {facts['minutes']:.1f} min")
    call.update(machine=finished(info), wall_minutes=(time.time() - t0) / 60)
    result = result_of(a, argv, models, sets, len(train), [*calls, call], sig)
    return emit(result, a, json.dumps, indent=1)


if __name__ == "__main__":
    main()
