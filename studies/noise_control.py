"""The noise-module control: is diagnose's gap for ``noise`` the module, or 1/std?

``experiments/noise_module.yaml`` adds a module ``noise`` after the last encoder layer that
turns the node states into ``h + W z`` with fresh ``z ~ N(0, std^2)``. Its weight gradient is
``sum_n g_n z_n^T``, proportional to ``std``, so at the demo's ``std = 0.01`` a gap of ~100x
below its peers could be nothing but 1/std. This script trains the same run in three arms --
no module, ``std = 0.01`` (the demo), ``std = 1`` (noise as large as the LayerNorm-ed states) --
for each seed, at the demo's length (16 steps: what diagnose sees) or longer (``--steps``: a
validation loss that has moved), and reports per arm: the validation loss and perplexity, the gradient RMS of
``noise`` and of its neighbours (the last encoder layer, the first decoder layer) over
diagnose's window, the gap finding (a) computes (median of the peers over the module's
gradient RMS, median over the window's tracking steps), and diagnose's findings.

    python -m studies.noise_control                        # 3 arms x 2 seeds x 16 steps
    python -m studies.noise_control --seeds 0 --steps 100 \
        --out benchmarks/results/noise_control_100.json        # longer: a loss that has moved
    python -m studies.noise_control --tiny --out nc.json   # the test's mode (seconds)

Each run is ``python -m pyg_mpnn.train --exp noise_module --set seed=S --set
inject.noise_std=STD`` (``--set inject.noise_after=null`` for no module) followed by
``python -m pyg_mpnn.diagnose``, run here through the same Python APIs (one thread); the JSON
(default ``benchmarks/results/noise_control.json``) records those commands and the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import RESULTS, command, finished, machine, write_json
from pyg_mpnn.diagnose.findings import Thresholds, diagnose, window
from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

EXP = "noise_module"
ARMS = {"no module": None, "std 0.01": 0.01, "std 1": 1.0}
RESULT = RESULTS / "noise_control.json"


def overrides(std: float | None, seed: int | str, steps: int) -> list[str]:
    """The ``--set`` values of one run of an arm (``train.epochs`` large: ``steps`` ends it)."""
    out = [f"seed={seed}", "train.threads=1", "train.progress=false"]
    out += ["inject.noise_after=null"] if std is None else [f"inject.noise_std={std}"]
    return out + [f"train.max_steps={steps}", "train.epochs=1000"]


def train_command(sets: list[str]) -> str:
    return f"python -m pyg_mpnn.train --exp {EXP} --out RUN " + " ".join(f"--set {s}" for s in sets)


def gradient_gap(run_dir: Path, th: Thresholds) -> dict:
    """Gradient RMS (median over diagnose's window) of ``noise``, its neighbours and the
    median of the peers (every non-embedding layer, as finding (a)), and the gap of (a)."""
    rs = read_files(run_dir)
    grads = {k: dict(zip(*v)) for k, v in rs.layer_series("gradient").items()}
    steps = window(sorted({s for g in grads.values() for s in g}), th)
    peers = [k for k in grads if rs.stack(k) != "embed"]
    encoder = [k for k in rs.layers() if rs.stack(k) == "encoder"]
    decoder = [k for k in rs.layers() if rs.stack(k) == "decoder"]
    near = [encoder[-1], decoder[0]]
    peer_median = {
        s: float(np.median([grads[k][s] for k in peers if s in grads[k]])) for s in steps
    }
    out = {
        "window": [steps[0], steps[-1]],
        "tracking_steps": len(steps),
        "grad_rms": {k: float(np.median([grads[k][s] for s in steps])) for k in near},
        "peer_median_grad_rms": float(np.median(list(peer_median.values()))),
    }
    if "noise" in grads:
        noise = grads["noise"]
        ratios = [peer_median[s] / noise[s] for s in steps]
        out["grad_rms"]["noise"] = float(np.median([noise[s] for s in steps]))
        out["gap"] = float(np.median(ratios))
        out["gap_min"] = float(min(ratios))
        out["noise_weight_rms"] = rs.series("norm", layer="noise", kind="weight")[1][-1]
    return out


def one_run(std: float | None, seed: int, steps: int, folder: Path) -> dict:
    sets = overrides(std, seed, steps)
    cfg = load_experiment(EXP, sets)
    t0 = time.time()
    result = Trainer(cfg, folder).fit()
    seconds = time.time() - t0
    th = Thresholds()
    found = diagnose(read_files(folder), th)
    row = {
        "seed": seed,
        "steps": result["step"],
        "seconds": round(seconds, 1),
        "valid_loss": result["valid_loss"],
        "valid_ppl": result["valid_ppl"],
        "train_loss": result["train_loss"],
        **gradient_gap(folder, th),
        "findings": [
            {"code": f.code, "layers": f.layers, "title": f.title, "evidence": f.evidence}
            for f in found
        ],
    }
    if std is not None:  # RMS of W z: std * sqrt(hidden) * RMS(W), against post-LN states ~1
        row["noise_rms"] = std * cfg.model.hidden_dim**0.5 * row.pop("noise_weight_rms")
    return row


def summary(runs: list[dict]) -> dict:
    keys = ["valid_loss", "valid_ppl", "peer_median_grad_rms", "gap", "noise_rms"]
    out = {k: statistics.mean(r[k] for r in runs) for k in keys if k in runs[0]}
    for k in runs[0]["grad_rms"]:
        out[f"grad_rms_{k}"] = statistics.mean(r["grad_rms"][k] for r in runs)
    out["finding_a_on_noise"] = sum(
        any(f["code"] == "a" and f["layers"] == ["noise"] for f in r["findings"]) for r in runs
    )
    out["runs"] = len(runs)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[16],
        help="run lengths: 16 is the demo's (what diagnose reads); longer runs move the loss",
    )
    ap.add_argument("--tiny", action="store_true", help="4 steps, seed 0: the test's mode")
    ap.add_argument("--runs", type=Path, default=None, help="keep the run folders here")
    ap.add_argument("--out", type=Path, default=RESULT, help="the result JSON")
    a = ap.parse_args(argv)
    if a.tiny:
        a.seeds, a.steps = [0], [4]
    return a


def run_arms(a, root: Path) -> dict:
    """``{steps: {arm: {noise_std, command, runs, summary}}}``: every arm and seed at every
    run length, each run in its own folder under ``root``."""
    settings = {}
    jobs = [(n, arm, std, s) for n in a.steps for arm, std in ARMS.items() for s in a.seeds]
    for steps, arm, std, seed in tqdm(jobs, desc="noise control runs"):
        folder = root / f"{steps}steps_{arm.replace(' ', '_')}_seed{seed}"
        row = one_run(std, seed, steps, folder)
        entry = settings.setdefault(str(steps), {}).setdefault(
            arm,
            {"noise_std": std, "command": train_command(overrides(std, "S", steps)), "runs": []},
        )
        entry["runs"].append(row)
    for arms in settings.values():
        for entry in arms.values():
            entry["summary"] = summary(entry["runs"])
    return settings


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(1)
    m = machine()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        settings = run_arms(a, a.runs or Path(tmp))
    result = {
        "command": command("studies.noise_control", argv),
        "experiment": EXP,
        "diagnose": "python -m pyg_mpnn.diagnose RUN (default thresholds)",
        "machine": finished(m),
        "seeds": a.seeds,
        "seconds": round(time.time() - t0, 1),
        "settings": settings,
    }
    write_json(a.out, json.dumps(result, indent=1))
    for steps, arms in settings.items():
        for arm, entry in arms.items():
            s = entry["summary"]
            gap = f", gap {s['gap']:.1f}x" if "gap" in s else ""
            print(
                f"{steps} steps, {arm}: valid ppl {s['valid_ppl']:.3f}{gap}, "
                f"(a) on noise {s['finding_a_on_noise']}/{s['runs']}"
            )
    print(f"wrote {a.out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
