"""A corrupted shard record in the middle of an epoch (and a corrupted record of a Foldcomp
database read in place), and a failed write while ``prepare`` writes a shard."""

import resource
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest
from _faults import ENV, REPO, consumed, faults, train

from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.prepare import prepare


def test_corrupted_record_is_skipped_and_the_epoch_goes_on(fault_data, reference, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fault_data, data)
    ds = ProteinDataset(data, split="train")
    ref = consumed(reference)
    step = min(s for s in ref if s >= 3 and len(ref[s]) >= 2)  # mid-epoch, a shared batch
    bad = ref[step][0]
    i = list(ds.names).index(bad)
    shard, offset, nbytes = ds.shard_path(i), int(ds._offset[i]), int(ds._nbytes[i])
    blob = bytearray(shard.read_bytes())
    blob[offset + nbytes // 2] ^= 0xFF
    shard.write_bytes(bytes(blob))

    run = tmp_path / "run"
    p = train(data, run, sets=["train.epochs=1", "data.num_workers=2"])
    assert f"{shard}: record {bad!r}" in p.stderr and "checksum mismatch" in p.stderr
    events = [e for e in faults(run) if e["kind"] == "skipped_record"]
    assert (
        len(events) == 1
        and str(shard) in events[0]["message"]
        and repr(bad) in events[0]["message"]
    )
    got = consumed(run)
    epoch = sorted(got)
    assert "(partial epoch)" not in (run / "log.txt").read_text()  # the epoch was completed
    for s in epoch:  # every batch as planned, without the bad record
        assert got[s] == [n for n in ref[s] if n != bad], s
    assert step in epoch and len(got[step]) == len(ref[step]) - 1  # its batch mates trained
    seen = Counter(n for s in epoch for n in got[s])
    train_names = {ds.names[j] for j in range(len(ds)) if ds.lengths[j] <= 430}
    assert set(seen) == train_names - {bad} and max(seen.values()) == 1


def test_corrupted_foldcomp_record_is_skipped_and_the_epoch_goes_on(tmp_path):
    """The AFDB sample read in place, one training record's bytes damaged in the database:
    the run names the database and the record, skips it, and trains on every other one."""
    pytest.importorskip("foldcomp")
    db = shutil.copytree(REPO / "tests" / "fixtures" / "afdb", tmp_path / "db") / "afdb_sample"
    data = tmp_path / "data"
    prepare([str(db)], data, foldcomp_in_place=True, progress=False)
    ds = ProteinDataset(data, split="train")
    train_names = {ds.names[j] for j in range(len(ds)) if ds.lengths[j] <= 430}
    assert len(train_names) >= 5
    bad = sorted(train_names)[2]
    i = list(ds.names).index(bad)
    offset, nbytes = int(ds._offset[i]), int(ds._nbytes[i])
    blob = bytearray(db.read_bytes())
    blob[offset + nbytes // 2] ^= 0xFF
    db.write_bytes(bytes(blob))

    run = tmp_path / "run"
    p = train(data, run, sets=["train.epochs=1", "data.num_workers=2"])
    where = f"{db}: record {bad!r} (bytes {offset}..{offset + nbytes})"
    assert where in p.stderr and "checksum mismatch, the database is corrupted" in p.stderr
    events = [e for e in faults(run) if e["kind"] == "skipped_record"]
    assert len(events) == 1 and where in events[0]["message"]
    got = consumed(run)
    seen = Counter(n for s in got for n in got[s])
    assert set(seen) == train_names - {bad} and max(seen.values()) == 1


def _file_size_limit(nbytes: int):
    """A ``preexec_fn``: writes past ``nbytes`` fail (``EFBIG``), as writes on a full disk do
    (``SIGXFSZ`` ignored, so the write returns the error instead of killing the process)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def test_a_failed_shard_write_leaves_nothing(tmp_path):
    """A shard write fails midway: one line naming the file under the final name and what to
    do; no dataset, and no temporary folder, left behind."""
    out = tmp_path / "ds"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyg_mpnn.data.prepare",
            str(REPO / "data" / "default.jsonl.gz"),
            "--out",
            str(out),
            "--no-progress",
        ],
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(200_000),
    )
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith(
        f"error: cannot write {out / 'shards' / '00000.bin'}: File too large"
    ), p.stderr
    assert f"nothing was written to {out}" in p.stderr and "Traceback" not in p.stderr
    assert not list(tmp_path.iterdir())
