"""``train.compile``: the model's forward (and so its backward) under ``torch.compile``.

Batches are padding-free, so the node and edge counts change at every step: the model is
compiled with ``dynamic=True`` (sizes symbolic from the first compilation, no recompilation per
batch). Data-dependent steps of the model (the kNN search, the degree check of the dense
neighbour sum) split it into several compiled graphs. Inductor needs a working C++ compiler on a
CPU (Triton on a GPU); when compiling fails, a warning names ``train.compile`` and the error, and
the model runs eagerly from then on. :func:`inductor_works` tries a tiny function first, so that
a broken toolchain is found before the first training step.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def inductor_works(device: torch.device) -> str | None:
    """``None`` when inductor compiles a tiny forward + backward on ``device``, else the error."""
    try:
        x = torch.linspace(-2, 2, 32, device=device).view(8, 4).requires_grad_()  # no RNG draw
        f = torch.compile(lambda t: (torch.nn.functional.gelu(t) * 2).sum(), dynamic=True)
        f(x).backward()
        return None
    except Exception as e:  # a missing compiler, an unsupported platform, ...
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


class Compiled:
    """Calls ``torch.compile(module, dynamic=True)``; if compiling fails at a call, warns once
    and calls ``module`` eagerly from then on (``failed`` holds the error).

    Args:
        module (nn.Module): what the training step calls (the model, or its DDP wrapper).
        backend (str or callable, optional): ``torch.compile``'s backend.
            (default: :obj:`"inductor"`)
    """

    def __init__(self, module: nn.Module, backend="inductor"):
        self.module = module
        self.compiled = torch.compile(module, dynamic=True, backend=backend)
        self.failed: str | None = None

    def __call__(self, *args, **kwargs):
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:
                self.failed = f"{type(e).__name__}: {e}"
                warnings.warn(
                    f"train.compile: torch.compile failed ({self.failed[:500]}); "
                    "running the model without compilation",
                    stacklevel=2,
                )
        return self.module(*args, **kwargs)


def can_compile(enabled: bool, device: torch.device) -> bool:
    """Whether to compile: ``enabled`` and inductor works on ``device`` (else a warning)."""
    if not enabled:
        return False
    error = inductor_works(device)
    if error is not None:
        warnings.warn(
            f"train.compile: inductor cannot compile on {device} ({error}); "
            "running the model without compilation",
            stacklevel=2,
        )
        return False
    return True


def maybe_compile(module: nn.Module, enabled: bool, device: torch.device):
    """``module`` itself (``enabled`` false, or inductor unusable here: with a warning), or a
    :class:`Compiled` wrapper of it. A compiled model should not recompute activations itself
    (``Modes(recompute_activations=False)``): inductor's partitioner chooses what to recompute
    in backward."""
    return Compiled(module) if can_compile(enabled, device) else module
