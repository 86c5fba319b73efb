"""Does the categorical Jacobian see more than the model's graph? Decoder and encoder coupling
maps against contacts, with kNN-aware baselines, over proteins, decoding orders and a training
trajectory.

    python -m studies.jacobian_study --json --out benchmarks/results/jacobian_study.json
    python -m studies.jacobian_study --tiny --json --out jacobian_tiny.json  # seconds

1. **Trajectory.** Trains one short run with the real trainer (``STUDY`` overrides of
   ``experiments/base.yaml``: a small model on the full embedded set, one thread), keeping a
   checkpoint every ``--steps / --checkpoints`` steps (``checkpoint.keep_every``) plus the
   initial weights as step 0. A run folder that already holds them is reused (``--retrain``).
2. **Maps.** At every checkpoint, on every probe protein (the ``--proteins`` shortest TS50
   chains from ``../shared/data/benchmarks/ts50.jsonl``, held out of the training data; the
   study is skipped without it): the decoder's categorical Jacobian with all 20 amino acids in
   each of ``--orders`` random decoding orders (seeds 0, 1, ...; each order's map and their
   mean), and the encoder's structure Jacobian (:func:`pyg_mpnn.diagnose.jacobian.
   encoder_jacobian`). Definitions: ``pyg_mpnn/track/jacobian.py``.
3. **Scores** (:func:`pyg_mpnn.track.jacobian.pair_metrics`, for ``|i - j| >= 6`` and ``>= 12``):
   top-L and top-L/5 precision over all pairs and over the kNN pairs of the model's graph,
   against the contact rate of each set and two predictors that know only the graph (rank by
   C-alpha distance, by neighbour rank); the agreement of the orders (Spearman correlation of
   their APC maps over the kNN pairs, overlap of their top-L kNN pairs); controls that check the
   scorer (the contact map scores ~1, random maps score the contact rate).

The JSON holds every (checkpoint, protein, variant) row and summaries (mean, standard
deviation, min, max over proteins); ``tools/render_docs.py`` renders docs/monitoring.md's
tables from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import REPO, command, emit, finished, machine
from pyg_mpnn.diagnose.jacobian import (
    TS50,
    apc,
    candidate_pairs,
    categorical_jacobian,
    contact_map,
    encoder_jacobian,
    load_probe,
    outside_knn,
    pair_metrics,
)
from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.probe import probe_mode
from pyg_mpnn.train.checkpoint import STEP_RE, CheckpointManager
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

FIXTURES = REPO / "tests" / "fixtures"
SEPARATIONS = (6, 12)
BUDGET = 100_000  # edges per batched decoder/encoder call (memory)
# the run: a small model, the full embedded set (scale_sweep's data and schedule), one thread
STUDY = [
    "model.hidden_dim=64",
    "model.num_encoder_layers=2",
    "model.num_decoder_layers=2",
    "model.k_neighbors=16",
    "data.path=embedded",
    "data.max_tokens=1000",
    "data.max_length=1000",
    "data.valid_max_proteins=8",
    "schedule.model_size=128",
    "schedule.factor=0.5",
    "schedule.warmup_steps=30",
    "train.precision=fp32",
]
TINY = [
    "model.hidden_dim=16",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=2",
    "model.k_neighbors=8",
    "data.max_tokens=400",
    "data.max_length=400",
    "data.valid_max_proteins=2",
    "schedule.warmup_steps=5",
    "train.precision=fp32",
]
# TS50 chains of the test fixtures (PDB files with the same coordinates) for --tiny
TINY_PROTEINS = ["mdanalysistests__1i8nA.pdb.gz", "mdanalysistests__1lpbA.pdb.gz"]
METRICS = (
    "precision_L",
    "precision_L5",
    "random",
    "knn_precision_L",
    "knn_precision_L5",
    "knn_random",
    "distance_L",
    "distance_L5",
    "knn_rank_L",
    "knn_rank_L5",
    "knn_pairs",
    "knn_contacts",
)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a CI-sized run (seconds)")
    ap.add_argument("--json", action="store_true", help="print the result JSON")
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    ap.add_argument(
        "--run-dir",
        type=Path,
        help="the study's training run, replaced when (re)trained (default runs/jacobian_study)",
    )
    ap.add_argument("--retrain", action="store_true", help="train again even if the run exists")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 200)")
    ap.add_argument("--checkpoints", type=int, default=None, help="after step 0 (default 4)")
    ap.add_argument("--proteins", type=int, default=None, help="shortest TS50 chains (default 5)")
    ap.add_argument("--max-length", type=int, default=64, help="residues kept per protein")
    ap.add_argument("--orders", type=int, default=2, help="decoding orders (seeds 0, 1, ...)")
    ap.add_argument("--substitutions", type=int, help="amino acids per site (default 20)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    a.steps = a.steps or (4 if a.tiny else 200)
    a.checkpoints = a.checkpoints or (2 if a.tiny else 4)
    a.proteins = a.proteins or (2 if a.tiny else 5)
    a.substitutions = a.substitutions or (4 if a.tiny else 20)
    if a.tiny:
        a.max_length = min(a.max_length, 30)
    if a.steps % a.checkpoints:
        ap.error(f"--steps {a.steps} is not a multiple of --checkpoints {a.checkpoints}")
    name = "jacobian_study_tiny" if a.tiny else "jacobian_study"
    a.run_dir = (a.run_dir or REPO / "runs" / name).resolve()
    return a


def probe_specs(a) -> list[str] | None:
    """``load_probe`` specs of the probe proteins; ``None`` when TS50 is absent."""
    if a.tiny:
        return [str(FIXTURES / name) for name in TINY_PROTEINS[: a.proteins]]
    if not TS50.exists():
        return None
    lengths = {}
    with open(TS50) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                lengths[rec["name"]] = len(rec["seq"])
    names = sorted(lengths, key=lambda n: (lengths[n], n))[: a.proteins]
    return [f"ts50:{n}" for n in names]


# -- the training run ----------------------------------------------------------------------------
def overrides(a) -> list[str]:
    every = a.steps // a.checkpoints
    return [
        *(TINY if a.tiny else STUDY),
        f"train.threads={a.threads}",
        f"train.max_steps={a.steps}",
        f"train.valid_every_steps={every}",
        f"checkpoint.every_steps={every}",
        f"checkpoint.keep_every={every}",
        "checkpoint.keep_last=1",
        "checkpoint.keep_best=false",
        "track.aim=false",
        "track.layer_every=0",
        "train.progress=" + ("false" if a.tiny else "true"),
    ]


def train(a) -> dict:
    """Train (or reuse) the run; its checkpoints by step, the training seconds, validation."""
    sets, every = overrides(a), a.steps // a.checkpoints
    wanted = list(range(0, a.steps + 1, every))
    info_path = a.run_dir / "study_train.json"
    have = checkpoints(a.run_dir)
    reuse = not a.retrain and info_path.exists() and all(s in have for s in wanted)
    if reuse:
        info = json.loads(info_path.read_text())
        reuse = info["overrides"] == sets
    if not reuse:  # the run folder is the study's own: replaced
        shutil.rmtree(a.run_dir, ignore_errors=True)
        cfg = load_experiment("base", sets)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, a.run_dir)
        trainer.save()  # the initial weights: step 0 of the trajectory
        ppl0 = trainer.validate().ppl  # own seed, the training RNG stream untouched
        trainer.fit()
        info = {"overrides": sets, "train_seconds": time.perf_counter() - t0, "valid_ppl_0": ppl0}
        info_path.write_text(json.dumps(info, indent=1))
    have = checkpoints(a.run_dir)
    steps, ppl = read_files(a.run_dir).series("ppl", subset="valid")
    return {
        **info,
        "reused": reuse,
        "checkpoints": {s: have[s] for s in wanted},
        "valid_ppl": {0: info["valid_ppl_0"]} | {int(s): v for s, v in zip(steps, ppl)},
    }


def checkpoints(run_dir: Path) -> dict[int, Path]:
    return {int(STEP_RE.match(p.name).group(1)): p for p in CheckpointManager(run_dir).steps()}


def load_model(path: Path) -> ProteinMPNN:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = ProteinMPNN(**state["config"])
    model.load_state_dict(state["model"])
    return model.eval()


# -- maps and scores -----------------------------------------------------------------------------
def score(C: np.ndarray, knn: np.ndarray, data, contacts: np.ndarray) -> dict:
    """``pair_metrics`` of the APC map of ``C`` for every separation, and ``outside_knn``."""
    S = apc(C + C.T)
    return {
        "outside_knn": outside_knn(C, knn),
        "sep": {str(s): pair_metrics(S, knn, data, s, contacts) for s in SEPARATIONS},
    }


def agreement(maps: list[np.ndarray], knn: np.ndarray, data) -> dict:
    """Between every two orders' APC maps, over the kNN candidate pairs of each separation:
    Spearman correlation and the overlap of their top-``min(L, |kNN pairs|)`` sets (mean
    over the pairs of orders)."""
    out = {}
    for s in SEPARATIONS:
        i, j = candidate_pairs(data, s)
        near = knn[i, j] | knn[j, i]
        vals = [apc(C + C.T)[i, j][near] for C in maps]
        rho, overlap = [], []
        n = min(data.num_nodes, int(near.sum()))
        for x in range(len(vals)):
            for y in range(x + 1, len(vals)):
                rx, ry = (np.argsort(np.argsort(v)) for v in (vals[x], vals[y]))
                rho.append(float(np.corrcoef(rx, ry)[0, 1]) if n > 1 else float("nan"))
                tx, ty = (set(np.argsort(-v, kind="stable")[:n]) for v in (vals[x], vals[y]))
                overlap.append(len(tx & ty) / n if n else float("nan"))
        out[str(s)] = {
            "spearman_knn": float(np.mean(rho)),
            "top_L_overlap_knn": float(np.mean(overlap)),
        }
    return out


def controls(data, knn: np.ndarray, contacts: np.ndarray, draws: int = 20) -> dict:
    """The scorer on known maps: the contact map itself, and the mean over random maps."""
    rng = np.random.default_rng(0)
    n = data.num_nodes
    oracle = pair_metrics(contacts.astype(np.float64), knn, data, 12, contacts)
    rand = [pair_metrics(rng.random((n, n)), knn, data, 12, contacts) for _ in range(draws)]
    mean = lambda k: float(np.nanmean([r[k] for r in rand]))
    return {
        "length": n,
        "knn_pairs": oracle["knn_pairs"],
        "knn_contacts": oracle["knn_contacts"],
        "oracle_knn_precision_L5": oracle["knn_precision_L5"],
        "oracle_precision_L5": oracle["precision_L5"],
        "random_map_knn_precision_L": mean("knn_precision_L"),
        "random_map_precision_L": mean("precision_L"),
        "knn_random": oracle["knn_random"],
        "random": oracle["random"],
    }


def probe_one(model, data, step: int, a) -> list[dict]:
    """The rows of one (checkpoint, protein): decoder per order and averaged, encoder."""
    contacts, rows, maps, secs = contact_map(data), [], [], []
    base = {"step": step, "protein": data.name, "length": int(data.num_nodes)}
    for seed in range(a.orders):
        t0 = time.perf_counter()
        jac = categorical_jacobian(
            model, data, orders=1, seed=seed, substitutions=a.substitutions, edge_budget=BUDGET
        )
        maps.append(jac["C"])
        secs.append(time.perf_counter() - t0)
        rows.append(
            {**base, "variant": f"decoder_order{seed}", "seconds": secs[-1]}
            | score(jac["C"], jac["knn"], data, contacts)
        )
    knn = jac["knn"]
    mean = {**base, "variant": "decoder", "seconds": sum(secs)}
    mean |= score(np.mean(maps, axis=0), knn, data, contacts)
    mean["agreement"] = agreement(maps, knn, data) if len(maps) > 1 else None
    t0 = time.perf_counter()
    enc = encoder_jacobian(model, data, edge_budget=BUDGET)
    enc_row = {**base, "variant": "encoder", "seconds": time.perf_counter() - t0}
    return [mean, *rows, enc_row | score(enc["C"], enc["knn"], data, contacts)]


# -- summaries -----------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    v = np.array([x for x in values if x is not None and not np.isnan(x)], dtype=np.float64)
    if not len(v):
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {
        "mean": float(v.mean()),
        "sd": sd,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": len(v),
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Per (step, variant): every metric per separation, ``outside_knn`` and the order
    agreement, as :func:`spread` over proteins."""
    out = []
    for step in sorted({r["step"] for r in rows}):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            sel = [r for r in rows if r["step"] == step and r["variant"] == variant]
            item = {"step": step, "variant": variant, "proteins": len(sel)}
            item["outside_knn"] = spread([r["outside_knn"] for r in sel])
            item["sep"] = {
                str(s): {m: spread([r["sep"][str(s)][m] for r in sel]) for m in METRICS}
                for s in SEPARATIONS
            }
            if sel[0].get("agreement"):
                item["agreement"] = {
                    str(s): {
                        k: spread([r["agreement"][str(s)][k] for r in sel])
                        for k in ("spearman_knn", "top_L_overlap_knn")
                    }
                    for s in SEPARATIONS
                }
            out.append(item)
    return out


