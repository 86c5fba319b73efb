"""One run of a sweep (a size or an ablation point): FLOP counting, its training, its row.

Shared by both forms of :mod:`pyg_mpnn.sweep` (:mod:`~pyg_mpnn.sweep.sizes` and
:mod:`~pyg_mpnn.sweep.points`). A run stops at its budget: training residues
(``train.max_residues``), training FLOPs (converted to residues with the FLOPs per residue
counted on its first batch) or *supervised* residues — the residues that carry loss
(``mask & design_mask & loss_mask``: a spatial crop's inner sphere), counted by
:class:`SweepTrainer` at every step.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from pyg_mpnn.atomic import atomic_write_text, csv_text
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.sweep import plan as sweep_plan
from pyg_mpnn.train.config import Config
from pyg_mpnn.train.data import RunData
from pyg_mpnn.train.loss import Meter, TrainingLoss, supervised_mask
from pyg_mpnn.train.precision import (
    autocast,
    peak_memory_mb,
    pick_device,
    pick_precision,
    reset_peak_memory,
)
from pyg_mpnn.train.trainer import Trainer

POINT_COLUMNS = (
    "params",
    "flops_per_residue",
    "peak_memory_mb",
    "residues_per_s",
    "loss_residues_per_s",
    "residues_trained",
    "supervised_trained",
    "steps",
    "train_loss",
    "train_acc",
    "valid_loss",
    "valid_ppl",
    "valid_acc",
    "minutes",
)


class SweepTrainer(Trainer):
    """A :class:`~pyg_mpnn.train.trainer.Trainer` with a sweep run's budgets, given to its
    constructor, beside the config's stop conditions.

    It counts the FLOPs per residue of its model on its first training batch
    (``flops_per_residue``) and the supervised residues of every step (``supervised_seen``:
    the residues of its batches that carry loss).

    Args:
        flop_budget (float, optional): stop after this many training FLOPs (converted to
            residues: ``max_flop_residues``).
        max_supervised (int, optional): stop once ``supervised_seen`` reaches it.
        **kwargs: the :class:`~pyg_mpnn.train.trainer.Trainer`'s arguments.
    """

    def __init__(
        self,
        *args,
        flop_budget: float | None = None,
        max_supervised: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.max_supervised, self.supervised_seen = max_supervised, 0
        # every run starts the data order afresh (the one before may have stopped mid-epoch)
        first = first_batches(self.data, 1)[0]
        self.data.sampler.load_state_dict(
            {"epoch": 0, "consumed": 0, "seed": self.data.sampler.seed}
        )
        self.flops_per_residue = count_flops_per_residue(
            self.model, first, self.cfg, self.precision, self.device
        )
        self.max_flop_residues = (
            sweep_plan.residue_budget(flop_budget, self.flops_per_residue) if flop_budget else None
        )

    def on_step(self, micro: list) -> None:
        self.supervised_seen += sum(int(supervised_mask(b).sum()) for b in micro)

    def should_stop(self) -> bool:
        if self.max_supervised is not None and self.supervised_seen >= self.max_supervised:
            return True
        if self.max_flop_residues is not None and self.residues_seen >= self.max_flop_residues:
            return True
        return super().should_stop()


def _loss_of(model, batch, loss: TrainingLoss, precision: str, device):
    with autocast(precision, device):
        log_probs = model(batch)
    return loss(log_probs, batch)


def count_flops_per_residue(model, batch, cfg: Config, precision: str, device) -> float:
    """Forward + backward FLOPs of one training batch per residue (no optimizer step): the
    model's, without the products that ``recompute_activations`` repeats to save memory (a
    choice of the machine, ``auto``: sizes and runs are compared at equal model FLOPs)."""
    batch = batch.to(device)
    state = torch.get_rng_state()
    modes = model.set_modes(recompute_activations=False)
    try:
        with FlopCounterMode(display=False) as counter:
            _loss_of(model, batch, TrainingLoss(cfg.loss), precision, device).backward()
    finally:
        model.set_modes(modes)
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(state)  # measuring must not change the training stream
    return counter.get_total_flops() / batch.num_nodes


def flops_of_config(cfg: Config, batch) -> float:
    """FLOPs per residue of a fresh model built from ``cfg`` on ``batch`` (the RNG restored)."""
    state = torch.get_rng_state()
    device = pick_device(cfg.train.device)
    model = ProteinMPNN(**cfg.model.kwargs()).to(device)
    torch.set_rng_state(state)
    precision = pick_precision(cfg.train.precision, device)
    return count_flops_per_residue(model, batch, cfg, precision, device)


def first_batches(data: RunData, n: int) -> list:
    """The first ``n`` training batches of epoch 0, drawn aside (the RNG is restored)."""
    data.sampler.load_state_dict({"epoch": 0, "consumed": 0, "seed": data.sampler.seed})
    state, out = torch.get_rng_state(), []
    for batch in data.train_loader:
        out.append(batch)
        if len(out) == n:
            break
    torch.set_rng_state(state)
    return out


def time_size(cfg: Config, name: str, batches: list, data: RunData) -> sweep_plan.SizeTiming:
    """FLOPs per residue and residues/s of one size from a short
    :class:`~pyg_mpnn.train.trainer.Trainer` run (in a folder thrown away after): its training
    steps over ``batches``, one untimed pass, then a timed one. The first pass builds the
    kernels of those shapes (oneDNN compiles one per shape under bf16, ~25 % of a cold step),
    as a long run has done for almost every step; timing cold steps made the plan pessimistic
    by that much. The torch RNG is restored after."""
    state = torch.get_rng_state()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, run_name=name, data=data, quiet=True)
        try:
            fpr = flops_per_residue(trainer, batches[0])
            trainer.model.train()
            for _ in range(2):
                for batch in batches:
                    trainer.train_step([batch], 0.0)
        finally:
            trainer.close()
    torch.set_rng_state(state)
    timed = trainer.step_times[len(batches) : 2 * len(batches)]
    seconds = sum(s["total"] for s in timed)
    residues = sum(s["residues"] for s in timed)
    return sweep_plan.SizeTiming(name, fpr, residues / max(seconds, 1e-9))


def train_point(
    cfg: Config,
    out: Path,
    name: str,
    overrides: list[str],
    data: RunData,
    aim_repo: Path,
    budget: int | None,
    minutes: float | None,
    flop_budget: float | None = None,
    supervised_budget: int | None = None,
) -> dict:
    """Train ``cfg`` with ``overrides`` for ``budget`` residues (or ``flop_budget`` FLOPs, or
    ``supervised_budget`` residues that carry loss) as run ``name``; its metrics (and
    ``history``: the validations along the way)."""
    c = cfg.override(
        list(overrides)
        + [
            f"train.max_residues={budget if budget else 'null'}",
            f"train.max_minutes={minutes if minutes else 'null'}",
            f"track.aim_repo={aim_repo}",
            f"track.experiment={cfg.name}",
            "sweep.points=null",  # one run: its config is not a sweep of points any more
        ]
    )
    t0 = time.time()
    if data.transform_spec != c.data.transform or data.seed != c.seed:
        data = RunData(c.data, c.seed, progress=c.train.progress, backbone=c.model.backbone)
    trainer = SweepTrainer(
        c,
        out / name,
        run_name=name,
        data=data,
        flop_budget=flop_budget,
        max_supervised=supervised_budget,
    )
    params = sum(p.numel() for p in trainer.model.parameters())
    base = reset_peak_memory(trainer.device)
    result = trainer.fit()
    peak = peak_memory_mb(trainer.device) - base
    return {
        "params": params,
        "flops_per_residue": trainer.flops_per_residue,
        "peak_memory_mb": peak,
        **_rates(trainer),
        "residues_trained": trainer.residues_seen,
        "supervised_trained": trainer.supervised_seen,
        "steps": trainer.step,
        "valid_loss": result.get("valid_loss"),
        "valid_ppl": result.get("valid_ppl"),
        "valid_acc": result.get("valid_acc"),
        "minutes": (time.time() - t0) / 60,
        "history": trainer.valid_history,
    }


def flops_per_residue(trainer, batch) -> float:
    return count_flops_per_residue(
        trainer.model, batch, trainer.cfg, trainer.precision, trainer.device
    )


def _rates(trainer: Trainer) -> dict:
    """Residues/s (median over steps after the first two), supervised residues per second of
    step time, and the train loss/accuracy of the last quarter of steps."""
    times = trainer.step_times[2:] or trainer.step_times
    rates = [s["residues"] / s["total"] for s in times]
    tail = Meter()
    for m in trainer.recent[-max(len(trainer.recent) // 4, 1) :]:
        tail.add(m)
    n = min(len(trainer.recent), len(times))
    sup = sum(m["count"] for m in trainer.recent[-n:]) if n else 0.0
    busy = sum(s["total"] for s in times[-n:]) if n else 0.0
    return {
        "residues_per_s": statistics.median(rates) if rates else float("nan"),
        "loss_residues_per_s": sup / busy if busy else float("nan"),
        "train_loss": tail.loss,
        "train_acc": tail.acc,
    }


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_table(rows: list[dict], out: Path, name: str, columns: tuple) -> None:
    atomic_write_text(out / f"{name}.csv", csv_text(rows, columns))
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    atomic_write_text(out / f"{name}.md", "\n".join(md) + "\n")
