"""Losses and metrics over the residues of a batch (no padding: ``[N, 21]`` log-probs).

The training loss is the original's ``loss_smoothed``: the one-hot target plus ``eps / 21`` on
every letter, renormalised to sum to one (so the true letter gets ``(1 + eps/21) / (1 + eps)``),
cross-entropy against the log-probabilities, summed over the loss mask ``mask & design_mask``
(``& loss_mask`` when a transform such as :class:`pyg_mpnn.data.crop.SpatialCrop` sets one:
:func:`supervised_mask`).

Normalisation (``loss.normalize``): the original's *training* divides that sum by a fixed 2000
("tokens") instead of the number of residues. We keep that as the default (``constant``):
every residue weighs the same whatever batch it lands in, and an accumulated step over several
micro-batches has exactly the gradient of one large batch (the sum of the parts), which a
per-micro-batch mean does not give. Adam is nearly invariant to the constant's value.
``mean`` divides by the batch's number of loss residues. Reported losses/perplexities are
always per-residue means of the unsmoothed NLL, as the original's epoch summary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pyg_mpnn.train.config import LossConfig


def supervised_mask(batch) -> Tensor:
    """The residues that carry loss and metrics: ``mask & design_mask``, and ``loss_mask`` when
    the batch has one (a crop's inner sphere; the decoding order still follows design_mask)."""
    m = batch.mask & batch.design_mask
    extra = getattr(batch, "loss_mask", None)
    return m & extra if extra is not None else m


def smoothed_nll(log_probs: Tensor, target: Tensor, smoothing: float = 0.1) -> Tensor:
    """Per-residue label-smoothed cross-entropy ``[N]`` (the original's formula)."""
    n = log_probs.shape[-1]
    # F.one_hot's range check reads the targets on a CPU: compared instead (the same values)
    onehot = (target.unsqueeze(-1) == torch.arange(n, device=target.device)).to(log_probs.dtype)
    soft = onehot + smoothing / n
    soft = soft / soft.sum(-1, keepdim=True)
    return -(soft * log_probs).sum(-1)


def training_loss(
    log_probs: Tensor,
    target: Tensor,
    loss_mask: Tensor,
    smoothing: float,
    normalize: str = "constant",
    tokens: float = 2000.0,
) -> Tensor:
    """The scalar that is back-propagated (see the module docstring for ``normalize``)."""
    per = smoothed_nll(log_probs.float(), target, smoothing)
    m = loss_mask.to(per.dtype)
    total = (per * m).sum()
    if normalize == "constant":
        return total / tokens
    return total / m.sum().clamp_min(1.0)


class TrainingLoss:
    """The training objective of the config's ``loss`` section, built once and used by every
    training step (the trainer's, the sweep's timing and FLOP counting).

    An optimizer step may accumulate ``parts`` micro-batches: with ``normalize: constant`` each
    part's loss is used as it is (the parts' sums add up to the sum over the whole step), with
    ``mean`` each part's mean is divided by ``parts`` (:meth:`scale`).

    Args:
        cfg (LossConfig): ``label_smoothing``, ``normalize`` and ``tokens``.
    """

    def __init__(self, cfg: LossConfig):
        self.smoothing, self.normalize, self.tokens = cfg.label_smoothing, cfg.normalize, cfg.tokens

    def scale(self, parts: int) -> int:
        """What each of ``parts`` micro-batch losses is divided by."""
        return parts if self.normalize == "mean" else 1

    def __call__(self, log_probs: Tensor, batch, parts: int = 1) -> Tensor:
        """The back-propagated scalar of ``batch``, one of ``parts`` micro-batches."""
        loss = training_loss(
            log_probs,
            batch.seq,
            supervised_mask(batch),
            self.smoothing,
            self.normalize,
            self.tokens,
        )
        scale = self.scale(parts)
        return loss / scale if scale != 1 else loss

    def smoothed_mean(self, loss_sum: float, count: float) -> float:
        """The per-residue smoothed loss of a step whose parts' losses (each multiplied back by
        :meth:`scale`) sum to ``loss_sum`` over ``count`` supervised residues."""
        norm = self.tokens if self.normalize == "constant" else count
        return loss_sum * norm / max(count, 1.0)


@torch.no_grad()
def batch_metrics(log_probs: Tensor, target: Tensor, loss_mask: Tensor) -> dict:
    """Sums (not means) so epochs aggregate exactly: ``nll_sum``, ``correct``, ``count``, as
    0-dim tensors on the batch's device (a :class:`Meter` reads them when it reports)."""
    lp = log_probs.float()
    m = loss_mask
    nll = -lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    correct = (lp.argmax(-1) == target) & m
    return {"nll_sum": torch.where(m, nll, 0.0).sum(), "correct": correct.sum(), "count": m.sum()}


KEYS = ("nll_sum", "correct", "count")


class Meter:
    """Accumulates :func:`batch_metrics` sums; ``loss``/``ppl``/``acc`` are residue-weighted.

    The sums may be tensors on the training device (added in float64, the arithmetic of Python
    floats): nothing is read from the device until a value is asked for (``loss``, ``ppl``,
    ``acc``, ``scalars``, ``state_dict``, ``meter[key]``), so a training step reads nothing.
    """

    def __init__(self, state: dict | None = None):
        self.nll_sum, self.correct, self.count = 0.0, 0.0, 0.0
        if state:
            self.__dict__.update(state)

    def sums(self) -> dict:
        """The sums as they are (floats or tensors), without reading them."""
        return {k: getattr(self, k) for k in KEYS}

    def add(self, m, keep: Tensor | None = None) -> None:
        """Add ``m`` (a :func:`batch_metrics` dict or a Meter); ``keep`` (a 0-dim bool tensor):
        add only if true, decided on the device (a skipped step's sums stay out)."""
        m = m.sums() if isinstance(m, Meter) else m
        for k in KEYS:
            v = m[k]
            if isinstance(v, Tensor):
                v = v.double()
                v = torch.where(keep, v, 0.0) if keep is not None else v
            setattr(self, k, getattr(self, k) + v)

    def __getitem__(self, key: str) -> float:
        return float(getattr(self, key))

    @property
    def loss(self) -> float:
        count = self["count"]
        return self["nll_sum"] / count if count else float("nan")

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 50.0)) if self["count"] else float("nan")

    @property
    def acc(self) -> float:
        count = self["count"]
        return self["correct"] / count if count else float("nan")

    def scalars(self, prefix: str = "") -> dict:
        """``{prefix + "loss": ..., prefix + "ppl": ..., prefix + "accuracy": ...}`` (tracked)."""
        return {f"{prefix}loss": self.loss, f"{prefix}ppl": self.ppl, f"{prefix}accuracy": self.acc}

    def state_dict(self) -> dict:
        return {k: self[k] for k in KEYS}
