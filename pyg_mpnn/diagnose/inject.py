"""Controlled faults, so that :mod:`pyg_mpnn.diagnose` can be shown to find them (config
section ``inject``; ``experiments/noise_module.yaml``).

* ``noise_after: I`` adds a module ``noise`` (:class:`NodeNoise`) after encoder layer ``I``
  (``-1``: the last): the node states become ``h + W z`` with fresh ``z ~ N(0, noise_std^2)``
  at every forward pass. It carries no information, so its gradient is incoherent noise and its
  scale stays far below every other layer's: diagnose finding (a) names it.
* ``freeze_embedding: true`` stops the sequence embedding ``W_s`` from training;
  ``embedding_scale: F`` multiplies its initial weights by ``F`` (mis-scaled).
* ``nan_step: S`` with ``nan_layer: L`` (``encoder.1``, ``decoder.0``, ``W_e``, ...) makes
  layer ``L``'s output NaN at training step ``S``: finding (f) names ``L`` and ``S``.
  ``nan_step`` may list steps (``[3, 6, 7]``); ``nan_in: backward`` poisons the gradient
  flowing back into that output instead (the loss stays finite). The trainer skips such steps
  and stops after ``train.max_bad_steps`` in a row (docs/reliability.md).
"""

from __future__ import annotations

import torch
from torch import nn

from pyg_mpnn.track.layers import layer_of


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
    """Applies the ``inject`` section to a freshly built model; the trainer sets
    :attr:`step` (the optimizer step being computed) before each step's forward passes."""

    def __init__(self, model: nn.Module, cfg: dict | None):
        cfg = cfg or {}
        self.model, self.step, self.handles = model, 0, []
        after = cfg.get("noise_after")
        if after is not None:
            layers = model.encoder_layers
            idx = int(after) % len(layers)
            model.noise = NodeNoise(model.hidden_dim, float(cfg.get("noise_std", 1.0)))
            nn.init.xavier_uniform_(model.noise.W.weight)
            self.handles.append(layers[idx].register_forward_hook(self._noise_hook))
        if float(cfg.get("embedding_scale", 1.0)) != 1.0:
            with torch.no_grad():
                model.W_s.weight.mul_(float(cfg["embedding_scale"]))
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
        for name, module in self.model.named_modules():
            if (
                name
                and layer_of(name + ".x")[0] == layer
                and name.count(".")
                == (1 if name.startswith(("encoder_layers", "decoder_layers")) else 0)
            ):
                return module
        raise ValueError(f"inject.nan_layer: no layer {layer!r}")

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
