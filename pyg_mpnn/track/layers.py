"""Per-layer heartbeat: norms and histograms of weights, activations, gradients and updates.

Layers are the model's top-level blocks: ``features``, ``W_e`` (edge embedding), ``W_s``
(sequence embedding), ``encoder.<i>`` and ``decoder.<i>`` (the MessagePassing layers) and
``W_out``; each belongs to a ``stack``: ``embed``, ``encoder``, ``decoder`` or ``head``.

Every ``every`` steps :meth:`LayerMonitor.capture` (after backward, before the optimizer step)
and :meth:`LayerMonitor.after_step` (after it) report, per layer, with context
``{layer, stack, kind[, part]}``:

* ``norm``: the root-mean-square of the values (the "average norm" per element, comparable
  between layers of different sizes), for ``kind`` = ``weight`` (parameters), ``gradient``,
  ``activation`` (``part`` = ``node`` or ``edge``: the outputs of every MessagePassing layer
  and of the embeddings, captured by forward hooks during that step's forward pass);
* ``update_ratio`` (``kind`` = ``update``): ``||theta_after - theta_before|| / ||theta_before||``
  over the layer's parameters (healthy Adam training sits around 1e-3);
* ``hist``: an ``aim.Distribution`` of the same values (exact, ``bins`` equal-width bins
  between their min and max), when histograms are on.

Hooks only record on steps where the monitor is armed, so the other steps pay one Python branch
per layer.

Parameters frozen by configuration (``model.freeze``, passed as ``frozen``) are known as such:
their layer's weights are still reported, but no gradient or update is expected from them, so a
layer whose parameters are all frozen gets no ``update_ratio`` and a partly frozen one gets the
ratio of its trainable parameters. The run records ``frozen_layers`` (Aim run attribute) and
:func:`frozen_layers` maps the config's prefixes to layer names for ``diagnose``. A parameter
whose ``requires_grad`` is off for another reason (a bug, an injected fault) is still tracked
as trainable, so ``diagnose`` reports it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ORDER = ("embed", "encoder", "decoder", "head")


def layer_of(param_name: str) -> tuple[str, str]:
    """``"encoder_layers.1.W1.weight"`` -> (``"encoder.1"``, ``"encoder"``)."""
    parts = param_name.split(".")
    if parts[0] == "encoder_layers":
        return f"encoder.{parts[1]}", "encoder"
    if parts[0] == "decoder_layers":
        return f"decoder.{parts[1]}", "decoder"
    if parts[0] in ("W_out",):
        return parts[0], "head"
    return parts[0], "embed"


def frozen_layers(prefixes: list[str] | None, layers) -> list[str]:
    """The layers (names as :func:`layer_of` gives) that the module-name ``prefixes`` of
    ``model.freeze`` cover entirely: ``encoder_layers`` -> every ``encoder.<i>``,
    ``encoder_layers.1`` -> ``encoder.1``, ``W_e`` -> ``W_e``; a prefix inside a layer
    (``encoder_layers.1.W1``) freezes only part of it and covers none."""
    out = []
    for prefix in prefixes or []:
        parts = prefix.split(".")
        if parts[0] in ("encoder_layers", "decoder_layers"):
            if len(parts) > 2:
                continue
            stack = parts[0].split("_")[0]
            out += [
                la
                for la in layers
                if (la.startswith(stack + ".") if len(parts) == 1 else la == f"{stack}.{parts[1]}")
            ]
        elif len(parts) == 1:
            out += [la for la in layers if la == parts[0]]
    return sorted(set(out), key=layer_sort_key)


class LayerMonitor:
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
        self.acts: dict[tuple[str, str], torch.Tensor] = {}
        self.groups: dict[str, tuple[str, list[torch.nn.Parameter]]] = {}
        self.trained: dict[str, list[torch.nn.Parameter]] = {}  # not frozen by configuration
        frozen = set(frozen or [])
        for name, p in model.named_parameters():
            layer, stack = layer_of(name)
            self.groups.setdefault(layer, (stack, []))[1].append(p)
            self.trained.setdefault(layer, [])
            if name not in frozen:
                self.trained[layer].append(p)
        self.frozen_layers = [la for la, ps in self.trained.items() if not ps]
        if self.frozen_layers:
            tracker.set("frozen_layers", self.frozen_layers)
        self._before: dict[str, list[torch.Tensor]] = {}
        self._handles = []
        self.last_edges = 0
        for layer, module in self._hooked_modules():
            self._handles.append(module.register_forward_hook(self._hook(layer)))

    def _hooked_modules(self):
        m = self.model
        for name in ("W_e", "W_s"):
            if isinstance(getattr(m, name, None), nn.Module):
                yield name, getattr(m, name)
        for i, layer in enumerate(getattr(m, "encoder_layers", [])):
            yield f"encoder.{i}", layer
        for i, layer in enumerate(getattr(m, "decoder_layers", [])):
            yield f"decoder.{i}", layer

    def _hook(self, layer: str):
        def hook(module, inputs, output):
            if layer == "encoder.0" and isinstance(output, tuple) and len(output) > 1:
                self.last_edges = int(output[1].shape[0])  # edges/s without extra work
            if not self.armed:
                return
            outs = output if isinstance(output, tuple) else (output,)
            parts = (
                ("node", "edge")
                if layer.startswith("encoder")
                else (("edge",) if layer == "W_e" else ("node",))
            )
            for part, t in zip(parts, outs):
                if isinstance(t, torch.Tensor):
                    self.acts[(layer, part)] = t.detach()

        return hook

    def stack_of(self, layer: str) -> str:
        return (
            self.groups[layer][0]
            if layer in self.groups
            else layer_of(
                layer.replace("encoder.", "encoder_layers.").replace("decoder.", "decoder_layers.")
            )[1]
        )

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
        for (layer, part), t in sorted(self.acts.items()):
            self._report([t], "activation", step, layer, self.stack_of(layer), part)
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


def layer_sort_key(layer: str) -> tuple:
    """Model order: embeddings, encoder 0..n, decoder 0..n, head."""
    stack = (
        "encoder"
        if layer.startswith("encoder")
        else "decoder"
        if layer.startswith("decoder")
        else "head"
        if layer == "W_out"
        else "embed"
    )
    idx = int(layer.split(".")[1]) if "." in layer else 0
    return ORDER.index(stack), idx, layer
