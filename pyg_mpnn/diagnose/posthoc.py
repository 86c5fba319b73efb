"""The Jacobian probe on a finished run's checkpoints (for runs trained without
``jacobian.every_steps``): results go to ``<run>/jacobian/step_XXXXXXXX.npz`` exactly as the
in-training hook writes them, so ``diagnose`` reports them the same way."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from pyg_mpnn.diagnose.jacobian import categorical_jacobian, evaluate, load_probe, save_result
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.weights import load_file


def _model(cfg: dict, state: dict | None, seed: int):
    torch.manual_seed(seed)
    model = ProteinMPNN(**cfg)
    if state is not None:
        model.load_state_dict(state, strict=False)  # extra modules (inject.noise) ignored
    return model


def probe_checkpoints(
    run_dir: str | Path,
    n: int,
    probe: str | None = None,
    max_length: int | None = None,
    substitutions: int | None = None,
    log=print,
) -> list[dict]:
    """Probe ``n`` checkpoints spread over the run (first, last, evenly between) and a fresh
    initialisation of the same model (step 0); steps already probed are skipped."""
    run_dir = Path(run_dir)
    pts = sorted(run_dir.glob("checkpoints/step_*.pt"))
    pick = (
        [pts[i] for i in sorted({int(round(x)) for x in np.linspace(0, len(pts) - 1, n)})]
        if pts and n > 0
        else []
    )
    done = {int(p.stem.split("_")[1]) for p in (run_dir / "jacobian").glob("step_*.npz")}
    state0 = load_file(str(pick[0])) if pick else None
    cfg = state0["config"] if state0 else None
    jcfg = (state0 or {}).get("train_config", {}).get("jacobian") or {} if state0 else {}
    data = load_probe(probe or jcfg.get("probe", "auto"), max_length or jcfg.get("max_length", 120))
    subs = int(substitutions or jcfg.get("substitutions", 20))
    results = []
    todo = [(0, None)] + [(int(re.findall(r"\d+", p.stem)[0]), p) for p in pick]
    for step, path in todo:
        if step in done or cfg is None:
            continue
        t0 = time.perf_counter()
        state = load_file(str(path))["model"] if path else None
        model = _model(cfg, state, seed=0)
        jac = categorical_jacobian(model, data, substitutions=subs)
        res = evaluate(jac["C"], jac["knn"], data)
        res["seconds"] = time.perf_counter() - t0
        save_result(run_dir, step, jac["C"], res, data.name)
        log(
            f"jacobian probe {data.name} (L={data.num_nodes}) at step {step}: "
            f"P@L {res['precision_L']:.3f}, P@L/5 {res['precision_L5']:.3f}, random "
            f"{res['random']:.3f}, outside kNN {res['outside_knn']:.3f} "
            f"({res['seconds']:.0f} s)"
        )
        results.append(res)
    return results
