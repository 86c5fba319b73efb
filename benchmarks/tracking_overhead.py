"""Tracking overhead of a training step, printed as JSON.

One real training batch (proteins of the embedded default dataset, about ``--residues``
residues) and one real model (``base`` by default: hidden 128, 3+3 layers, k=48) run
optimizer steps in three interleaved modes:

* ``off``: no tracking at all (no Aim, no CSV, no per-layer norms);
* ``scalars``: per-step scalars to Aim + CSV (what every step pays);
* ``layers``: scalars plus the per-layer norms and histograms on every step (what a step
  pays every ``track.layer_every`` steps).

The overhead at interval ``n`` is ``(scalars - off + (layers - scalars) / n) / off``, from the
median step times (``overhead_frac_ab``), and from the time measured inside the tracking code
itself (``overhead_frac_timed``, less sensitive to a noisy shared CPU). ``pass`` is
``overhead_frac_timed < 0.05`` at the default interval of ``experiments/base.yaml``.

    python -m benchmarks.tracking_overhead            # base model, ~1000 residues
    python -m benchmarks.tracking_overhead --hidden 32 --layers 1 --residues 300 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
from torch_geometric.data import Batch

from benchmarks.common import emit, finished, machine
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

MODES = {"off": (False, 0), "scalars": (True, 0), "layers": (True, 1)}  # (tracker on, layer_every)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--k", type=int, default=48)
    ap.add_argument("--residues", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the 3 modes")
    ap.add_argument(
        "--interval", type=int, default=None, help="layer_every to evaluate (default: base.yaml's)"
    )
    ap.add_argument("--threads", type=int, default=None)
    return ap.parse_args(argv)


def small_batch(trainer: Trainer, residues: int) -> Batch:
    """The training set's smallest proteins, smallest first, until ``residues``."""
    ds = trainer.data.train
    items, total = [], 0
    for i in sorted(range(len(ds)), key=lambda i: ds.lengths[i]):
        if total + ds.lengths[i] > residues and items:
            break
        items.append(ds[i])
        total += int(ds.lengths[i])
    return Batch.from_data_list(items)


def time_modes(trainer: Trainer, batch: Batch, rounds: int) -> tuple[dict, dict]:
    """Median step seconds and median tracking seconds of each of :data:`MODES`, after one
    untracked warm-up step, over ``rounds`` interleaved rounds."""
    steps = {m: [] for m in MODES}
    tracked = {m: [] for m in MODES}
    enabled = trainer.tracker.enabled
    trainer.tracker.enabled, trainer.monitor.every = False, 0
    trainer.train_step([batch], 0.0)  # warm-up
    for _ in range(rounds):
        for mode, (on, every) in MODES.items():
            trainer.tracker.enabled, trainer.monitor.every = on and enabled, every
            t0 = time.perf_counter()
            trainer.train_step([batch], 0.0)
            steps[mode].append(time.perf_counter() - t0)
            tracked[mode].append(trainer.step_times[-1]["tracking"])
    trainer.tracker.enabled = enabled
    med = {m: statistics.median(v) for m, v in steps.items()}
    return med, {m: statistics.median(v) for m, v in tracked.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    interval = args.interval or load_experiment("base").track.layer_every
    model = [f"model.hidden_dim={args.hidden}", f"model.k_neighbors={args.k}"]
    model += [f"model.num_encoder_layers={args.layers}", f"model.num_decoder_layers={args.layers}"]
    sets = ["train.precision=fp32", "train.progress=false", "data.max_length=100000"]
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(load_experiment("base", model + sets + ["track.layer_every=1"]), out)
        batch = small_batch(trainer, args.residues)
        med, trk = time_modes(trainer, batch, args.rounds)
        trainer.tracker.close()
    off = med["off"]
    ab = (med["scalars"] - off + (med["layers"] - med["scalars"]) / interval) / off
    timed = (trk["scalars"] + (trk["layers"] - trk["scalars"]) / interval) / off
    result = {
        "model": {"hidden_dim": args.hidden, "layers": args.layers, "k_neighbors": args.k},
        "residues_per_step": batch.num_nodes,
        "rounds": args.rounds,
        "interval": interval,
        "threads": torch.get_num_threads(),
        "machine": finished(info),
        "step_s_median": med,
        "tracking_s_median": trk,
        "per_step_scalars_s": trk["scalars"],
        "per_layer_event_s": trk["layers"] - trk["scalars"],
        "overhead_frac_ab": ab,
        "overhead_frac_timed": timed,
        "overhead_frac_layers_every_step": (trk["layers"]) / off,
        "target": 0.05,
        "pass": timed < 0.05,
    }
    emit(result, args, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
