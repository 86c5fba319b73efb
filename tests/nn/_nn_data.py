"""Real test data for tests/nn, read with the package's own readers."""

from __future__ import annotations

import os
from pathlib import Path

from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.record import ProteinRecord
from pyg_mpnn.io.structure import read_structure

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PYG_MPNN_SHARED_DATA", REPO.parent / "shared" / "data"))
STRUCTURES = DATA / "structures"
TS50 = DATA / "benchmarks" / "ts50.jsonl"


def ts50_records(names=None) -> list[ProteinRecord]:
    out = [r for r in iter_jsonl(TS50) if isinstance(r, ProteinRecord)]
    return [r for r in out if names is None or r.name in names]


def read(name: str) -> ProteinRecord:
    return read_structure(STRUCTURES / name)
