"""Run ``python -m pyg_mpnn.train`` in this process with one fault armed (the test harness of
tests/faults; nothing here is in the package).

    python tests/faults/_launch.py FAULT [ARG] -- TRAIN_ARGS...

Every run appends ``{"step", "names"}`` to ``<out>/consumed.jsonl`` for each optimizer step
(the proteins it trained on), so a test can show that nothing was lost or repeated. FAULT:

* ``none``
* ``kill_checkpoint_write STEP``: write half of ``step_<STEP>.pt``'s bytes to its temporary
  file, touch ``<out>/armed``, then wait to be killed.
* ``kill_validation STEP``: in the validation at step STEP, after its first batch, touch
  ``<out>/armed`` and wait to be killed.
* ``kill_worker NAME:K``: the data loader worker that loads protein NAME for the K-th time (all
  processes of the run folder counted) sends itself SIGKILL; once per run folder.
* ``disk_full STEP``: the temporary file of ``step_<STEP>.pt`` is a link to ``/dev/full``
  (every write fails with ENOSPC, as on a full disk).
"""

import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import pyg_mpnn.train.checkpoint as checkpoint
import pyg_mpnn.train.trainer as trainer
import pyg_mpnn.train.validation as validation
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.train.__main__ import main

sep = sys.argv.index("--")
fault, fault_args, argv = sys.argv[1], sys.argv[2:sep], sys.argv[sep + 1 :]
out = Path(argv[argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
armed = out / "armed"


def wait_for_kill():
    armed.touch()
    time.sleep(600)
    os._exit(3)  # never reached in a test


_step = trainer.Trainer.train_step


def recording_step(self, micro, wait):
    with open(out / "consumed.jsonl", "a") as f:
        f.write(
            json.dumps({"step": self.step + 1, "names": [n for b in micro for n in b.name]}) + "\n"
        )
    return _step(self, micro, wait)


trainer.Trainer.train_step = recording_step

if fault == "kill_checkpoint_write":
    target, _write = f"step_{int(fault_args[0]):08d}.pt", checkpoint.atomic_write

    def half_then_wait(path, write):
        if Path(path).name != target:
            return _write(path, write)

        def half(f):
            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            wait_for_kill()

        return _write(path, half)

    checkpoint.atomic_write = half_then_wait

elif fault == "kill_validation":
    target, _validate, _metrics = (
        int(fault_args[0]),
        trainer.Trainer.validate,
        validation.batch_metrics,
    )
    state = {"validating": False}

    def validate(self):
        state["validating"] = self.step == target
        try:
            return _validate(self)
        finally:
            state["validating"] = False

    def metrics(*args, **kwargs):
        result = _metrics(*args, **kwargs)
        if state["validating"]:
            wait_for_kill()
        return result

    trainer.Trainer.validate, validation.batch_metrics = validate, metrics

elif fault == "kill_worker":
    import torch.utils.data

    name, k = fault_args[0].rsplit(":", 1)
    _getitem = ProteinDataset.__getitem__

    def getitem(self, i):
        if self.names[i] == name and torch.utils.data.get_worker_info() is not None:
            with open(out / f"loads_{name}", "a") as f:
                f.write("x")
            if (out / f"loads_{name}").stat().st_size == int(k):
                try:
                    os.close(os.open(out / "worker_killed", os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    return _getitem(self, i)
                os.kill(os.getpid(), signal.SIGKILL)
        return _getitem(self, i)

    ProteinDataset.__getitem__ = getitem

elif fault == "disk_full":
    target, _init = int(fault_args[0]), trainer.Trainer.__init__

    def init(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        tmp = self.checkpoints.dir / f".step_{target:08d}.pt.tmp-{os.getpid()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.symlink_to("/dev/full")

    trainer.Trainer.__init__ = init

elif fault != "none":
    raise SystemExit(f"unknown fault {fault!r}")

sys.exit(main(argv))
