"""Learning-rate schedules as pure functions of the optimizer step (so resuming is exact).

* ``noam``: the original's schedule (:func:`noam_lr`);
* ``constant``: ``lr``, after a linear warm-up over ``warmup_steps`` (0: none);
* ``cosine``: linear warm-up to ``lr`` over ``warmup_steps``, then a cosine decay to ``min_lr``
  at ``total_steps`` (and ``min_lr`` after it), :func:`cosine_lr`.
"""

from __future__ import annotations

import math

from pyg_mpnn.errors import BadValue
from pyg_mpnn.train.config import ScheduleConfig


def noam_lr(step: int, model_size: int, factor: float = 2.0, warmup: int = 4000) -> float:
    """The original's ``NoamOpt.rate``: ``factor * d^-0.5 * min(step^-0.5, step * warmup^-1.5)``.

    ``step`` counts from 1 (the original increments before computing the rate); linear warm-up
    to a peak of ``factor / sqrt(d * warmup)`` at ``warmup``, then ``1/sqrt(step)`` decay.
    """
    step = max(int(step), 1)
    return factor * model_size**-0.5 * min(step**-0.5, step * warmup**-1.5)


def warmup_factor(step: int, warmup: int) -> float:
    """``min(1, step / warmup)`` (1 when ``warmup <= 0``); ``step`` counts from 1."""
    return 1.0 if warmup <= 0 else min(1.0, max(int(step), 1) / warmup)


def cosine_lr(step: int, peak: float, floor: float, warmup: int, total: int) -> float:
    r"""Linear warm-up, then cosine decay:

    .. math::
        \eta(t) = \eta_{min} + \tfrac12(\eta_{max} - \eta_{min})
        \left(1 + \cos\left(\pi \frac{t - w}{T - w}\right)\right), \quad w < t \le T

    Args:
        step (int): optimizer step, from 1.
        peak (float): :math:`\eta_{max}`, reached at the end of warm-up.
        floor (float): :math:`\eta_{min}`, reached at ``total`` and kept after it.
        warmup (int): :math:`w` warm-up steps (0: none).
        total (int): :math:`T`, the step the decay ends.
    """
    if step <= warmup:
        return peak * warmup_factor(step, warmup)
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


class Schedule:
    """Sets every param group's ``lr`` for optimizer step ``step`` (1-based) from the config.

    ``total_steps`` (cosine only): the config's ``total_steps``, else the value the trainer
    passes (``train.max_steps``, or the epochs times the optimizer steps per epoch).
    """

    def __init__(self, cfg: ScheduleConfig, model_size: int, total_steps: int | None = None):
        self.name, self.factor, self.warmup = cfg.name, cfg.factor, cfg.warmup_steps
        self.lr, self.min_lr = cfg.lr, cfg.min_lr
        self.model_size = cfg.model_size or model_size
        self.total = cfg.total_steps or total_steps or 0
        if self.name == "cosine" and self.total <= 0:
            raise BadValue(
                "schedule cosine needs schedule.total_steps, train.max_steps or "
                "a known epoch length"
            )

    def __call__(self, step: int) -> float:
        if self.name == "constant":
            return self.lr * warmup_factor(step, self.warmup)
        if self.name == "cosine":
            return cosine_lr(step, self.lr, self.min_lr, self.warmup, self.total)
        return noam_lr(step, self.model_size, self.factor, self.warmup)

    def apply(self, optimizer, step: int) -> float:
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
