"""The parts of one optimizer step of :class:`~pyg_mpnn.train.trainer.Trainer`: forward and
backward over the micro-batches, gradient clipping, the guarded update, the step's logging.
:meth:`~pyg_mpnn.train.trainer.Trainer.train_step` calls them in that order."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pyg_mpnn.train.faults import skips_on_device, step_unless
from pyg_mpnn.train.loss import Meter, batch_metrics, supervised_mask
from pyg_mpnn.train.precision import autocast, peak_memory_mb


@dataclass
class StepSums:
    """What the micro-batches of one optimizer step add up to."""

    loss: float | torch.Tensor = 0.0  # the parts' training losses (x TrainingLoss.scale)
    residues: int = 0
    edges: int = 0
    meter: Meter = field(default_factory=Meter)  # unsmoothed NLL, accuracy


class OptimizerStep:
    """The step's parts, on the :class:`~pyg_mpnn.train.trainer.Trainer` that builds what they
    use (``net``, ``loss``, ``optimizer``, ``scaler``, ``timer``, ``monitor``, ``checks``,
    ``tracker``, ``jacobian``)."""

    def _forward_backward(self, micro: list, capture_last: bool) -> StepSums:
        """Forward and backward passes over the micro-batches (their gradients add up); the
        per-layer monitor captures the last one when ``capture_last``."""
        sums = StepSums()
        scale = self.loss.scale(len(micro))
        for i, batch in enumerate(micro):
            with self.timer("h2d"):
                batch = batch.to(self.device, non_blocking=True)
            self.monitor.arm(capture_last and i == len(micro) - 1)
            with self.timer("forward"), autocast(self.precision, self.device):
                log_probs = self.net(batch)
                loss = self.loss(log_probs, batch, parts=len(micro))
            with self.timer("backward"):
                self.scaler.scale(loss).backward()
            sums.meter.add(batch_metrics(log_probs.detach(), batch.seq, supervised_mask(batch)))
            sums.loss = sums.loss + loss.detach().double() * scale
            sums.residues += batch.num_nodes
            sums.edges += self.monitor.last_edges
        return sums

    def _clip_gradients(self) -> torch.Tensor:
        """Unscale the gradients and clip their global norm (``optim.grad_clip``); the norm
        (a tensor on the device)."""
        with self.timer("optimizer"):
            self.scaler.unscale_(self.optimizer)
            clip = self.cfg.optim.grad_clip
            return torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), clip if clip > 0 else math.inf
            )

    def _optimizer_step(self, step: int, loss: torch.Tensor, gnorm: torch.Tensor):
        """Apply the update unless the step is bad (a non-finite loss or gradient): whether it
        was, a bool, or a 0-dim bool tensor when the optimizer skipped it on the device
        (checked at the next report: :class:`~pyg_mpnn.train.faults.DeferredChecks`;
        ``train.max_bad_steps`` bad steps in a row raise)."""
        with self.timer("optimizer"):
            if self.precision != "fp16" and skips_on_device(self.optimizer):
                bad = ~(torch.isfinite(loss) & torch.isfinite(gnorm))
                step_unless(self.optimizer, bad)
                self.checks.add(step, loss, gnorm)
                return bad
            self.checks.flush()
            bad = self.checks.check(step, float(loss), float(gnorm))  # raises after K
            if not bad or self.precision == "fp16":  # the scaler skips non-finite steps itself
                self.scaler.step(self.optimizer)
            self.scaler.update()
        return bad

    def _log_step(self, step: int, lr: float, gnorm, sums: StepSums, layers: bool) -> bool:
        """The step's scalars (every ``track.log_every`` steps: the only steps that read the
        device, the deferred bad-step checks included), the per-layer statistics (``layers``)
        and the Jacobian probe when due; their time is the ``tracking`` phase. Whether the
        scalars were due."""
        wall, data_wait = self.timer.elapsed(), self.timer.seconds["data_wait"]
        m = sums.meter
        due = step % max(self.cfg.track.log_every, 1) == 0 or step == 1
        if due:
            self.checks.flush()  # may raise (train.max_bad_steps)
        if self.tracker.enabled and due:
            with self.timer("tracking"):
                smoothed = self.loss.smoothed_mean(float(sums.loss), m["count"])
                self.tracker.track_many(
                    {"loss_smoothed": smoothed, **m.scalars()}, step, subset="train"
                )
                self.tracker.track_many(
                    {
                        "lr": lr,
                        "grad_norm": float(gnorm),
                        "residues_per_s": sums.residues / wall,
                        "edges_per_s": sums.edges / wall,
                        "data_wait_frac": data_wait / wall,
                        "step_time_s": wall,
                        "peak_memory_mb": peak_memory_mb(self.device),
                    },
                    step,
                )
        if layers:
            with self.timer("tracking"):
                self.monitor.after_step(step)
        if self.jacobian is not None and self.jacobian.due(step) and self.tracker.enabled:
            with self.timer("tracking"):
                self.jacobian.run(self.model, step)
        return due
