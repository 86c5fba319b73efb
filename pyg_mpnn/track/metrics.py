"""Reading a run folder's ``metrics.csv`` (written by :class:`~pyg_mpnn.track.tracker.Tracker`).

One reader for every tool that reads the file (``track.plot``, ``diagnose``). It tolerates what
a killed or resumed run leaves behind: a last line cut short (no newline: dropped) and header
lines repeated inside the file (skipped).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from pyg_mpnn.track.tracker import CONTEXT_KEYS


def _float(text: str | None) -> float:
    """``text`` as a float; NaN when it is not a number (the CSV holds ``nan`` and ``inf``)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _complete_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines that end with a newline: the last line of a killed run may not."""
    return (line for line in lines if line.endswith("\n"))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir/metrics.csv``, in file order.

    Each row is ``{step, epoch, wall_s, name, subset, layer, stack, kind, part, value}``:
    ``step`` and ``epoch`` ints, ``wall_s`` and ``value`` floats (non-finite values kept as
    written; NaN for an empty cell), the others strings (``""`` when absent).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.csv``.
    """
    rows = []
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        for r in csv.DictReader(_complete_lines(f)):
            step, epoch = r.get("step") or "", r.get("epoch") or ""
            if not step.isdigit():
                continue  # a header line written again by a resumed run
            rows.append(
                {
                    "step": int(step),
                    "epoch": int(epoch) if epoch.isdigit() else 0,
                    "wall_s": _float(r.get("wall_s")),
                    "name": r.get("name") or "",
                    **{k: r.get(k) or "" for k in CONTEXT_KEYS},
                    "value": _float(r.get("value")),
                }
            )
    return rows
