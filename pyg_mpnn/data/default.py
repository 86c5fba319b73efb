"""The embedded default dataset: ``data/default.jsonl.gz`` in the repository.

It is prepared into a dataset folder on first use (``PYG_MPNN_CACHE`` or ``<repo>/runs/data``)
and reused afterwards. ``data/build_default.py`` rebuilds the JSONL from its sources.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSONL = REPO / "data" / "default.jsonl.gz"


def cache_dir() -> Path:
    return Path(os.environ.get("PYG_MPNN_CACHE", REPO / "runs" / "data"))


def default_dataset_dir(progress: bool = False) -> Path:
    """Folder of the prepared default dataset (prepared now if missing or stale)."""
    out = cache_dir() / "default"
    if not DEFAULT_JSONL.exists():
        raise FileNotFoundError(f"{DEFAULT_JSONL} is missing; rebuild it with "
                                "`python data/build_default.py`")
    index = out / "index.npz"
    if not index.exists() or index.stat().st_mtime < DEFAULT_JSONL.stat().st_mtime:
        from pyg_mpnn.data.prepare import prepare
        prepare([DEFAULT_JSONL], out, progress=progress)
    return out


def default_dataset(split: str | None = None, transform=None):
    from pyg_mpnn.data.dataset import ProteinDataset
    return ProteinDataset(default_dataset_dir(), split=split, transform=transform)
