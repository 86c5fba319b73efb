"""A corrupted or truncated latest checkpoint, and a full disk while writing one."""

import shutil
import struct
import zipfile

import torch
from _faults import assert_same_run, faults, train

from pyg_mpnn.train.checkpoint import load_checked


def _flip_tensor_byte(path):
    """Flip one byte in the middle of the checkpoint's largest tensor (``torch.load`` alone
    would load the wrong value silently)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_and_truncated_checkpoints_fall_back(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    train(fault_data, run, sets=["train.max_steps=6"])
    ckpts = run / "checkpoints"
    *_, good, before, last = sorted(ckpts.glob("step_*.pt"))  # e.g. steps 4, 5 and 6
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    _flip_tensor_byte(before)  # corrupted: loads without a CRC check
    torch.load(before, weights_only=False)
    bad = {p.name: p.read_bytes() for p in (last, before)}

    p = train(fault_data, run, resume=True)
    err = p.stderr
    assert f"{last}: unreadable" in err and f"{before}: corrupted (CRC mismatch" in err, err
    assert err.index(str(last)) < err.index(str(before))  # newest first
    step = load_checked(good)["step"]
    assert f"resuming from {good} (step {step})" in err
    for name, content in bad.items():  # set aside, byte for byte, never overwritten
        assert (ckpts / (name + ".corrupt")).read_bytes() == content
    assert_same_run(run, reference)
    assert load_checked(last)["step"] == 6  # written anew by the resumed run


def test_explicit_corrupted_checkpoint_is_an_error(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step_00000002.pt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(reference / "checkpoints" / ckpt.name, ckpt)
    _flip_tensor_byte(ckpt)
    content = ckpt.read_bytes()
    p = train(fault_data, run, sets=["train.max_steps=4"], resume=ckpt, expect=1)
    assert f"error: {ckpt}: corrupted (CRC mismatch" in p.stderr
    assert ckpt.read_bytes() == content  # the named file is left as it is


def test_disk_full_during_checkpoint_write(fault_data, reference, tmp_path):
    run = tmp_path / "run"
    p = train(fault_data, run, "disk_full", "4", expect=1)
    ckpts = run / "checkpoints"
    err = p.stderr.strip().splitlines()[-1]
    assert err.startswith(
        f"error: cannot write {ckpts / 'step_00000004.pt'}: No space left on device"
    ), err
    assert f"the previous checkpoint {ckpts / 'step_00000002.pt'} is intact" in err
    assert "Traceback" not in p.stderr
    assert sorted(x.name for x in ckpts.iterdir()) == ["step_00000002.pt"]  # no torn file
    kept = load_checked(ckpts / "step_00000002.pt")
    ref = torch.load(reference / "checkpoints" / "step_00000002.pt", weights_only=False)
    assert kept["step"] == 2
    assert all(torch.equal(kept["model"][k], ref["model"][k]) for k in ref["model"])
    assert not faults(run)
