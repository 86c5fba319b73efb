"""Real test data for tests/nn, read with the package's own readers."""

from __future__ import annotations

import os

import torch
from testdata import REPO, SHARED_DATA, need_shared, structure

from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.record import ProteinRecord
from pyg_mpnn.io.structure import read_structure

STRUCTURES = SHARED_DATA / "structures"
TS50 = SHARED_DATA / "benchmarks" / "ts50.jsonl"
# TS50's first chain, as the PDB file in tests/fixtures (same sequence and coordinates as in
# ts50.jsonl)
ETE = "mdanalysistests__1eteA.pdb.gz"


def device_under_test() -> torch.device:
    """Where the parity tests run our model: ``$PYG_MPNN_TEST_DEVICE`` (``cpu``, ``cuda``,
    ``cuda:1``...; default ``cpu``). The reference always runs on the CPU. A device that is not
    there is an error, not a skip (``benchmarks/gpu_suite.py`` sets the variable)."""
    device = torch.device(os.environ.get("PYG_MPNN_TEST_DEVICE") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"PYG_MPNN_TEST_DEVICE={device}, but torch sees no CUDA device")
    return device


def ts50_records(names=None) -> list[ProteinRecord]:
    """TS50 chains from the shared benchmark (skips when absent)."""
    out = [
        r for r in iter_jsonl(need_shared("benchmarks/ts50.jsonl")) if isinstance(r, ProteinRecord)
    ]
    return [r for r in out if names is None or r.name in names]


def read(name: str) -> ProteinRecord:
    """A real structure by its shared-data name (the ``tests/fixtures`` copy when there is one)."""
    return read_structure(structure(name))


__all__ = ["REPO", "STRUCTURES", "TS50", "ETE", "device_under_test", "ts50_records", "read"]
