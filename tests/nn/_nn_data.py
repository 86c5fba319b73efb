"""Real test data for tests/nn, read with the package's own readers."""

from __future__ import annotations

from testdata import REPO, SHARED_DATA, need_shared, structure

from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.record import ProteinRecord
from pyg_mpnn.io.structure import read_structure

STRUCTURES = SHARED_DATA / "structures"
TS50 = SHARED_DATA / "benchmarks" / "ts50.jsonl"
# TS50's first chain, as the PDB file in tests/fixtures (same sequence and coordinates as in
# ts50.jsonl)
ETE = "mdanalysistests__1eteA.pdb.gz"


def ts50_records(names=None) -> list[ProteinRecord]:
    """TS50 chains from the shared benchmark (skips when absent)."""
    out = [
        r for r in iter_jsonl(need_shared("benchmarks/ts50.jsonl")) if isinstance(r, ProteinRecord)
    ]
    return [r for r in out if names is None or r.name in names]


def read(name: str) -> ProteinRecord:
    """A real structure by its shared-data name (the ``tests/fixtures`` copy when there is one)."""
    return read_structure(structure(name))


__all__ = ["REPO", "STRUCTURES", "TS50", "ETE", "ts50_records", "read"]
