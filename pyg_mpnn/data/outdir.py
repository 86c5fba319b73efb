"""The folder ``prepare`` writes a dataset into: refused when it holds anything but a dataset
(or a dataset, without ``--overwrite``), written beside it (``.DIR.partial-PID``) and renamed
into place when complete, so a killed or failed prepare leaves it as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyg_mpnn.errors import UserError

# What a dataset folder holds (an incomplete one too): the only folders --overwrite replaces.
DATASET_FILES = ("meta.json", "index.npz", "summary.json", "skipped.jsonl", "shards")


def is_dataset_dir(path: Path) -> bool:
    """Whether ``path`` holds what prepare writes (complete or not)."""
    return any((path / name).exists() for name in DATASET_FILES)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a folder that is not empty (without
    ``overwrite``, or that is not a dataset folder: prepare never replaces other files)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the dataset")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not is_dataset_dir(out):
        raise UserError(
            f"--out {out} is a folder that is not empty and holds no dataset; give a new "
            "or empty folder"
        )
    if not overwrite:
        raise UserError(
            f"--out {out} already holds a dataset; give --overwrite to replace it (only once "
            "the new one is complete) or another --out"
        )


def partial_dir(out: Path) -> Path:
    """A new temporary folder beside ``out``; those of earlier prepares whose process is gone
    (killed) are removed first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.partial-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename the complete dataset ``tmp`` to ``out``; an ``out`` already there (empty, or a
    dataset being overwritten) is moved aside first and removed after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
