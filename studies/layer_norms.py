"""Per-layer norms before and after LayerNorm on a short real run.

Every encoder and decoder layer of ProteinMPNN ends in LayerNorm, so the tracked activation
(``part`` ``node``/``edge``) has RMS ~1 by construction. The tracking also records the terms
*before* the norms (``pyg_mpnn/track/layers.py``, ``Block.taps``): ``node_message`` (the summed
messages, before the division by ``scale``), ``node_residual`` (the message branch added to
``h`` before ``norm1``), ``node_ffn`` (the feed-forward branch added before ``norm2``) and
``edge_residual`` (the edge branch added before ``norm3``). This script trains a small
base-like model (the scale sweep's ``h64-d3``: hidden 64, 3 + 3 layers, k = 16, its learning
rate schedule, ~1,000-residue batches of the full embedded data, fp32, one thread) for a few hundred
steps and writes, per layer and tracked step, the post-LN activation RMS, the pre-LN RMS, and
the weight, gradient and update/weight values to ``benchmarks/results/layer_norms.json``
(rendered into docs/monitoring.md by ``tools/render_docs.py``).

    python -m studies.layer_norms                       # 120 steps (the JSON records the wall time)
    python -m studies.layer_norms --tiny --out ln.json   # the test's mode (seconds)
    python -m studies.layer_norms --from-run runs/base_cpu30_idle --table-steps 1 400 1600 \
        --out base.json       # the same JSON from a run tracked earlier (no training)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, command, finished, machine, write_json
from pyg_mpnn.diagnose.series import read_files
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

EXP = "smoke"
MODEL = [  # the scale sweep's h64-d3 on the embedded data
    "model.hidden_dim=64",
    "model.num_encoder_layers=3",
    "model.num_decoder_layers=3",
    "model.k_neighbors=16",
    "schedule.model_size=128",
    "schedule.factor=0.5",
    "schedule.warmup_steps=30",
    "data.path=embedded",  # the full embedded set: 299 structures, 26 validation complexes
    "data.max_length=3000",
    "data.max_tokens=1000",
    "train.epochs=1000",
    "train.threads=1",
    "checkpoint.every_steps=null",
]
# (kind, part) -> key in the JSON
QUANTITIES = {
    ("weight", ""): "weight",
    ("gradient", ""): "gradient",
    ("activation", "node"): "node",
    ("activation", "edge"): "edge",
    ("activation", "node_message"): "node_message",
    ("activation", "node_residual"): "node_residual",
    ("activation", "node_ffn"): "node_ffn",
    ("activation", "edge_residual"): "edge_residual",
}
RESULT = RESULTS / "layer_norms.json"


def collect(run_dir: Path) -> dict:
    """``{layer: {quantity: {step: value}}}`` and the validation losses of a tracked run."""
    rs = read_files(run_dir)
    layers = {}
    for (kind, part), key in QUANTITIES.items():
        for layer, (steps, values) in rs.layer_series(kind, part=part).items():
            layers.setdefault(layer, {})[key] = dict(zip(map(str, steps), values))
    for layer, (steps, values) in rs.layer_series("update", "update_ratio").items():
        layers.setdefault(layer, {})["update_ratio"] = dict(zip(map(str, steps), values))
    vs, vv = rs.series("loss", subset="valid")
    return {
        "blocks": [list(b) for b in rs.blocks] or [[la, rs.stack(la)] for la in rs.layers()],
        "layers": layers,
        "valid_loss": dict(zip(map(str, vs), vv)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--every", type=int, default=20, help="track.layer_every")
    ap.add_argument(
        "--tiny", action="store_true", help="4 steps tracked every 2, default data: the test's mode"
    )
    ap.add_argument("--run", type=Path, default=None, help="keep the run folder here")
    ap.add_argument("--out", type=Path, default=RESULT, help="the result JSON")
    ap.add_argument("--from-run", type=Path, default=None, help="read this tracked run instead")
    ap.add_argument("--table-steps", type=int, nargs="+", default=None, help="steps shown")
    a = ap.parse_args(argv)
    if a.from_run:
        return write(a, collect(a.from_run), {"source_run": str(a.from_run)})
    if a.tiny:
        a.steps, a.every = 4, 2
    torch.set_num_threads(1)
    sets = MODEL + [f"train.max_steps={a.steps}", f"track.layer_every={a.every}"]
    if a.tiny:  # the small default set: nothing to prepare
        sets += ["data.path=null", "data.max_length=500"]
    cfg = load_experiment(EXP, sets)
    m = machine()
    with tempfile.TemporaryDirectory() as tmp:
        run = a.run or Path(tmp) / "run"
        t0 = time.time()
        final = Trainer(cfg, run).fit()
        seconds = time.time() - t0
        data = collect(run)
    m = finished(m)
    train = " ".join(f"--set {s}" for s in sets)
    return write(
        a,
        data,
        {
            "command": command("studies.layer_norms", argv),
            "train_command": f"python -m pyg_mpnn.train --exp {EXP} --out RUN {train}",
            "machine": m,
            "seconds": round(seconds, 1),
            "final": {k: final[k] for k in ("step", "valid_loss", "valid_ppl", "train_loss")},
        },
    )


def write(a, data: dict, head: dict) -> int:
    """The result JSON: ``head``, the tracked steps, the steps the tables show, ``data``."""
    steps = sorted({int(s) for q in data["layers"].values() for v in q.values() for s in v})
    shown = a.table_steps or [steps[0], steps[len(steps) // 2], steps[-1]]
    missing = sorted(set(shown) - set(steps))
    if missing:
        raise SystemExit(f"--table-steps {missing}: not tracked steps (tracked: {steps})")
    result = {**head, "steps": steps, "table_steps": shown, **data}
    write_json(a.out, json.dumps(result, indent=1))
    print(f"wrote {a.out}: layers tracked at {len(steps)} steps, {steps[0]}..{steps[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
