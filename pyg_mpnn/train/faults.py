"""What a run does when a long run's faults happen (docs/reliability.md lists each one and the
test that proves it).

* :class:`BadStepGuard`: a step whose loss or gradient norm is not finite is skipped (no
  update, not added to the epoch's metrics, counted); ``train.max_bad_steps`` such steps in a
  row stop the run with a :class:`BadStepsError` that points at ``python -m pyg_mpnn.diagnose``.
* :class:`FaultLog`: every fault a run survives (a record skipped for a failed checksum, a
  data loader worker restarted, a skipped step) is logged on the terminal and appended as one
  JSON line to ``<run>/faults.jsonl``.
* :class:`RunFault`: the faults that stop a run (bad steps, a checkpoint that cannot be written
  or read); ``python -m pyg_mpnn.train`` prints their message, without a traceback, and exits
  with status 1.

Controlled faults, so that :mod:`pyg_mpnn.diagnose` can be shown to find them (config section
``inject``; ``experiments/noise_module.yaml``), applied by :class:`Injector`:

* ``noise_after: I`` adds a module ``noise`` (:class:`NodeNoise`) after encoder layer ``I``
  (``-1``: the last): the node states become ``h + W z`` with fresh ``z ~ N(0, noise_std^2)``
  at every forward pass. It carries no information; its weight gradient scales with
  ``noise_std``, so at a small std (0.01) it stays far below every other layer's and diagnose
  finding (a) names it, while at std 1 the gap is gone (and the module hurts the validation
  loss instead): ``studies/noise_control.py``, docs/monitoring.md.
* ``freeze_embedding: true`` stops the sequence embedding ``W_s`` from training;
  ``embedding_scale: F`` multiplies its initial weights by ``F`` (mis-scaled).
* ``nan_step: S`` with ``nan_layer: L`` (a block of :meth:`~pyg_mpnn.nn.ProteinMPNN.blocks`:
  ``encoder.1``, ``decoder.0``, ``W_e``, ...) makes block ``L``'s output NaN at training step
  ``S``: finding (f) names ``L`` and ``S``. ``nan_step`` may list steps (``[3, 6, 7]``);
  ``nan_in: backward`` poisons the gradient flowing back into that output instead (the loss
  stays finite). The trainer skips such steps and stops after ``train.max_bad_steps`` in a row
  (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from pyg_mpnn.errors import BadValue, CommandError


class RunFault(CommandError, RuntimeError):
    """A fault that stops a run; ``str()`` says what happened and what to do."""


class BadStepsError(RunFault):
    pass


class CheckpointError(RunFault):
    pass


class BadStepGuard:
    """Counts non-finite steps; raises :class:`BadStepsError` after ``max_bad`` in a row.

    A step is bad when its loss is not finite, or its gradient norm is not finite outside
    fp16 (with fp16 the GradScaler skips overflowing steps itself and lowers its scale: that
    is expected and not counted).

    Args:
        max_bad (int): consecutive bad steps that stop the run (``train.max_bad_steps``;
            ``0`` or ``None``: never stop).
        run_dir (Path): the run folder, named in the message.
    """

    def __init__(self, max_bad: int | None, run_dir: str | Path = "."):
        self.max_bad, self.run_dir = max_bad or 0, Path(run_dir)
        self.in_a_row, self.total, self.first = 0, 0, None

    def check(self, step: int, loss: float, grad_norm: float, precision: str) -> bool:
        """Whether step ``step`` is bad (its update must be skipped); raises when it is the
        ``max_bad``-th bad step in a row."""
        bad = not math.isfinite(loss) or (precision != "fp16" and not math.isfinite(grad_norm))
        if not bad:
            self.in_a_row, self.first = 0, None
            return False
        self.in_a_row += 1
        self.total += 1
        self.first = step if self.first is None else self.first
        if self.max_bad and self.in_a_row >= self.max_bad:
            raise BadStepsError(
                f"{self.in_a_row} training steps in a row (steps {self.first}-{step}) had a "
                f"non-finite loss or gradient (last: loss {loss}, gradient norm {grad_norm}); "
                f"the run stopped (train.max_bad_steps={self.max_bad}). Its weights are those "
                f"before step {self.first}. Find the layer and step where it starts with:\n"
                f"    python -m pyg_mpnn.diagnose {self.run_dir}"
            )
        return True

    def state_dict(self) -> dict:
        return {"in_a_row": self.in_a_row, "total": self.total, "first": self.first}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.in_a_row, self.total, self.first = (
                state["in_a_row"],
                state["total"],
                state["first"],
            )


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` can skip an update on the device (:func:`step_unless`): fused
    optimizers take a ``found_inf`` tensor, as :class:`torch.amp.GradScaler` passes them."""
    return all(g.get("fused") for g in optimizer.param_groups)


def step_unless(optimizer: torch.optim.Optimizer, bad: torch.Tensor) -> None:
    """``optimizer.step()``, which the fused kernel skips where ``bad`` (a 0-dim bool tensor) is
    true: parameters, moments and step count unchanged, and nothing read back from the device."""
    optimizer.found_inf = bad.float()
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf


