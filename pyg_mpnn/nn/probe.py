"""The model state of a diagnostic probe: eval mode and no backbone noise, restored after.

A probe (the categorical and encoder Jacobians, a study's kNN graph) asks a question of the
weights on one structure: the answer must not depend on dropout's draws or on the noise
``augment_eps`` adds to the backbone, and the model it borrows goes back as it came, mid-training
included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def probe_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: ``model`` in eval mode with ``augment_eps = 0`` (when it has one); on exit,
    error or not, its training flag and ``augment_eps`` are restored. Gradients are left as
    they are (a probe that needs none runs under :func:`torch.no_grad` itself)."""
    was_training, eps = model.training, getattr(model, "augment_eps", None)
    model.eval()
    if eps is not None:
        model.augment_eps = 0.0
    try:
        yield model
    finally:
        if eps is not None:
            model.augment_eps = eps
        model.train(was_training)
