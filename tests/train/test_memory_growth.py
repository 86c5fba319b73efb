"""A long run's memory stays flat: the training command on variable-size batches (a tiny model,
the embedded data's token-budget batches), its peak resident memory read from ``metrics.csv``
(``peak_memory_mb``: ``VmHWM``) after warm-up and at the end.

With glibc's malloc the heap keeps growing for the first tens of steps as every batch brings
new tensor sizes (docs/reliability.md): the control run (``PYG_MPNN_ALLOCATOR=system``) must
exceed the bound, so the bound can fail. The product's run (jemalloc, which
``python -m pyg_mpnn.train`` loads when it is installed) must stay under it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyg_mpnn.allocator import find_jemalloc

REPO = Path(__file__).resolve().parents[2]
STEPS, WARMUP = 60, 10
BOUND_MB = 150  # growth of the peak resident memory from step WARMUP to step STEPS
SETTINGS = [
    "model.hidden_dim=32",
    "model.k_neighbors=16",
    "data.path=embedded",
    "data.max_tokens=3000",
    "data.max_length=1000",
    f"train.max_steps={STEPS}",
    "train.epochs=100",
    "train.threads=1",
    "train.valid_every_steps=null",
    "checkpoint.every_steps=null",
    "track.aim=false",
    "track.layer_every=0",
]


def peak_growth(tmp_path: Path, allocator: str) -> float:
    out = tmp_path / allocator
    cmd = [sys.executable, "-m", "pyg_mpnn.train", "--exp", "smoke", "--out", str(out)]
    for s in SETTINGS:
        cmd += ["--set", s]
    env = {**os.environ, "PYG_MPNN_ALLOCATOR": allocator, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = "allocator: jemalloc" if allocator == "jemalloc" else "allocator: the C library"
    assert expected in run.stderr
    with open(out / "metrics.csv") as f:
        peak = {
            int(r["step"]): float(r["value"])
            for r in csv.DictReader(f)
            if r["name"] == "peak_memory_mb"
        }
    assert max(peak) == STEPS
    return peak[STEPS] - peak[WARMUP]


@pytest.mark.skipif(find_jemalloc() is None, reason="no libjemalloc (apt install libjemalloc2)")
def test_memory_flat_after_warmup(tmp_path):
    control = peak_growth(tmp_path, "system")
    assert control > BOUND_MB, f"glibc grew only {control:.0f} MB: the bound cannot fail"
    growth = peak_growth(tmp_path, "jemalloc")
    assert growth < BOUND_MB, f"peak memory grew {growth:.0f} MB after step {WARMUP}"
