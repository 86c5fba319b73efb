"""A run's start, resolved once: the finished config and the state to load.

``python -m pyg_mpnn.train`` finds and verifies the checkpoint to resume from, then calls
:func:`prepare`; a :class:`~pyg_mpnn.train.trainer.Trainer` given a plain
:class:`~pyg_mpnn.train.config.Config` calls it itself (a fresh run). Nothing else reads the
``init`` weights' architecture or loads a checkpoint for a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyg_mpnn.train.config import Config
from pyg_mpnn.train.finetune import resolve_init


@dataclass(frozen=True)
class RunStart:
    """What a :class:`~pyg_mpnn.train.trainer.Trainer` starts from.

    Args:
        cfg (Config): the finished config (with ``init``: the architecture of its weights).
        state (dict, optional): the verified checkpoint to resume from (``None``: a fresh run,
            from ``init``'s weights when it names some).
    """

    cfg: Config
    state: dict | None = None


def prepare(
    cfg: Config,
    state: dict | None = None,
    explicit: dict[str, str] | None = None,
    resume: str | Path | None = None,
) -> RunStart:
    """Finish ``cfg`` (in place) for a run that starts from ``state`` (a loaded, verified
    checkpoint, or ``None``): with ``init``, its model architecture is read from the init
    weights, or from ``resume`` (the checkpoint being resumed keeps its own architecture).
    ``explicit`` (:func:`~pyg_mpnn.train.config.explicit_keys`): keys set on purpose, which
    must agree with the weights."""
    if cfg.init:
        resolve_init(cfg, explicit, spec=str(resume) if resume else None)
    return RunStart(cfg, state)
