"""Run an ablation experiment (``sweep.points``) and keep its result for the docs.

    python -m studies.ablation --exp enc_dec_isoflop --data ../shared/data/training \\
        --out runs/findings5/enc_dec_isoflop --json benchmarks/results/enc_dec_isoflop.json \\
        --figure docs/figures/findings_enc_dec_isoflop.png --set train.threads=1

The experiment runs exactly as ``python -m pyg_mpnn.train --exp NAME`` would
(:func:`pyg_mpnn.sweep.run_sweep`); the result file holds the command, the machine
(:func:`benchmarks.common.machine`, with the load average at the start and the end),
the sweep's table rows (one per point and seed, without the validation histories), the per-point
summary over seeds (mean, standard deviation, min-max) and the FLOP matching.
``tools/render_docs.py`` renders docs/findings.md's tables from it. ``--figure`` writes a
small copy of the sweep's figure (validation perplexity and accuracy, residues/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import command, finished, machine, write_json
from pyg_mpnn.sweep import run_sweep
from pyg_mpnn.sweep.points import plot_points
from pyg_mpnn.train.config import load_experiment

FIGURE_PANELS = (
    ("valid_ppl", "validation perplexity"),
    ("valid_acc", "validation accuracy"),
    ("residues_per_s", "residues / s (1 thread)"),
)


def result_doc(sweep_json: dict, command: str, m: dict, minutes: float) -> dict:
    """The result file's content: the command, machine, rows (no histories) and summary."""
    rows = [{k: v for k, v in r.items() if k != "history"} for r in sweep_json["rows"]]
    return {
        "command": command,
        "machine": m,
        "minutes": minutes,
        **{k: v for k, v in sweep_json.items() if k != "rows"},
        "rows": rows,
    }


def figure(doc: dict, path: Path) -> None:
    """The docs' small figure of a result file: the means over seeds with their sd, the seeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_points(
        doc["rows"],
        path,
        f"{doc['table']}: {doc['budget']} a run (squares: mean ± sd over seeds; dots: seeds)",
        panels=FIGURE_PANELS,
        dpi=80,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exp", required=True, help="an experiment with sweep.points")
    ap.add_argument("--data", default=None, help="data.path")
    ap.add_argument("--out", type=Path, required=True, help="the sweep's run folder")
    ap.add_argument("--json", type=Path, required=True, help="the result file to write")
    ap.add_argument("--figure", type=Path, default=None, help="a small PNG for the docs")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument(
        "--figure-only", action="store_true", help="redraw --figure from --json; run nothing"
    )
    a = ap.parse_args(argv)
    if a.figure_only:
        if not a.figure:
            ap.error("--figure-only needs --figure")
        figure(json.loads(a.json.read_text()), a.figure)
        return 0
    sets = ([f"data.path={a.data}"] if a.data else []) + a.sets
    cfg = load_experiment(a.exp, sets)
    if not cfg.sweep.points:
        ap.error(f"experiment {a.exp!r} has no sweep.points")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    m, t0 = machine(), time.time()
    run_sweep(cfg, a.out)
    m = finished(m)
    name = cfg.sweep.table or cfg.name
    sweep_json = json.loads((a.out / f"{name}.json").read_text())
    cmd = command("studies.ablation", argv)
    doc = result_doc(sweep_json, cmd, m, (time.time() - t0) / 60)
    write_json(a.json, json.dumps(doc, indent=1, default=str))
    if a.figure:
        figure(doc, a.figure)
    print(f"{a.json}" + (f", {a.figure}" if a.figure else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
