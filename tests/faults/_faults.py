"""Helpers of the fault-injection tests: a tiny real training run, started as its own process
through ``_launch.py`` (one fault armed), and readers of what it wrote."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH = Path(__file__).with_name("_launch.py")
STEPS = 12
# The real ProteinMPNN, shrunk so that a step takes milliseconds, on the embedded dataset's
# proteins of at most 430 residues (15 train, 2 valid): about 7 batches an epoch, so 12 steps
# cross an epoch end; a checkpoint every 2 steps (all kept), a validation every 5.
SETS = [
    "model.hidden_dim=16",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=2",
    "model.k_neighbors=8",
    "train.threads=1",
    "train.progress=false",
    "track.aim=false",
    "track.layer_every=0",
    f"train.max_steps={STEPS}",
    "train.epochs=100",
    "data.max_tokens=500",
    "data.max_length=430",
    "train.valid_every_steps=5",
    "checkpoint.every_steps=2",
    "checkpoint.keep_every=2",
]
ENV = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")


def command(
    data: Path, out: Path, fault: str = "none", *fault_args: str, sets=(), resume: bool = False
) -> list[str]:
    cmd = [
        sys.executable,
        str(LAUNCH),
        fault,
        *fault_args,
        "--",
        "--exp",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(out),
    ]
    for s in SETS + list(sets):
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume is True else ["--resume", str(resume)] if resume else [])


def train(data, out, fault="none", *fault_args, sets=(), resume=False, expect=0):
    """Run to the end; assert its exit status; return the CompletedProcess (text output)."""
    p = subprocess.run(
        command(data, out, fault, *fault_args, sets=sets, resume=resume),
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == expect, f"exit {p.returncode}\n{p.stderr[-4000:]}"
    return p


def kill_when_armed(data, out, fault, *fault_args, sets=()) -> None:
    """Start a run with a fault that touches ``<out>/armed`` and waits; SIGKILL it then."""
    proc = subprocess.Popen(
        command(data, out, fault, *fault_args, sets=sets),
        env=ENV,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    while not (out / "armed").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{err[-3000:]}"
    (out / "armed").unlink()


def losses(run: Path) -> dict[int, str]:
    """Training loss per step from metrics.csv; asserts that no step was written twice."""
    rows = []
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["name"] == "loss" and row["subset"] == "train":
                rows.append((int(row["step"]), row["value"]))
    twice = [s for s, n in Counter(s for s, _ in rows).items() if n > 1]
    assert not twice, f"steps written twice in metrics.csv: {twice}"
    return dict(rows)


def consumed(run: Path) -> dict[int, list[str]]:
    """Proteins each step trained on (a resumed process's entry replaces the killed one's)."""
    out = {}
    for line in (run / "consumed.jsonl").read_text().splitlines():
        e = json.loads(line)
        out[e["step"]] = e["names"]
    return out


def faults(run: Path) -> list[dict]:
    path = run / "faults.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def assert_same_run(run: Path, ref: Path, steps=range(1, STEPS + 1)) -> None:
    """Every step trained on the same proteins, in the same order, with the same loss."""
    got, want = losses(run), losses(ref)
    assert sorted(got) == sorted(want) == list(range(1, STEPS + 1))
    c_got, c_want = consumed(run), consumed(ref)
    for s in steps:
        assert c_got[s] == c_want[s], f"step {s}: proteins {c_got[s]} != {c_want[s]}"
        assert got[s] == want[s], f"step {s}: loss {got[s]} != {want[s]}"
