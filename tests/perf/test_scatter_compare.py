"""benchmarks/scatter_compare.py runs in its tiny mode: every aggregation gives the same sums,
and the dense and csr training steps the same loss (its timings mean nothing here)."""

import pytest


def test_tiny_run_times_each_aggregation_and_step(tiny_benchmark):
    res = tiny_benchmark("scatter_compare")
    modes = res["aggregation"]["modes"]
    expected = {"scatter", "dense", "segment_reduce"} | ({"csr"} if res["torch_scatter"] else set())
    assert set(modes) == expected
    for name, row in modes.items():
        assert row["forward_ms"] > 0 and row["forward_backward_ms"] > 0, name
        assert row["max_abs_diff_to_scatter"] < 1e-4, name
    step = res["train_step"]
    assert step["dense"]["losses"] == pytest.approx(step["csr"]["losses"], rel=1e-5)
    assert step["csr/dense"] == pytest.approx(
        step["dense"]["median_s"] / step["csr"]["median_s"], rel=1e-2
    )
