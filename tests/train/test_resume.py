"""Kill a real training run with SIGKILL, resume it, and compare with an uninterrupted run."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _train_tiny import TINY_MODEL

STEPS = 10


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    sets = TINY_MODEL + [
        f"train.max_steps={STEPS}",
        "train.epochs=100",
        "data.max_tokens=300",
        "checkpoint.every_steps=2",
        "checkpoint.keep_last=2",
        "track.layer_every=3",
    ]
    cmd = [
        sys.executable,
        "-m",
        "pyg_mpnn.train",
        "--exp",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(out),
    ]
    for s in sets:
        cmd += ["--set", s]
    return cmd + list(extra)


def _losses(run: Path) -> dict[int, str]:
    """Per-step training loss (the last row written for a step wins: a resumed run rewrites
    the steps after its checkpoint)."""
    out = {}
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["name"] == "loss" and row["subset"] == "train" and row["step"] != "step":
                out[int(row["step"])] = row["value"]
    return out


def test_sigkill_then_resume_matches_uninterrupted(tiny_dataset, tmp_path):
    env = dict(os.environ, PYTHONHASHSEED="0")
    ref = tmp_path / "ref"
    subprocess.run(_cmd(tiny_dataset, ref), check=True, env=env, capture_output=True)
    full = _losses(ref)
    assert sorted(full) == list(range(1, STEPS + 1))

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(tiny_dataset, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = run / "checkpoints" / "step_00000004.pt"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
    resumed_from = torch.load(ckpts[-1], weights_only=False)["step"]
    assert 4 <= resumed_from < STEPS
    for c in ckpts:  # every checkpoint the kill left behind is complete and loadable
        torch.load(c, weights_only=False)

    subprocess.run(_cmd(tiny_dataset, run, "--resume"), check=True, env=env, capture_output=True)
    resumed = _losses(run)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert resumed[step] == full[step], f"step {step}: {resumed[step]} != {full[step]}"
    # the model weights at the end are identical too
    a = torch.load(ref / "checkpoints" / f"step_{STEPS:08d}.pt", weights_only=False)
    b = torch.load(run / "checkpoints" / f"step_{STEPS:08d}.pt", weights_only=False)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert set(a["config"]) >= {"hidden_dim", "num_encoder_layers", "k_neighbors"}
