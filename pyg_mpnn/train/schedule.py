"""Learning-rate schedules as pure functions of the optimizer step (so resuming is exact)."""

from __future__ import annotations


def noam_lr(step: int, model_size: int, factor: float = 2.0, warmup: int = 4000) -> float:
    """The original's ``NoamOpt.rate``: ``factor * d^-0.5 * min(step^-0.5, step * warmup^-1.5)``.

    ``step`` counts from 1 (the original increments before computing the rate); linear warm-up
    to a peak of ``factor / sqrt(d * warmup)`` at ``warmup``, then ``1/sqrt(step)`` decay.
    """
    step = max(int(step), 1)
    return factor * model_size ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


class Schedule:
    """Sets every param group's ``lr`` for optimizer step ``step`` (1-based) from the config."""

    def __init__(self, cfg: dict, model_size: int):
        self.name = cfg["name"]
        self.factor = float(cfg["factor"])
        self.warmup = int(cfg["warmup_steps"])
        self.lr = float(cfg.get("lr") or 0.0)
        self.model_size = int(cfg.get("model_size") or model_size)

    def __call__(self, step: int) -> float:
        if self.name == "constant":
            return self.lr
        return noam_lr(step, self.model_size, self.factor, self.warmup)

    def apply(self, optimizer, step: int) -> float:
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
