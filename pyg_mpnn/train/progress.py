"""The run's outer progress bar (the inner one counts an epoch's batches)."""

from __future__ import annotations

from tqdm import tqdm

from pyg_mpnn.train.config import TrainConfig


class RunBar:
    """The outer progress bar, counted in what really ends the run, so that its ETA is real:
    residues when ``train.max_residues`` is set, else optimizer steps for ``train.max_steps``,
    else epochs (:attr:`counts` says which).

    Args:
        train (TrainConfig): the ``train`` section (the limits).
        epoch (int): epochs done (a resumed run starts the bar there).
        step (int): optimizer steps done.
        residues (int): training residues seen.
        disable (bool, optional): no bar. (default: :obj:`False`)
    """

    def __init__(self, train: TrainConfig, epoch: int, step: int, residues: int, disable=False):
        if train.max_residues is not None:
            self.counts, total, initial = "residues", train.max_residues, residues
        elif train.max_steps is not None:
            self.counts, total, initial = "steps", train.max_steps, step
        else:
            self.counts, total, initial = "epochs", train.epochs, epoch
        self.bar = tqdm(
            total=total,
            initial=min(initial, total) if self.counts == "residues" else initial,
            desc=self.counts,
            unit={"residues": "res", "steps": "step", "epochs": "epoch"}[self.counts],
            unit_scale=self.counts == "residues",
            position=0,
            disable=disable,
        )

    def stepped(self, residues: int) -> None:
        """An optimizer step ended with ``residues`` training residues seen in all."""
        if self.counts == "residues":
            self.bar.update(min(residues, self.bar.total) - self.bar.n)
        elif self.counts == "steps":
            self.bar.update(1)

    def epoch_done(self) -> None:
        if self.counts == "epochs":
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
