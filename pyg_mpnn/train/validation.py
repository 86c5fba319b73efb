"""Validation during training: the held-out loss under a fixed seed, and the epoch summary."""

from __future__ import annotations

import torch
from tqdm import tqdm

from pyg_mpnn.train import distributed
from pyg_mpnn.train.loss import Meter, batch_metrics, supervised_mask
from pyg_mpnn.train.precision import autocast


@torch.no_grad()
def validate(
    model, loader, device: torch.device, precision: str, seed: int, world: int = 1, progress=True
) -> Meter:
    """Residue-weighted NLL and accuracy of ``model`` over ``loader``, with the noise and the
    decoding orders drawn from ``seed`` (comparable across epochs; the caller's RNG stream is
    left untouched), summed over the ``world`` ranks. ``model`` is left in training mode."""
    meter = Meter()
    model.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        bar = tqdm(
            loader, desc="valid", unit="batch", leave=False, disable=not progress, position=1
        )
        for batch in bar:
            batch = batch.to(device)
            with autocast(precision, device):
                log_probs = model(batch)
            meter.add(batch_metrics(log_probs, batch.seq, supervised_mask(batch)))
    model.train()
    return Meter(distributed.all_reduce_sums(meter.state_dict(), world))


def summary_line(epoch: int, step: int, seconds: float, train: Meter, valid: Meter) -> str:
    """The original's epoch line (perplexities, accuracies, 3 decimals)."""
    return (
        f"epoch: {epoch}, step: {step}, time: {seconds:.1f}, train: {train.ppl:.3f}, "
        f"valid: {valid.ppl:.3f}, train_acc: {train.acc:.3f}, valid_acc: {valid.acc:.3f}"
    )


def epoch_metrics(step: int, epoch: int, train: Meter, valid: Meter, best: float) -> dict:
    """What :meth:`Trainer.fit <pyg_mpnn.train.trainer.Trainer.fit>` returns (the last epoch)."""
    return {
        "step": step,
        "epoch": epoch,
        "train_loss": train.loss,
        "train_ppl": train.ppl,
        "train_acc": train.acc,
        "valid_loss": valid.loss,
        "valid_ppl": valid.ppl,
        "valid_acc": valid.acc,
        "best_valid_loss": min(best, valid.loss),
    }
