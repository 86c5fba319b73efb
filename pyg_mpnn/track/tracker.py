"""One sink for everything a run reports: a real Aim run plus plain files beside it.

Files in the run folder (for people and tools without Aim; the diagnostics read them):

``metrics.csv``  long format, one value per row:
    ``step, epoch, wall_s, name, subset, layer, stack, kind, part, value``
    (``subset`` train/valid; ``layer`` e.g. ``encoder.1``; ``stack`` embed/encoder/decoder/head;
    ``kind`` weight/activation/gradient/update; ``part`` node/edge for activations).
``histograms.jsonl``  one JSON object per histogram: the same context fields plus ``step``,
    ``range`` ``[lo, hi]`` and ``counts`` (equal-width bins).
``run.json``  experiment name, config, Aim repo and run hash, and the run attributes given to
    :meth:`Tracker.set` (e.g. the model's ``blocks`` and ``frozen_layers``).

Aim: metric names are the ``name`` column, contexts are the other non-empty columns, so the UI
can group/facet by ``layer``, ``kind``, ``stack`` and ``subset``. Only rank 0 writes; every other
rank gets a tracker whose methods do nothing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch.distributed as dist
from aim import Distribution, Image, Repo, Run, Text

from pyg_mpnn.track.aimio import index_run
from pyg_mpnn.utils import jsonable

CONTEXT_KEYS = ("subset", "layer", "stack", "kind", "part")
CSV_FIELDS = ("step", "epoch", "wall_s", "name") + CONTEXT_KEYS + ("value",)


def is_rank_zero() -> bool:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


class Tracker:
    """``track(value, name, step, **context)``, ``distribution(...)``, ``text(...)``, ``close()``."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        cfg: dict,
        aim_repo: str | None = None,
        experiment: str | None = None,
        run_hash: str | None = None,
        use_aim: bool = True,
        enabled: bool | None = None,
        run_name: str | None = None,
        resume_step: int | None = None,
    ):
        self.enabled = is_rank_zero() if enabled is None else enabled
        self.run_dir = Path(run_dir)
        self.aim_run = None
        self.hash = None
        self._t0 = time.time()
        self.epoch = 0
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if use_aim:
            repo = Path(aim_repo) if aim_repo else self.run_dir / "aim"
            repo.mkdir(parents=True, exist_ok=True)
            if not (repo / ".aim").exists():
                Repo.from_path(str(repo), init=True)
            self.aim_repo = str(repo.resolve())
            self.aim_run = Run(
                run_hash=run_hash,
                repo=self.aim_repo,
                experiment=experiment,
                capture_terminal_logs=False,
                log_system_params=False,
                system_tracking_interval=None,
            )
            if run_name:
                self.aim_run.name = run_name
            self.aim_run["hparams"] = jsonable(cfg)
            self.hash = self.aim_run.hash
        if resume_step is not None:
            self._truncate(resume_step)
        resumed = (self.run_dir / "metrics.csv").exists() and (
            self.run_dir / "metrics.csv"
        ).stat().st_size > 0
        self._csv_file = open(self.run_dir / "metrics.csv", "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        if not resumed:
            self._csv.writeheader()
        self._hist_file = open(self.run_dir / "histograms.jsonl", "a")
        self._info = {
            "experiment": experiment,
            "run_name": run_name,
            "config": jsonable(cfg),
            "aim_repo": getattr(self, "aim_repo", None),
            "aim_run_hash": self.hash,
        }
        self._write_info()

    def _write_info(self) -> None:
        (self.run_dir / "run.json").write_text(json.dumps(self._info, indent=1))

    def _truncate(self, step: int) -> None:
        """On resume: drop what a killed run wrote after its checkpoint (and torn lines)."""
        path = self.run_dir / "metrics.csv"
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            keep = lines[:1] + [
                ln
                for ln in lines[1:]
                if ln.endswith("\n")
                and ln.split(",", 1)[0].isdigit()
                and int(ln.split(",", 1)[0]) <= step
            ]
            path.write_text("".join(keep) if lines and lines[0].startswith("step,") else "")
        path = self.run_dir / "histograms.jsonl"
        if path.exists():
            keep = []
            for ln in path.read_text().splitlines(keepends=True):
                try:
                    if ln.endswith("\n") and json.loads(ln)["step"] <= step:
                        keep.append(ln)
                except (ValueError, KeyError):
                    pass
            path.write_text("".join(keep))

    # -- scalars -------------------------------------------------------------------------------
    def track(self, value: float, name: str, step: int, epoch: int | None = None, **context):
        if not self.enabled:
            return
        value = float(value)
        epoch = self.epoch if epoch is None else epoch
        ctx = {k: v for k, v in context.items() if v is not None}
        if self.aim_run is not None and math.isfinite(value):
            self.aim_run.track(value, name=name, step=step, epoch=epoch, context=ctx)
        row = {
            "step": step,
            "epoch": epoch,
            "wall_s": round(time.time() - self._t0, 3),
            "name": name,
            "value": value,
        }
        row.update({k: ctx.get(k, "") for k in CONTEXT_KEYS})
        self._csv.writerow(row)

    def track_many(self, values: dict, step: int, epoch: int | None = None, **context):
        for name, value in values.items():
            self.track(value, name, step, epoch, **context)

    # -- histograms ----------------------------------------------------------------------------
    def distribution(
        self,
        values: np.ndarray,
        name: str,
        step: int,
        bins: int = 64,
        epoch: int | None = None,
        **context,
    ):
        if not self.enabled:
            return
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
        self.histogram(counts, (lo, hi), name, step, epoch, **context)

    def histogram(
        self, counts, value_range, name: str, step: int, epoch: int | None = None, **context
    ):
        if not self.enabled:
            return
        epoch = self.epoch if epoch is None else epoch
        ctx = {k: v for k, v in context.items() if v is not None}
        counts = np.asarray(counts)
        if self.aim_run is not None:
            self.aim_run.track(
                Distribution(hist=counts, bin_range=tuple(value_range)),
                name=name,
                step=step,
                epoch=epoch,
                context=ctx,
            )
        rec = {
            "step": step,
            "epoch": epoch,
            "name": name,
            **ctx,
            "range": [float(value_range[0]), float(value_range[1])],
            "counts": counts.astype(np.int64).tolist(),
        }
        self._hist_file.write(json.dumps(rec) + "\n")

    # -- other ---------------------------------------------------------------------------------
    def text(self, text: str, name: str, step: int = 0, **context):
        if self.enabled and self.aim_run is not None:
            self.aim_run.track(Text(text), name=name, step=step, context=context)

    def set(self, key: str, value) -> None:
        """A run attribute: in Aim (``run[key]``) and in ``run.json``."""
        if not self.enabled:
            return
        if self.aim_run is not None:
            self.aim_run[key] = jsonable(value)
        self._info[key] = jsonable(value)
        self._write_info()

    def figure(self, fig, name: str, step: int = 0, **context):
        """Log a matplotlib figure as an Aim image."""
        if self.enabled and self.aim_run is not None:
            self.aim_run.track(Image(fig), name=name, step=step, context=context)

    def flush(self) -> None:
        if self.enabled:
            self._csv_file.flush()
            self._hist_file.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self.flush()
        self._csv_file.close()
        self._hist_file.close()
        if self.aim_run is not None:
            self.aim_run.close()
            self.aim_run = None
            with suppress(Exception):  # make the run visible to Repo queries without `aim up`
                index_run(self.aim_repo, self.hash)
        self.enabled = False