def main(argv=None) -> dict | None:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    info = machine()
    specs = probe_specs(a)
    if specs is None:
        print(f"skipped: {TS50} not found (the study needs TS50 from ../shared)", file=sys.stderr)
        return None
    proteins = [load_probe(s, a.max_length) for s in specs]
    t0 = time.perf_counter()
    run = train(a)
    t_eval, rows = time.perf_counter(), []
    jobs = [(s, p) for s in run["checkpoints"] for p in proteins]
    for step, data in tqdm(jobs, desc="jacobian study", disable=a.tiny):
        rows += probe_one(load_model(run["checkpoints"][step]), data, step, a)
    t_end = time.perf_counter()
    res = {
        "command": command("studies.jacobian_study", argv),
        "tiny": a.tiny,
        "machine": finished(info),
        "seconds": {
            "train": run["train_seconds"],
            "train_reused": run["reused"],
            "evaluate": t_end - t_eval,
            "total_this_call": t_end - t0,
        },
        "run": {
            "dir": str(
                a.run_dir.relative_to(REPO) if a.run_dir.is_relative_to(REPO) else a.run_dir
            ),
            "experiment": "base",
            "overrides": run["overrides"],
            "model": torch.load(run["checkpoints"][0], weights_only=False)["config"],
            "steps": list(run["checkpoints"]),
            "valid_ppl": {str(s): run["valid_ppl"].get(s) for s in run["checkpoints"]},
        },
        "settings": {
            "orders": a.orders,
            "order_seeds": list(range(a.orders)),
            "substitutions": a.substitutions,
            "max_length": a.max_length,
            "separations": list(SEPARATIONS),
            "contact": "virtual C-beta distance < 8 A",
            "top": "L and L/5; among kNN pairs min(L, kNN pairs)",
        },
        "proteins": [
            {"name": p.name, "spec": s, "length": int(p.num_nodes)} for s, p in zip(specs, proteins)
        ],
        "controls": {p.name: controls(p, graph_knn(p, run), contact_map(p)) for p in proteins},
        "rows": rows,
        "summary": summarise(rows),
    }
    return emit(res, a, _summary_line, indent=1, default=float)


def graph_knn(data, run) -> np.ndarray:
    """The kNN mask of the run's graph on ``data`` (``knn[i, j]``: edge ``j -> i``), as the
    maps use it: no backbone noise (the graph does not depend on the weights)."""
    model = load_model(run["checkpoints"][0])
    d = data.clone()
    d.edge_index = None
    with probe_mode(model), torch.no_grad():
        _, _, ei = model.encode(d)
    knn = np.zeros((d.num_nodes, d.num_nodes), dtype=bool)
    knn[ei[1].numpy(), ei[0].numpy()] = True
    return knn


def _summary_line(res: dict) -> str:
    """Without ``--json``: what was scored."""
    return (
        f"jacobian study: {len(res['proteins'])} proteins x {len(res['run']['steps'])} "
        f"checkpoints, {len(res['rows'])} rows"
    )


if __name__ == "__main__":
    main()
