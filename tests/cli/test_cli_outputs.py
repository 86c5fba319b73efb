"""What the commands write, and what they never do: replace a dataset without --overwrite,
leave a partial one under the final name, write under the source tree, print a score key
twice, take the inputs as values of an option, or draw empty axes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from _clitools import REPO, ZNG, assert_refused, run, snapshot

from pyg_mpnn.data.default import cache_dir


def test_prepare_overwrite_replaces_a_dataset_only_when_asked(capsys, bad, workspace):
    status, out, _ = run(capsys, "prepare", ZNG, bad / "text.pdb", "--out", "DS", "--no-progress")
    assert status == 0 and json.loads(out)["records"] == 1
    first = snapshot(workspace / "DS")
    status, _, err = run(capsys, "prepare", ZNG, "--out", "DS", "--no-progress")
    assert_refused(status, err, "--out DS already holds a dataset; give --overwrite")
    argv = [bad / "nope.pdb", "--out", "DS", "--overwrite", "--no-progress"]  # a typo
    status, _, err = run(capsys, "prepare", *argv)
    assert_refused(status, err, f"no protein in {bad / 'nope.pdb'}")
    assert snapshot(workspace / "DS") == first  # as it was
    status, out, _ = run(capsys, "prepare", ZNG, "--out", "DS", "--overwrite", "--no-progress")
    assert status == 0 and json.loads(out)["skipped_total"] == 0
    assert snapshot(workspace / "DS") != first
    assert sorted(p.name for p in workspace.iterdir()) == ["DS"]  # no temporary folder left


def test_prepare_allow_empty_keeps_the_old_behaviour(capsys, bad, workspace):
    argv = [bad / "nope.pdb", bad / "empty_dir", "--out", "E", "--allow-empty", "--no-progress"]
    status, out, _ = run(capsys, "prepare", *argv)
    assert status == 0 and json.loads(out)["records"] == 0
    assert (workspace / "E" / "meta.json").exists()


def test_prepare_killed_midway_leaves_the_old_dataset(bad, tmp_path):
    """SIGKILL while the new dataset is being written: the old one is intact under its name,
    the partial one only in a hidden folder beside it, which the next prepare removes."""
    out = tmp_path / "DS"
    cmd = [sys.executable, "-m", "pyg_mpnn.data.prepare", "--no-progress", "--out", str(out)]
    subprocess.run([*cmd, str(ZNG)], check=True, capture_output=True, timeout=120)
    old = snapshot(out)
    parts = sorted(str(p) for p in (REPO / "data").glob("default*.jsonl.gz"))  # 299 proteins
    proc = subprocess.Popen(
        [*cmd, "--overwrite", "--shard-size", "1", *parts],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    partial = tmp_path / f".DS.partial-{proc.pid}"
    deadline = time.time() + 120
    while not (partial / "shards" / "00002.bin").exists() and proc.poll() is None:
        assert time.time() < deadline, "prepare wrote no shard in 120 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"prepare ended before the kill: {err[-2000:]}"
    assert snapshot(out) == old
    assert partial.is_dir() and not (partial / "meta.json").exists()  # killed midway
    subprocess.run([*cmd, "--overwrite", str(ZNG)], check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DS"]  # the killed run's folder gone


def test_the_cache_is_outside_the_source_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("PYG_MPNN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PYG_MPNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "pyg_mpnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "pyg_mpnn"
    assert REPO not in cache_dir().parents


def test_design_options_do_not_swallow_inputs_and_score_keys_are_unique(capsys, workspace):
    status, out, err = run(
        capsys, "design", "--fixed", "A:991-995 C:22", ZNG, "--chains", "A", "--num-seqs", "2",
        "--temperature", "0.1", "--temperature", "0.5", "--out", "d.fa", "--no-progress",
    )  # fmt: skip
    assert status == 0 and out == "", err
    designs = (workspace / "d.fa").read_text()
    assert designs.count(">T=") == 4 and designs.count(", score=") == 5
    status, out, err = run(
        capsys, "design", ZNG, "--chains", "A", "--score-only", "--fasta", "d.fa",
        "--num-orders", "2", "--no-progress",
    )  # fmt: skip
    headers = [line[1:].split(", ") for line in out.splitlines() if line.startswith(">")]
    assert status == 0 and len(headers) == 6, err  # the native, then the 5 records of d.fa
    for fields in headers:
        keys = [f.split("=", 1)[0] for f in fields[1:]]
        assert len(keys) == len(set(keys)), fields  # every key once
    native = dict(f.split("=", 1) for f in headers[0][1:])
    scored = dict(f.split("=", 1) for f in headers[2][1:])
    assert native["source"] == "native" and scored["source"] == "fasta:2"
    assert scored["native_score"] == native["score"] != scored["score"]


def test_diagnose_says_when_a_run_tracked_too_little(capsys, bad, workspace):
    status, out, err = run(capsys, "diagnose", bad / "one_step_run", "--out", "D", "--no-aim")
    assert status == 0 and "Traceback" not in err
    assert "warning:" in err and "too little tracked data" in err and "1 tracked step" in err
    report = (workspace / "D" / "report.md").read_text()
    assert "Too little tracked data" in report and "1 tracked step (1)" in report
    assert not list((workspace / "D").glob("*.png"))  # no figure with empty axes


def test_a_real_process_reports_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pyg_mpnn.evaluate", "--data", str(tmp_path / "nope.pdb")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert_refused(p.returncode, p.stderr, f"no protein in {tmp_path / 'nope.pdb'}")
    assert p.stdout == "" and not list(Path(tmp_path).iterdir())
