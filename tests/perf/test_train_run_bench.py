"""benchmarks.train_run: a real (tiny) training run through the CLI, summarised from its
metrics.csv, with its figures."""

import json

import pytest

from benchmarks import train_run

FAST = ["train.max_steps=6", "train.valid_every_steps=3", "train.progress=false", "track.aim=false"]


def test_a_tiny_run_is_summarised_from_its_metrics(tmp_path):
    out, figures = tmp_path / "run.json", tmp_path / "figures"
    argv = ["--exp", "smoke", "--out", str(out), "--figures", str(figures), "--prefix", "tiny"]
    res = train_run.main([*argv, *[x for kv in FAST for x in ("--set", kv)]])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["steps"] == 6 and res["precision"] == "fp32"
    steps = [v["step"] for v in res["valid"]]
    assert {3, 6} <= set(steps) and steps[-1] == 6 and len(set(steps)) == len(steps)
    assert res["final_valid_ppl"] == res["valid"][-1]["valid_ppl"] > 1
    assert res["best_valid_ppl"] == min(v["valid_ppl"] for v in res["valid"])
    assert 0 <= res["final_valid_acc"] <= 1 and res["median_residues_per_s"] > 0
    assert res["child_peak_rss_mb"] > 100  # a torch process
    assert "--out RUN" in res["run_command"] and str(tmp_path) not in res["run_command"]
    assert sorted(p.name for p in figures.iterdir())[0].startswith("tiny")


def test_a_bad_experiment_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_run.main(["--exp", "no_such_experiment", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "no_such_experiment" in err[0]
    assert not (tmp_path / "x.json").exists()


def test_keep_leaves_the_run_folder_and_refuses_an_existing_one(tmp_path, capsys):
    run, out = tmp_path / "kept", tmp_path / "run.json"
    argv = ["--exp", "smoke", "--out", str(out), "--keep", str(run)]
    train_run.main([*argv, *[x for kv in FAST for x in ("--set", kv)]])
    shown = json.loads(out.read_text())["run_command"]
    assert (run / "metrics.csv").is_file() and "--out kept" in shown
    out.unlink()
    with pytest.raises(SystemExit) as e:
        train_run.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--keep" in err[-1] and not out.exists()
