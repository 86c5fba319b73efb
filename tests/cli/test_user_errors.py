"""Every command treats a user's mistake as one: exit status 2, one ``error:`` line on stderr
that names the culprit, no traceback, nothing printed as a result, no new or changed file.

Each row is (command, arguments, the culprit the message must name); ``{b}`` is the folder of
bad inputs (conftest.py), and the command runs in an empty current folder. The rows cover the
cases users met (a missing path, an empty file, text named .pdb, an empty folder, random
bytes as weights, a flag that swallowed the inputs, a key in the wrong section, a negative
value, a missing run folder) and every other kind of input each command reads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _clitools import ZNG, assert_refused, run, snapshot

Z = str(ZNG)
WEIGHTS = {  # a weights file of each kind that is not usable -> what the message must say
    "missing.pt": "missing.pt: no such file",
    "weights_dir": "weights_dir: a folder",
    "random.pt": "random.pt: not a PyTorch checkpoint (4,096 bytes of unrecognised data)",
    "truncated.pt": "truncated.pt: not a PyTorch checkpoint",
    "empty.pdb": "empty.pdb: not a PyTorch checkpoint (an empty file)",
    "weights.json": "weights.json: not a PyTorch checkpoint (a JSON file)",
    "no_model.pt": "no_model.pt: not a ProteinMPNN checkpoint",
    "other_arch.pt": "other_arch.pt: the weights do not fit the model",
}
ROWS = [
    # evaluate: input with no protein, in every form; never a nan result
    ("evaluate", ["--data", "{b}/nope.pdb"], "no protein in {b}/nope.pdb"),
    ("evaluate", ["--data", "{b}/empty.pdb"], "{b}/empty.pdb: empty file"),
    ("evaluate", ["--data", "{b}/text.pdb"], "{b}/text.pdb: no ATOM/HETATM records"),
    ("evaluate", ["--data", "{b}/empty_dir"], "no protein in {b}/empty_dir: 0 files read"),
    ("evaluate", ["--data", "{b}/notes"], "no protein in {b}/notes"),
    ("evaluate", ["--data", Z, "--max-chains", "0"], "--max-chains must be at least 1"),
    ("evaluate", ["--data", Z, "--temperature", "-1"], "--temperature must be positive"),
    ("evaluate", ["--data", Z, "--temperature", "inf"], "--temperature must be positive"),
    ("evaluate", ["--data", Z, "--weights", "original:v_99"], "original:v_99: no such"),
    # prepare: no protein, an existing dataset, a folder that is no dataset, a file
    ("prepare", ["{b}/nope.pdb", "--out", "DS"], "no protein in {b}/nope.pdb"),
    ("prepare", ["{b}/text.pdb", "{b}/empty.pdb", "--out", "DS"], "2 files read, 2 items skipped"),
    ("prepare", ["{b}/empty_dir", "--out", "DS"], "no protein in {b}/empty_dir"),
    ("prepare", [Z, "--out", "{b}/dataset"], "--out {b}/dataset already holds a dataset"),
    ("prepare", [Z, "--out", "{b}/notes", "--overwrite"], "--out {b}/notes is a folder that"),
    ("prepare", [Z, "--out", "{b}/a_file"], "--out {b}/a_file is a file"),
    ("prepare", [Z, "--out", "DS", "--min-length", "0"], "--min-length must be at least 1"),
    ("prepare", [Z, "{b}/text.pdb", "--out", "DS", "--strict"], "--strict: 1 item(s) skipped"),
    # train: data without a protein (named, not a cache folder), config keys and values
    ("train", ["--data", "{b}/empty_dir", "--out", "R"], "no protein in {b}/empty_dir"),
    ("train", ["--data", "{b}/text.pdb", "--out", "R"], "{b}/text.pdb: no ATOM/HETATM"),
    ("train", ["--set", "optim.lr=1e-4", "--out", "R"], "(did you mean schedule.lr?)"),
    ("train", ["--set", "train.max_steps=-5"], "train.max_steps: expected a value >= 1"),
    ("train", ["--set", "schedule.lr=-1"], "schedule.lr: expected a value > 0, got -1.0"),
    ("train", ["--set", "schedule.lr=.nan"], "schedule.lr: expected a value > 0, got nan"),
    ("train", ["--set", "train.max_minutes=0"], "train.max_minutes: expected a value > 0"),
    ("train", ["--set", "data.max_tokens=0"], "data.max_tokens: expected a value >= 1"),
    ("train", ["--set", "model.k_neighbors=0"], "model.k_neighbors: expected a value >= 1"),
    ("train", ["--set", "model.hidden_dim=-8"], "model.hidden_dim: expected a value >= 1"),
    ("train", ["--set", "model.num_encoder_layers=0"], "model.num_encoder_layers"),
    ("train", ["--set", "model.dropout=1.5"], "model.dropout: expected a value in [0, 1)"),
    ("train", ["--set", "loss.label_smoothing=-0.1"], "loss.label_smoothing"),
    ("train", ["--set", "sweep.token_budget=-1"], "sweep.token_budget: expected a value >= 1"),
    ("train", ["--set", "sweep.widths=[64, 0]"], "sweep.widths: expected a value >= 1, got 0"),
    ("train", ["--exp", "scale_sweep", "--set", "sweep.seeds=[0, 1]"], "sweep.seeds=[0, 1] needs"),
    (
        "train",
        ["--exp", "knn_ablation", "--set", "sweep.sizes=[[8, 1]]"],
        "sweep.sizes: expected null with sweep.points",
    ),
    ("train", ["--set", "train.shape_buckets=-1"], "train.shape_buckets: expected a value >= 0"),
    ("train", ["--set", "model.backbone=cb"], "model.backbone"),
    ("train", ["--set", "schedule.warmup=3"], "(did you mean schedule.warmup_steps?)"),
    ("train", ["--exp", "nope"], "no experiment 'nope'"),
    ("train", ["--exp", ""], "--exp is empty"),
    ("train", ["--data", " ", "--out", "R"], "--data is empty"),
    ("train", ["--init", "", "--out", "R"], "--init is empty"),
    ("train", ["--set", "data.path=a,", "--out", "R"], "data.path: expected a path"),
    ("train", ["--set", "init=' '", "--out", "R"], "init: expected weights"),
    ("train", ["--exp", "{b}/broken.yaml"], "{b}/broken.yaml: not valid YAML at line 2"),
    ("train", ["--set", "data.transform=foo", "--out", "R"], "unknown data.transform 'foo'"),
    (
        "train",
        ["--set", "train.device=cpu", "--set", "train.precision=fp16", "--out", "R"],
        "train.precision=fp16 needs a GPU",
    ),
    ("train", ["--data", "{b}/dataset", "--set", "data.train_split=nope"], "unknown split"),
    ("train", ["--resume", "{b}/nope.pt", "--out", "R"], "nothing to resume from ({b}/nope.pt)"),
    (
        "train",
        ["--resume", "{b}/random.pt", "--out", "R"],
        "--resume {b}/random.pt: not a checkpoint",
    ),
    ("train", ["--resume", "{b}/weights.json", "--out", "R"], "(a JSON file)"),
    # design: no protein, flags that must not swallow the inputs, bad values
    ("design", ["{b}/empty_dir", "--out", "o.fa"], "no protein in {b}/empty_dir"),
    ("design", ["{b}/text.pdb", "--out", "o.fa"], "{b}/text.pdb: no ATOM/HETATM"),
    ("design", ["--fixed", "A:2000", Z, "--out", "o.fa"], "has no residue A:2000"),
    ("design", ["--design-only", "Q:1", Z, "--out", "o.fa"], "Q"),
    ("design", ["--temperature", "0", Z, "--out", "o.fa"], "--temperature must be positive"),
    ("design", [Z, "--temperature", "warm"], "--temperature: 'warm' is not a number"),
    ("design", [Z, "--temperature", "nan", "--out", "o.fa"], "--temperature must be positive"),
    ("design", [Z, "--bias", "A:inf", "--out", "o.fa"], "'inf' is not a finite number"),
    ("design", [Z, "--weights", "", "--out", "o.fa"], "--weights no weights named"),
    ("design", [Z, "--num-seqs", "0", "--out", "o.fa"], "--num-seqs must be at least 1"),
    ("design", [Z, "--chains", "A,Q", "--out", "o.fa"], "no chain 'Q'"),
    ("design", [Z, "--backbone-noise", "-1", "--out", "o.fa"], "--backbone-noise must be"),
    ("design", [Z, "--max-length", "0", "--out", "o.fa"], "--max-length must be at least 1"),
    ("design", [Z, "--max-length", "5", "--out", "o.fa"], "--max-length 5: every input"),
    ("design", [Z, "--pssm-multi", "0.5", "--out", "o.fa"], "--pssm-multi needs --pssm-jsonl"),
    ("design", [Z, "--save-score", "{b}/a_file", "--out", "o.fa"], "--save-score {b}/a_file"),
    ("design", [Z, "--ca-only", "--weights", "original:v_48_020"], "is a full-backbone model"),
    ("design", [Z, "--out", "{b}/empty_dir"], "--out {b}/empty_dir is a folder"),
    ("design", [Z, "--probs", "conditional", "--out", "{b}/a_file"], "--out {b}/a_file is a file"),
    ("train", ["--out", "{b}/a_file"], "--out {b}/a_file is a file"),
    # diagnose: no run there
    ("diagnose", ["{b}/missing_run"], "{b}/missing_run: no such run folder"),
    ("diagnose", ["{b}/empty_dir"], "{b}/empty_dir: a folder without metrics.csv"),
    ("diagnose", ["{b}/a_file"], "{b}/a_file: a file"),
    ("diagnose", ["{b}/noise_run"], "{b}/noise_run/metrics.csv: not a metrics file"),
    ("diagnose", ["{b}/bad_json_run"], "{b}/bad_json_run/run.json: not valid JSON"),
    ("diagnose", ["0123abcd", "--repo", "{b}/no_repo"], "--repo {b}/no_repo: no such folder"),
    ("diagnose", ["{b}/one_step_run", "--grad-gap", "-1"], "--grad-gap: expected a value > 0"),
    ("diagnose", ["{b}/one_step_run", "--skip", "1"], "--skip: expected a value in [0, 1)"),
    # export: the output and the noise level
    ("export", ["original:v_48_020", "--out", "{b}/weights_dir"], "is a folder"),
    ("export", ["original:v_48_020", "--out", "x.pt", "--noise-level", "-1"], "--noise-level"),
]
# every command that loads weights, with every kind of unusable weights file
ROWS += [
    (cmd, [*argv(f"{{b}}/{name}"), *more], message)
    for name, message in WEIGHTS.items()
    for cmd, argv, more in [
        ("evaluate", lambda w: ["--data", Z, "--weights", w], []),
        ("design", lambda w: [Z, "--weights", w], ["--out", "o.fa"]),
        ("export", lambda w: [w], ["--out", "x.pt"]),
        ("train", lambda w: ["--init", w], ["--out", "R", "--print-config"]),
    ]
]


def _ids():
    return [f"{cmd}-{i}" for i, (cmd, _, _) in enumerate(ROWS)]


@pytest.mark.parametrize("command, argv, culprit", ROWS, ids=_ids())
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(
    capsys, bad, workspace, command, argv, culprit
):
    before = (snapshot(bad), snapshot(workspace))
    argv = [a.format(b=bad) for a in argv]
    if command in ("evaluate", "design", "prepare"):
        argv.append("--no-progress")
    status, out, err = run(capsys, command, *argv)
    assert_refused(status, err, culprit.format(b=bad))
    assert out == "", out  # nothing that reads as a result (no nan metric)
    assert (snapshot(bad), snapshot(workspace)) == before  # nothing new, nothing changed


def test_train_names_the_users_path_not_a_cache_folder(capsys, bad, workspace):
    status, _, err = run(capsys, "train", "--data", bad / "empty_dir", "--out", "R")
    assert_refused(status, err, str(bad / "empty_dir"))
    assert os.environ["PYG_MPNN_CACHE"] not in err and "sources/" not in err


def test_a_bug_keeps_its_traceback(tmp_path):
    """Only a UserError (or CommandError) is one line: anything else is a bug in pyg_mpnn."""
    code = "from pyg_mpnn.cli import run_cli\nraise SystemExit(run_cli(lambda argv: 1 / 0))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" in p.stderr and "ZeroDivisionError" in p.stderr


def test_an_os_error_about_a_file_is_one_line(capsys, bad, workspace):
    """A file the command cannot write (here: below a file) ends it with one line, status 1."""
    argv = [ZNG, "--out", bad / "a_file" / "sub" / "DS", "--no-progress"]
    status, out, err = run(capsys, "prepare", *argv)
    assert status == 1 and out == "" and "Traceback" not in err
    assert err.startswith("error: ") and str(bad / "a_file") in err and err.count("\n") == 1
