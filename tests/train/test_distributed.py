"""Data-parallel training with two real processes (``torchrun --nproc_per_node 2``, gloo, CPU):
DDP through the Trainer keeps every parameter identical across ranks while the ranks read
different batches; FSDP2 (``fully_shard``) trains like one process on the same batch and its
checkpoints hold full tensors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyg_mpnn.nn.model import ProteinMPNN

WORKER = Path(__file__).with_name("_dist_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(mode: str, data: Path, out: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        mode,
        str(data),
        str(out),
    ]
    p = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = p.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # torchrun and both workers
        log, _ = p.communicate()
        pytest.fail("torchrun timed out:\n" + log[-3000:])
    assert p.returncode == 0, log[-6000:]
    return [torch.load(out / f"{mode}_rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_ddp_two_processes_keep_parameters_identical(tiny_dataset, tmp_path):
    r0, r1 = _torchrun("ddp", tiny_dataset, tmp_path)
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["step"] == r1["step"] == 3
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), k
    # the model trained, and every parameter received a gradient (no unused ones)
    assert all(
        not torch.equal(v, r0["init"][k])
        for k, v in r0["params"].items()
        if k.endswith("weight") and "norm" not in k
    )
    # the ranks read different proteins, the same number of micro-batches (2 per step)
    assert len(r0["seen"]) == len(r1["seen"]) >= 5
    for epoch in {e for e, _ in r0["seen"]}:
        names0 = {n for e, b in r0["seen"] if e == epoch for n in b}
        names1 = {n for e, b in r1["seen"] if e == epoch for n in b}
        assert names0 and names1 and not names0 & names1, epoch
    # only rank 0 wrote checkpoints
    ckpts = list((tmp_path / "run_ddp").glob("**/*.pt"))
    assert ckpts


def test_fsdp2_matches_one_process_and_saves_full_checkpoints(tiny_dataset, tmp_path):
    r0, r1 = _torchrun("fsdp", tiny_dataset, tmp_path)
    for r in (r0, r1):
        assert r["keys_equal"] and r["moved"] > 1e-3
        assert r["max_diff"] < 1e-5, r["max_diff"]
        assert r["local_params"] < 0.6 * r["total_params"]  # each rank holds about half
        assert r["trainer"]["step"] == 2
    ckpts = sorted((tmp_path / "run_fsdp").glob("**/step*.pt")) or sorted(
        (tmp_path / "run_fsdp").glob("**/*.pt")
    )
    assert ckpts
    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    model = ProteinMPNN(**state["config"])
    model.load_state_dict(state["model"])  # full, unsharded tensors
    assert len(state["optimizer"]["state"]) == len(list(model.parameters()))
