"""SIGKILL at the worst moments (a real process killed, then resumed): nothing is lost or
repeated, and every step's loss equals the uninterrupted reference run's."""

import torch
from _faults import assert_same_run, consumed, faults, kill_when_armed, train

from pyg_mpnn.train.checkpoint import load_checked


def test_kill_during_checkpoint_write(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    kill_when_armed(fault_data, run, "kill_checkpoint_write", "6")
    ckpts = run / "checkpoints"
    torn = list(ckpts.glob(".step_00000006.pt.tmp-*"))
    assert len(torn) == 1 and torn[0].stat().st_size > 0  # killed in the middle of the write
    assert not (ckpts / "step_00000006.pt").exists()
    previous = sorted(ckpts.glob("step_*.pt"))[-1]  # step 4, or 5 (a best validation)
    step = load_checked(previous)["step"]  # the previous one is whole
    assert step in (4, 5)
    p = train(fault_data, run, resume=True)
    assert f"resuming from {previous} (step {step})" in p.stderr
    assert not list(ckpts.glob(".*.tmp-*"))  # the torn temporary file is gone
    assert_same_run(run, reference)
    a = torch.load(reference / "checkpoints" / "step_00000012.pt", weights_only=False)
    b = torch.load(ckpts / "step_00000012.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_kill_during_validation(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    kill_when_armed(fault_data, run, "kill_validation", "5")
    assert max(consumed(run)) == 5  # killed inside the validation of step 5
    p = train(fault_data, run, resume=True)
    assert "step_00000004.pt (step 4)" in p.stderr
    assert_same_run(run, reference)


def _victim(reference) -> str:
    """A protein of step 10 (the second epoch), and how often it was loaded by then."""
    c = consumed(reference)
    name = c[10][0]
    return f"{name}:{sum(c[s].count(name) for s in range(1, 11))}"


def test_killed_worker_is_restarted(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    p = train(fault_data, run, "kill_worker", _victim(reference), sets=["data.num_workers=2"])
    assert (run / "worker_killed").exists()
    restarts = [f for f in faults(run) if f["kind"] == "worker_restart"]
    assert len(restarts) == 1 and "killed by SIGKILL" in restarts[0]["message"]
    assert "restarted the workers at batch" in p.stderr
    assert_same_run(run, reference)  # same proteins, same order, same losses: none lost


def test_killed_worker_fails_the_run_then_resumes(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    sets = ["data.num_workers=2", "data.max_worker_restarts=0"]
    p = train(fault_data, run, "kill_worker", _victim(reference), sets=sets, expect=1)
    assert "error: data loader worker died again" in p.stderr and "SIGKILL" in p.stderr
    assert "Traceback" not in p.stderr
    done = max(int(c.stem.split("_")[1]) for c in (run / "checkpoints").glob("step_*.pt"))
    assert 6 <= done < 12
    train(fault_data, run, sets=sets, resume=True)
    assert_same_run(run, reference)
