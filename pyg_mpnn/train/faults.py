"""What a run does when a long run's faults happen (docs/reliability.md lists each one and the
test that proves it).

* :class:`BadStepGuard`: a step whose loss or gradient norm is not finite is skipped (no
  update, not added to the epoch's metrics, counted); ``train.max_bad_steps`` such steps in a
  row stop the run with a :class:`BadStepsError` that points at ``python -m pyg_mpnn.diagnose``.
* :class:`FaultLog`: every fault a run survives (a record skipped for a failed checksum, a
  data loader worker restarted, a skipped step) is logged on the terminal and appended as one
  JSON line to ``<run>/faults.jsonl``.
* :class:`RunFault`: the faults that stop a run (bad steps, a checkpoint that cannot be written
  or read); ``python -m pyg_mpnn.train`` prints their message, without a traceback, and exits
  with status 1.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path


class RunFault(RuntimeError):
    """A fault that stops a run; ``str()`` says what happened and what to do."""


class BadStepsError(RunFault):
    pass


class CheckpointError(RunFault):
    pass


class BadStepGuard:
    """Counts non-finite steps; raises :class:`BadStepsError` after ``max_bad`` in a row.

    A step is bad when its loss is not finite, or its gradient norm is not finite outside
    fp16 (with fp16 the GradScaler skips overflowing steps itself and lowers its scale: that
    is expected and not counted).

    Args:
        max_bad (int): consecutive bad steps that stop the run (``train.max_bad_steps``;
            ``0`` or ``None``: never stop).
        run_dir (Path): the run folder, named in the message.
    """

    def __init__(self, max_bad: int | None, run_dir: str | Path = "."):
        self.max_bad, self.run_dir = int(max_bad or 0), Path(run_dir)
        self.in_a_row, self.total, self.first = 0, 0, None

    def check(self, step: int, loss: float, grad_norm: float, precision: str) -> bool:
        """Whether step ``step`` is bad (its update must be skipped); raises when it is the
        ``max_bad``-th bad step in a row."""
        bad = not math.isfinite(loss) or (precision != "fp16" and not math.isfinite(grad_norm))
        if not bad:
            self.in_a_row, self.first = 0, None
            return False
        self.in_a_row += 1
        self.total += 1
        self.first = step if self.first is None else self.first
        if self.max_bad and self.in_a_row >= self.max_bad:
            raise BadStepsError(
                f"{self.in_a_row} training steps in a row (steps {self.first}-{step}) had a "
                f"non-finite loss or gradient (last: loss {loss}, gradient norm {grad_norm}); "
                f"the run stopped (train.max_bad_steps={self.max_bad}). Its weights are those "
                f"before step {self.first}. Find the layer and step where it starts with:\n"
                f"    python -m pyg_mpnn.diagnose {self.run_dir}"
            )
        return True

    def state_dict(self) -> dict:
        return {"in_a_row": self.in_a_row, "total": self.total, "first": self.first}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.in_a_row, self.total, self.first = (
                state["in_a_row"],
                state["total"],
                state["first"],
            )


class FaultLog:
    """One JSON line per survived fault in ``<run>/faults.jsonl`` (``time``, ``step``,
    ``kind``, ``message``), the same message on the terminal (``log``), and a ``fault_<kind>``
    metric of 1 at that step (``tracker``)."""

    def __init__(self, run_dir: str | Path, log=print, tracker=None, enabled: bool = True):
        self.path = Path(run_dir) / "faults.jsonl"
        self.log, self.tracker, self.enabled = log, tracker, enabled
        self.counts: Counter = Counter()  # events of this process by kind
        self._seen: dict[int, tuple[int, int]] = {}  # id(loader) -> (errors, restarts) reported

    def event(self, kind: str, step: int, message: str) -> None:
        self.counts[kind] += 1
        if not self.enabled:
            return
        self.log(f"warning: {message}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(
                json.dumps(
                    {"time": round(time.time(), 3), "step": step, "kind": kind, "message": message}
                )
                + "\n"
            )
        if self.tracker is not None:
            self.tracker.track(1.0, f"fault_{kind}", step)

    def poll(self, loader, step: int, where: str = "train") -> None:
        """Report what ``loader`` (a :class:`~pyg_mpnn.data.loader.ProteinLoader`) skipped or
        restarted since the last call."""
        errors, restarts = getattr(loader, "errors", []), getattr(loader, "restarts", [])
        n_err, n_res = self._seen.get(id(loader), (0, 0))
        for batch, message in errors[n_err:]:
            self.event("skipped_record", step, f"{where} batch {batch}: skipped {message}")
        for message in restarts[n_res:]:
            self.event("worker_restart", step, f"{where}: {message}")
        self._seen[id(loader)] = (len(errors), len(restarts))
