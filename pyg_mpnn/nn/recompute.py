"""Exact activation-memory savings: cheap tensors recomputed in backward instead of saved.

A training step keeps, for backward, every tensor an operator saves: per edge, the output of
each GELU (saved by the next ``Linear``) beside its input (saved by the GELU itself), each
LayerNorm's output (saved by the next layer's linear maps) beside its input (saved by the
LayerNorm), dropout's float noise, the ``[E, 416]`` RBF + positional input of the edge
embedding and its one-hot positions. All of them are cheap functions of tensors that are kept
anyway (or of small ones); so is the first edge state ``W_e(LN(.))`` (one matrix product,
:func:`linear`). Inside :func:`recompute_scope`, a tensor marked with
:func:`recompute_later` is not stored when an operator saves it: a recipe ``(fn, args)`` is,
and ``fn(*args)`` is called when backward needs the tensor (under the autocast state of the
forward). The recomputation runs the same kernel on the same inputs, so the values -- and the
gradients computed from them by autograd's own formulas -- are bit-identical to saving them.

:class:`Dropout` is ``nn.Dropout`` (same random draws, same arithmetic) whose noise is
recomputed from its mask, packed 8 elements a byte (1 bit per element instead of 32).

:func:`count_saved` measures what a forward pass keeps for backward (bytes of distinct
storages), with or without a recompute scope inside it.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_scope: RecomputeScope | None = None
_probe: SavedBytes | None = None


class _Recipe:
    """``fn(*args)`` under the autocast state of its forward, without autograd."""

    __slots__ = ("fn", "args", "device", "autocast", "dtype")

    def __init__(self, fn: Callable, args: tuple, device: str):
        self.fn, self.args, self.device = fn, args, device
        self.autocast = torch.is_autocast_enabled(device)
        self.dtype = torch.get_autocast_dtype(device)

    def tensors(self) -> Iterator[Tensor]:
        """The tensors it keeps (those of nested recipes included)."""
        for a in self.args:
            if isinstance(a, _Recipe):
                yield from a.tensors()
            elif isinstance(a, Tensor):
                yield a

    def __call__(self) -> Tensor:
        with (
            torch.no_grad(),
            torch.autocast(self.device, dtype=self.dtype, enabled=self.autocast),
        ):
            return self.fn(*self.args)


class SavedBytes:
    """Distinct storages kept for backward (by data pointer): their bytes, and for each a
    label (the operator that made the tensor, or the recipe it is an input of) and shape."""

    def __init__(self):
        self.storages: dict[int, tuple[int, str, tuple]] = {}

    def add(self, t: Tensor, label: str) -> None:
        s = t.untyped_storage()
        self.storages.setdefault(s.data_ptr(), (s.nbytes(), label, tuple(t.shape)))

    @property
    def bytes(self) -> int:
        return sum(b for b, _, _ in self.storages.values())

    def by_label(self) -> dict[str, int]:
        """Bytes per label, largest first."""
        out: dict[str, int] = {}
        for b, label, _ in self.storages.values():
            out[label] = out.get(label, 0) + b
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _label(t: Tensor) -> str:
    if t.grad_fn is not None:
        return f"output of {t.grad_fn.name()}"
    return "parameter" if t.requires_grad else f"no-grad {str(t.dtype).removeprefix('torch.')}"


def _keep(obj):
    """What a pack hook returns, reported to an active :func:`count_saved` probe."""
    if _probe is not None:
        if isinstance(obj, _Recipe):
            name = getattr(obj.fn, "__name__", None) or getattr(obj.fn, "func", obj.fn).__name__
            for t in obj.tensors():
                _probe.add(t, f"input of recomputed {name}")
        else:
            _probe.add(obj, _label(obj))
    return obj


def _unpack(obj):
    return obj() if isinstance(obj, _Recipe) else obj


class RecomputeScope:
    """The pack hook of :func:`recompute_scope`: marked tensors become recipes."""

    def __init__(self):
        self.marked: dict[int, tuple] = {}

    def mark(self, t: Tensor, fn: Callable, args: tuple) -> None:
        # parameters are copied (a few values): FSDP frees a layer's gathered parameters after
        # its forward, before the backward of the layer that reads this tensor
        args = tuple(
            (a.detach().clone() if a.is_leaf and a.requires_grad else a.detach())
            if isinstance(a, Tensor)
            else a
            for a in args
        )
        key, marked = id(t), self.marked
        # forget the entry when ``t`` dies (its recipe lives on where an operator saved it)
        ref = weakref.ref(t, lambda _, k=key: marked.pop(k, None))
        # the autocast state is read here, in the forward's code: inside an operator's autocast
        # kernel (where pack hooks run) it reads as off
        marked[key] = (ref, t._version, _Recipe(fn, args, t.device.type))

    def recipe(self, t: Tensor) -> _Recipe | None:
        """The recipe of ``t`` if it is marked (and unchanged since)."""
        entry = self.marked.get(id(t))
        if entry is not None and entry[0]() is t and t._version == entry[1]:
            return entry[2]
        return None

    def pack(self, t: Tensor):
        recipe = self.recipe(t)
        return _keep(t if recipe is None else recipe)


@contextmanager
def recompute_scope(enabled: bool = True) -> Iterator[RecomputeScope | None]:
    """Within it (when ``enabled`` and gradients are on), tensors marked by
    :func:`recompute_later` are recomputed in backward instead of saved. Nested scopes are the
    outer one."""
    global _scope
    if not enabled or _scope is not None or not torch.is_grad_enabled():
        yield _scope
        return
    scope = _scope = RecomputeScope()
    try:
        with torch.autograd.graph.saved_tensors_hooks(scope.pack, _unpack):
            yield scope
    finally:
        _scope = None


def recompute_later(t: Tensor, fn: Callable, *args) -> Tensor:
    """``t`` (unchanged), marked: inside a :func:`recompute_scope`, an operator that saves
    ``t`` for backward stores ``(fn, args)`` instead, and ``fn(*args)`` -- which must return
    exactly ``t`` -- is computed when backward needs it. Outside a scope: nothing happens."""
    if _scope is not None:
        _scope.mark(t, fn, args)
    return t


@contextmanager
def count_saved() -> Iterator[SavedBytes]:
    """Bytes (distinct storages) that the autograd graph built inside it keeps for backward;
    a :func:`recompute_scope` inside reports what it keeps (recipes: their inputs)."""
    global _probe
    probe, before = SavedBytes(), _probe
    _probe = probe
    try:
        with torch.autograd.graph.saved_tensors_hooks(_keep, _unpack):
            yield probe
    finally:
        _probe = before


# -- the marked operations ----------------------------------------------------------------------
def activation(act: nn.Module, x: Tensor) -> Tensor:
    """``act(x)``; a GELU's output is recomputed from ``x`` (which the GELU keeps)."""
    y = act(x)
    if type(act) is nn.GELU:
        recompute_later(y, functools.partial(F.gelu, approximate=act.approximate), x)
    return y


