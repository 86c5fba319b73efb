"""Per-layer heartbeat: norms and histograms of weights, activations, gradients and updates.

Layers are the blocks the model names itself: its ``blocks()`` method yields
:class:`~pyg_mpnn.nn.Block` s ``(name, stack, module[, outputs[, taps]])`` (ProteinMPNN:
``features``, ``W_e``, ``W_s`` in stack ``embed``, ``encoder.<i>``, ``decoder.<i>``, ``W_out`` in
stack ``head``; :meth:`pyg_mpnn.nn.ProteinMPNN.blocks`). Nothing here parses parameter names:
any model with ``blocks()`` is tracked alike, and a model without it gets one block per
top-level child module (stack ``body``). Parameters outside every block (a module added later)
form a block named after their top-level module, stack ``other``.

Every ``every`` steps :meth:`LayerMonitor.capture` (after backward, before the optimizer step)
and :meth:`LayerMonitor.after_step` (after it) report, per layer, with context
``{layer, stack, kind[, part]}``:

* ``norm``: the root-mean-square of the values (the "average norm" per element, comparable
  between layers of different sizes), for ``kind`` = ``weight`` (parameters), ``gradient``,
  ``activation`` (``part``: the block's ``outputs``, e.g. ``node`` and ``edge``, captured by
  forward hooks on the block's module during that step's forward pass, and its ``taps``:
  sub-modules whose outputs are recorded too -- ProteinMPNN's layers end in LayerNorm, so their
  outputs have RMS ~1 by construction, and the taps give the terms before the norm:
  ``node_message`` (the summed messages, before the division by ``scale``), ``node_residual``
  and ``node_ffn`` (the message and feed-forward branches added to ``h``), ``edge_residual``);
* ``update_ratio`` (``kind`` = ``update``): ``||theta_after - theta_before|| / ||theta_before||``
  over the layer's parameters (healthy Adam training sits around 1e-3);
* ``hist``: an ``aim.Distribution`` of the same values (exact, ``bins`` equal-width bins
  between their min and max), when histograms are on.

Hooks only record on steps where the monitor is armed, so the other steps pay one Python branch
per hooked module (the model's numerics are untouched: a tap is an existing sub-module, or an
``nn.Identity`` placed for it).

Parameters frozen by configuration (``model.freeze``, passed as ``frozen``) are known as such:
their layer's weights are still reported, but no gradient or update is expected from them, so a
layer whose parameters are all frozen gets no ``update_ratio`` and a partly frozen one gets the
ratio of its trainable parameters. The run records ``blocks`` (``[[name, stack], ...]`` in
model order) and ``frozen_layers`` (Aim run attributes and ``run.json``) for ``diagnose``,
which reads the runs without the model. A parameter whose ``requires_grad`` is off for another
reason (a bug, an injected fault) is still tracked as trainable, so ``diagnose`` reports it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyg_mpnn.nn.model import Block


def model_blocks(model: nn.Module) -> list[Block]:
    """The :class:`~pyg_mpnn.nn.Block` s of ``model``: its ``blocks()`` when it has one
    (plain ``(name, stack, module)`` triples get outputs ``("node",)``), else one block per
    top-level child module that has parameters (stack ``body``)."""
    if callable(getattr(model, "blocks", None)):
        return [Block(*block) for block in model.blocks()]
    return [
        Block(name, "body", child)
        for name, child in model.named_children()
        if any(True for _ in child.parameters())
    ]


def parameter_blocks(model: nn.Module) -> dict[str, tuple[str, list[tuple[str, nn.Parameter]]]]:
    """``{block: (stack, [(parameter name, parameter), ...])}`` in block order. A parameter
    that no block holds (a module added to the model later, such as an injected fault) goes
    to a block named after its top-level module, stack ``other``: nothing goes untracked."""
    owner, groups = {}, {}
    for block in model_blocks(model):
        groups[block.name] = (block.stack, [])
        for p in block.module.parameters():
            owner.setdefault(id(p), block.name)
    for pname, p in model.named_parameters():
        name = owner.get(id(p)) or pname.split(".")[0]
        groups.setdefault(name, ("other", []))[1].append((pname, p))
    return groups


class LayerMonitor:
    """Per-block norms and histograms of ``model`` into ``tracker`` every ``every`` steps.

    Args:
        model: the (unwrapped) model; its blocks come from :func:`model_blocks`.
        tracker: a :class:`~pyg_mpnn.track.tracker.Tracker`.
        every (int): tracking period in optimizer steps (and step 1); ``0``: never.
            (default: ``50``)
        histograms (bool): also log histograms. (default: ``True``)
        bins (int): histogram bins. (default: ``64``)
        frozen (list[str], optional): parameter names frozen by configuration.
    """

    def __init__(
        self,
        model: nn.Module,
        tracker,
        every: int = 50,
        histograms: bool = True,
        bins: int = 64,
        frozen: list[str] | None = None,
    ):
        self.model, self.tracker = model, tracker
        self.every, self.histograms, self.bins = int(every), histograms, bins
        self.armed = False
        self.acts: dict[tuple[str, str, str], torch.Tensor] = {}
        self.groups: dict[str, tuple[str, list[torch.nn.Parameter]]] = {}
        self.trained: dict[str, list[torch.nn.Parameter]] = {}  # not frozen by configuration
        frozen = set(frozen or [])
        for layer, (stack, named) in parameter_blocks(model).items():
            self.groups[layer] = (stack, [p for _, p in named])
            self.trained[layer] = [p for name, p in named if name not in frozen]
        tracker.set("blocks", [[layer, stack] for layer, (stack, _) in self.groups.items()])
        self.frozen_layers = [la for la, ps in self.trained.items() if not ps]
        if self.frozen_layers:
            tracker.set("frozen_layers", self.frozen_layers)
        self._before: dict[str, list[torch.Tensor]] = {}
        self._handles = []
        self.last_edges = 0  # edges of the last forward pass (its first ``edge`` output)
        for block in model_blocks(model):
            if block.outputs:
                hook = self._hook(block.name, block.stack, block.outputs)
                self._handles.append(block.module.register_forward_hook(hook))
            for part, path in block.taps:
                tap = self._tap(block.name, block.stack, part)
                self._handles.append(self._submodule(block, path).register_forward_hook(tap))

    @staticmethod
    def _submodule(block: Block, path: str) -> nn.Module:
        try:
            return block.module.get_submodule(path)
        except AttributeError:
            raise ValueError(
                f"block {block.name!r} taps {path!r}, which is no sub-module of its "
                f"{type(block.module).__name__}"
            ) from None

    def _tap(self, layer: str, stack: str, part: str):
        def hook(module, inputs, output):
            if self.armed and isinstance(output, torch.Tensor):
                self.acts[(layer, stack, part)] = output.detach()

        return hook

    def _hook(self, layer: str, stack: str, parts: tuple[str, ...]):
        def hook(module, inputs, output):
            outs = output if isinstance(output, tuple) else (output,)
            if "edge" in parts:
                self.last_edges = int(outs[parts.index("edge")].shape[0])  # edges/s, no extra work
            if not self.armed:
                return
            for part, t in zip(parts, outs):
                if isinstance(t, torch.Tensor):
                    self.acts[(layer, stack, part)] = t.detach()

        return hook

    def due(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based) is a tracking step."""
        return self.every > 0 and (step % self.every == 0 or step == 1)

    def arm(self, on: bool = True) -> None:
        self.armed = on
        if not on:
            self.acts.clear()

    def _report(
        self,
        tensors: list[torch.Tensor],
        kind: str,
        step: int,
        layer: str,
        stack: str,
        part: str | None = None,
    ):
        """RMS over all values of ``tensors`` and (when on) their exact histogram, without
        concatenating them (``vector_norm``/``aminmax``/``histc`` per tensor, then summed)."""
        tensors = [t.detach() for t in tensors if t.numel()]
        if not tensors:
            return
        n = sum(t.numel() for t in tensors)
        sumsq = sum(float(torch.linalg.vector_norm(t, dtype=torch.float32)) ** 2 for t in tensors)
        self.tracker.track(
            (sumsq / n) ** 0.5, "norm", step, layer=layer, stack=stack, kind=kind, part=part
        )
        if not self.histograms:
            return
        bounds = [torch.aminmax(t) for t in tensors]
        lo = min(float(b.min) for b in bounds)
        hi = max(float(b.max) for b in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts = sum(torch.histc(t.float(), self.bins, lo, hi) for t in tensors)
        self.tracker.histogram(
            counts.cpu().numpy(),
            (lo, hi),
            "hist",
            step,
            layer=layer,
            stack=stack,
            kind=kind,
            part=part,
        )

    @torch.no_grad()
    def capture(self, step: int) -> None:
        """After backward (gradients unscaled), before the optimizer step."""
        for layer, (stack, params) in self.groups.items():
            self._report(list(params), "weight", step, layer, stack)
            self._report(
                [p.grad for p in params if p.grad is not None], "gradient", step, layer, stack
            )
            if self.trained[layer]:
                self._before[layer] = [p.detach().clone() for p in self.trained[layer]]
        for (layer, stack, part), t in sorted(self.acts.items()):
            self._report([t], "activation", step, layer, stack, part)
        self.acts.clear()

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """After the optimizer step: update/weight ratio per layer."""
        for layer, before in self._before.items():
            stack, params = self.groups[layer][0], self.trained[layer]
            delta = [p.detach() - b for p, b in zip(params, before)]
            num = sum(float(torch.linalg.vector_norm(d, dtype=torch.float32)) ** 2 for d in delta)
            den = sum(float(torch.linalg.vector_norm(b, dtype=torch.float32)) ** 2 for b in before)
            ratio = (num / den) ** 0.5 if den > 0 else float("nan")
            self.tracker.track(ratio, "update_ratio", step, layer=layer, stack=stack, kind="update")
            self._report(delta, "update", step, layer, stack)
        self._before.clear()
        self.arm(False)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