class DeferredChecks:
    """Steps whose update was skipped on the device when bad (:func:`step_unless`): their loss
    and gradient norm (tensors) wait here and are read, all at once, at the next report
    (:meth:`flush`), where the :class:`BadStepGuard` counts them (and raises after
    ``max_bad`` in a row) and the fault log reports each bad one, as :meth:`check` does at once.

    Args:
        guard (BadStepGuard): the run's guard.
        event (callable): ``event(kind, step, message)`` of the run's :class:`FaultLog`.
        precision (str): the run's precision (fp16: non-finite gradients are the scaler's).
    """

    def __init__(self, guard: BadStepGuard, event, precision: str):
        self.guard, self.event, self.precision = guard, event, precision
        self.pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.pending.append((step, loss.detach(), grad_norm.detach()))

    def flush(self) -> None:
        """Read the pending steps' values (one read from the device) and check each."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        values = torch.stack([torch.stack([x.double(), g.double()]) for _, x, g in pending])
        for (step, _, _), (loss, gnorm) in zip(pending, values.tolist()):
            self.check(step, loss, gnorm)

    def check(self, step: int, loss: float, grad_norm: float) -> bool:
        """Whether step ``step`` is bad; a bad one is reported (the guard raises after K)."""
        bad = self.guard.check(step, loss, grad_norm, self.precision)
        if bad:
            self.event(
                "bad_step",
                step,
                f"step {step}: non-finite loss ({loss}) or gradient norm ({grad_norm}); update "
                f"skipped ({self.guard.in_a_row} in a row, train.max_bad_steps="
                f"{self.guard.max_bad})",
            )
        return bad


class FaultLog:
    """One JSON line per survived fault in ``<run>/faults.jsonl`` (``time``, ``step``,
    ``kind``, ``message``), the same message on the terminal (``log``), and a ``fault_<kind>``
    metric of 1 at that step (``tracker``)."""

    def __init__(self, run_dir: str | Path, log=print, tracker=None, enabled: bool = True):
        self.path = Path(run_dir) / "faults.jsonl"
        self.log, self.tracker, self.enabled = log, tracker, enabled
        self.counts: Counter = Counter()  # events of this process by kind
        self._seen: dict[int, tuple[int, int]] = {}  # id(loader) -> (errors, restarts) reported

    def event(self, kind: str, step: int, message: str) -> None:
        self.counts[kind] += 1
        if not self.enabled:
            return
        self.log(f"warning: {message}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(
                json.dumps(
                    {"time": round(time.time(), 3), "step": step, "kind": kind, "message": message}
                )
                + "\n"
            )
        if self.tracker is not None:
            self.tracker.track(1.0, f"fault_{kind}", step)

    def poll(self, loader, step: int, where: str = "train") -> None:
        """Report what ``loader`` (a :class:`~pyg_mpnn.data.loader.ProteinLoader`) skipped or
        restarted since the last call."""
        errors, restarts = getattr(loader, "errors", []), getattr(loader, "restarts", [])
        n_err, n_res = self._seen.get(id(loader), (0, 0))
        for batch, message in errors[n_err:]:
            self.event("skipped_record", step, f"{where} batch {batch}: skipped {message}")
        for message in restarts[n_res:]:
            self.event("worker_restart", step, f"{where}: {message}")
        self._seen[id(loader)] = (len(errors), len(restarts))


class NodeNoise(nn.Module):
    """``h -> h + W z``, ``z ~ N(0, std^2)`` drawn anew at every call (train and eval)."""

    def __init__(self, hidden: int, std: float = 1.0):
        super().__init__()
        self.std = float(std)
        self.W = nn.Linear(hidden, hidden, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = torch.randn_like(h) * self.std
        return h + self.W(z)


class Injector:
    """Applies the ``inject`` section (a dict, or a dataclass of it) to a freshly built model;
    the trainer sets :attr:`step` (the optimizer step being computed) before each step's forward
    passes. Blocks are found by the names of the model's ``blocks()``."""

    def __init__(self, model: nn.Module, cfg=None):
        if dataclasses.is_dataclass(cfg):
            cfg = dataclasses.asdict(cfg)
        cfg = cfg or {}
        self.model, self.step, self.handles = model, 0, []
        self.blocks = {b.name: b for b in model.blocks()}
        after = cfg.get("noise_after")
        if after is not None:
            encoder = [b.module for b in self.blocks.values() if b.stack == "encoder"]
            model.noise = NodeNoise(model.hidden_dim, cfg.get("noise_std", 1.0))
            nn.init.xavier_uniform_(model.noise.W.weight)
            target = encoder[after % len(encoder)]
            self.handles.append(target.register_forward_hook(self._noise_hook))
        if cfg.get("embedding_scale", 1.0) != 1.0:
            with torch.no_grad():
                model.W_s.weight.mul_(cfg["embedding_scale"])
        if cfg.get("freeze_embedding"):
            model.W_s.weight.requires_grad_(False)
        self.nan_step, self.nan_layer = cfg.get("nan_step"), cfg.get("nan_layer")
        steps = self.nan_step if isinstance(self.nan_step, (list, tuple)) else [self.nan_step]
        self.nan_steps = {int(s) for s in steps if s is not None}
        self.nan_backward = cfg.get("nan_in", "forward") == "backward"
        if self.nan_step is not None:
            module = self._module(str(self.nan_layer))
            self.handles.append(module.register_forward_hook(self._nan_hook))

    def _module(self, layer: str) -> nn.Module:
        if layer not in self.blocks:
            raise BadValue(
                f"inject.nan_layer: no block {layer!r}; the model's blocks: "
                f"{', '.join(self.blocks)}"
            )
        return self.blocks[layer].module

    def _noise_hook(self, module, inputs, output):
        if isinstance(output, tuple):
            return (self.model.noise(output[0]),) + tuple(output[1:])
        return self.model.noise(output)

    def _nan_hook(self, module, inputs, output):
        if not module.training or self.step not in self.nan_steps:
            return None
        first = output[0] if isinstance(output, tuple) else output
        if self.nan_backward:
            if first.requires_grad:
                first.register_hook(lambda g: torch.full_like(g, float("nan")))
            return None
        poisoned = first.clone()
        poisoned.view(-1)[0] = float("nan")
        return (poisoned,) + tuple(output[1:]) if isinstance(output, tuple) else poisoned