def _layer_norm(x: Tensor, shape, weight, bias, eps: float) -> Tensor:
    return F.layer_norm(x, shape, weight, bias, eps)


def layer_norm(norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(x)``; a LayerNorm's output is recomputed from ``x`` (which the LayerNorm keeps)."""
    y = norm(x)
    if type(norm) is nn.LayerNorm:
        recompute_later(y, _layer_norm, x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return y


def _linear_of(recipe: _Recipe, weight: Tensor, bias: Tensor | None) -> Tensor:
    return F.linear(recipe.fn(*recipe.args), weight, bias)  # in the outer recipe's autocast


def linear(lin: nn.Module, x: Tensor) -> Tensor:
    """``lin(x)``; when ``x`` is recomputed itself (a LayerNorm output, say), a Linear's output
    is recomputed too: ``x``'s recipe and one matrix product in backward, instead of keeping
    ``[*, out]`` floats (used once per step, for the first edge embedding)."""
    y = lin(x)
    recipe = _scope.recipe(x) if _scope is not None else None
    if type(lin) is nn.Linear and recipe is not None:
        recompute_later(y, _linear_of, recipe, lin.weight, lin.bias)
    return y


def _pack_bits(mask: Tensor) -> Tensor:
    """A ``bool`` tensor of ``8 n`` elements as ``n`` bytes (element ``8 i + b`` in bit ``b``)."""
    shifts = torch.arange(8, dtype=torch.uint8, device=mask.device)
    return (mask.reshape(-1, 8).view(torch.uint8) << shifts).sum(1, dtype=torch.uint8)


def _noise(bits: Tensor, shape: torch.Size, dtype: torch.dtype, keep: float) -> Tensor:
    """Dropout's noise ``bernoulli / keep`` again, from its packed mask."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    mask = (bits.unsqueeze(-1) >> shifts) & 1
    return mask.view(shape).to(dtype).div_(keep)


class Dropout(nn.Dropout):
    r""":class:`torch.nn.Dropout` whose noise, inside a :func:`recompute_scope` on a CPU, is kept
    for backward as a bit mask (1 bit per element instead of 32) and rebuilt when needed.

    The same random draws and arithmetic as ``F.dropout`` on a CPU
    (:math:`\mathbf{x} \odot \mathrm{Bernoulli}(1 - p) / (1 - p)`), so the output and the
    gradient are bit-identical; outside a scope, in eval, on a GPU (whose fused kernel keeps a
    ``bool`` mask already) or with ``p`` of 0 or 1 it is ``nn.Dropout`` itself. Called as a
    module, so forward hooks (the tracking taps on residual branches) see its output.

    Args:
        p (float, optional): probability of an element to be zeroed. (default: :obj:`0.5`)
        inplace (bool, optional): as :class:`torch.nn.Dropout`. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(*)`
        - **output:** :math:`(*)`, the input's shape
    """

    def forward(self, x: Tensor) -> Tensor:
        p = self.p
        if (
            _scope is None
            or not self.training
            or self.inplace
            or not 0 < p < 1
            or x.numel() % 8 != 0  # (includes empty tensors)
            or x.device.type != "cpu"
        ):
            return super().forward(x)
        noise = torch.empty_like(x).bernoulli_(1 - p)
        noise.div_(1 - p)
        recompute_later(noise, _noise, _pack_bits(noise.ne(0)), noise.shape, noise.dtype, 1 - p)
        return x * noise
