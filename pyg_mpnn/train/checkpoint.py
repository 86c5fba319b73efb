"""Atomic checkpoints, retention (last N + best) and RNG state capture for exact resume.

A checkpoint is one ``torch.save`` dict. Top-level ``model`` (state_dict) and ``config`` (the
model's constructor kwargs) are what :mod:`pyg_mpnn.nn.weights` reads and exports to the
original's format; the rest is the training state: ``optimizer``, ``scaler``, ``step``
(optimizer steps done), ``epoch``, ``batch_in_epoch`` (batches of that epoch already consumed),
``sampler`` (the batch sampler's state_dict), ``rng`` (python, numpy, torch CPU and CUDA
generators), ``meters`` (running epoch sums), ``best``, ``train_config`` (the whole experiment
config) and ``aim_run_hash`` (to continue the same Aim run).

Writes go to a temporary file in the same folder, are flushed and ``fsync``-ed, then
``os.replace``-d over the final name (atomic on POSIX), and the folder is ``fsync``-ed: a kill at
any moment leaves either the previous file or the new one, never a truncated one. A write that
fails (e.g. the disk is full) raises :class:`~pyg_mpnn.train.faults.CheckpointError` naming the
file and the free space, and leaves the previous checkpoints as they were.

Reading for a resume (:func:`load_checked`) verifies the file first: the CRC-32 of every member
of the checkpoint's zip archive (``torch.save`` writes them; ``torch.load`` does not check them,
so a flipped bit in a tensor would load silently), then ``torch.load`` and the keys a resume
needs. :func:`newest_valid` walks back from the newest checkpoint of a run to the newest one that
passes, moving each bad file aside to ``<name>.corrupt`` (never overwritten, never deleted).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import torch

from pyg_mpnn.atomic import atomic_write, error_text
from pyg_mpnn.nn.weights import describe_file, load_file

# the generators' capture and seeding live in pyg_mpnn.seeding; named here too, as the
# checkpoint's ``rng`` entry is their state
from pyg_mpnn.seeding import rng_state as rng_state
from pyg_mpnn.seeding import seed_everything as seed_everything
from pyg_mpnn.seeding import set_rng_state as set_rng_state
from pyg_mpnn.train.faults import CheckpointError

STEP_RE = re.compile(r"^step_(\d+)\.pt$")
RESUME_KEYS = ("model", "optimizer", "step", "epoch", "batch_in_epoch", "sampler", "rng")


def atomic_save(obj, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """``torch.load(weights_only=True)`` (:func:`pyg_mpnn.nn.weights.load_file`): tensors,
    containers and the numpy RNG state; nothing a checkpoint does not need is unpickled."""
    return load_file(os.fspath(path), map_location)


def load_checked(path: str | os.PathLike, map_location="cpu") -> dict:
    """:func:`load` after checking the archive's CRCs; :class:`CheckpointError` (naming the
    file and what is wrong) if it is truncated, corrupted or lacks the training state."""
    path = Path(path)
    if not zipfile.is_zipfile(path):  # truncated, or not torch's format at all: say what it is
        raise CheckpointError(f"{path}: unreadable ({describe_file(str(path))})")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise CheckpointError(f"{path}: corrupted (CRC mismatch in member {bad!r})")
        state = load(path, map_location)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    missing = [k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (no {', '.join(missing)})")
    return state


def is_zip_start(path: str | os.PathLike) -> bool:
    """Whether the file begins like a zip archive (torch's format), complete or not."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def set_aside(path: Path) -> Path:
    """Rename a bad checkpoint to ``<name>.corrupt`` (``.corrupt.1``, ... if taken)."""
    dest, n = path.with_name(path.name + ".corrupt"), 0
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt.{n}")
    os.replace(path, dest)
    return dest


def newest_valid(path: str | os.PathLike, log=print) -> tuple[Path, dict]:
    """``(path, state)`` of the newest loadable checkpoint at or before ``path`` in its run.

    ``path`` is a ``step_*.pt`` (then older steps of the same folder are the fallbacks) or any
    other file (no fallback). Each bad file met is moved aside with :func:`set_aside` and
    reported through ``log``; :class:`CheckpointError` if none is left.
    """
    path = Path(path)
    m = STEP_RE.match(path.name)
    older = (
        [
            p
            for p in CheckpointManager(path.parent.parent).steps()
            if int(STEP_RE.match(p.name).group(1)) < int(m.group(1))
        ]
        if m
        else []
    )
    bad = []
    for cand in [path] + older[::-1]:
        try:
            state = load_checked(cand)
        except CheckpointError as e:
            if not m:
                raise
            dest = set_aside(cand)
            bad.append(f"{cand.name} -> {dest.name}")
            log(f"warning: checkpoint {e}; moved aside to {dest}; trying the one before")
            continue
        return cand, state
    raise CheckpointError(
        f"no valid checkpoint left in {path.parent} (set aside: "
        f"{'; '.join(bad)}); start a new run or resume from another file"
    )


class CheckpointManager:
    """``<run>/checkpoints/step_XXXXXXXX.pt`` (the newest ``keep_last`` kept, plus every step
    that is a multiple of ``keep_every`` when it is > 0: a trajectory for post-hoc probes such
    as ``diagnose --jacobian-checkpoints``) and ``best.pt``."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        keep_last: int = 3,
        keep_best: bool = True,
        keep_every: int = 0,
    ):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep_last = max(int(keep_last), 1)
        self.keep_best = keep_best
        self.keep_every = max(int(keep_every or 0), 0)
        if self.dir.is_dir():  # temporary files of a write that a kill interrupted
            for p in self.dir.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)

    def save(self, state: dict, step: int, is_best: bool = False) -> Path:
        previous = self.latest()
        try:
            path = atomic_save(state, self.dir / f"step_{step:08d}.pt")
            if is_best and self.keep_best:
                atomic_save(state, self.dir / "best.pt")
        except OSError as e:
            keep = (
                f"the previous checkpoint {previous} is intact"
                if previous
                else "no earlier checkpoint exists"
            )
            raise CheckpointError(
                f"{error_text(e)}; {keep}. Free space, then continue with --resume."
            ) from e
        self._prune()
        return path

    def steps(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := STEP_RE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        s = self.steps()
        return s[-1] if s else None

    def _prune(self) -> None:
        for p in self.steps()[: -self.keep_last]:
            if self.keep_every and int(STEP_RE.match(p.name).group(1)) % self.keep_every == 0:
                continue
            p.unlink(missing_ok=True)


def find_resume(spec: str, out: str | None, exp_runs: Path) -> Path | None:
    """Resolve ``--resume``: a checkpoint file, a run folder, or ``latest`` (newest under
    ``out``, else the newest checkpoint of any run folder in ``exp_runs``)."""
    if spec != "latest":
        p = Path(spec)
        if p.is_file():
            return p
        return CheckpointManager(p).latest() if p.is_dir() else None
    if out:
        return CheckpointManager(out).latest()
    if not exp_runs.is_dir():
        return None
    cands = [c for d in exp_runs.iterdir() if d.is_dir() and (c := CheckpointManager(d).latest())]
    return max(cands, key=lambda c: c.stat().st_mtime) if cands else None
