"""Fine-tuning: start a run from released or trained weights (``init``) and freeze parts of the
model (``model.freeze``). See docs/finetuning.md.

* :func:`resolve_init` takes the architecture from the ``init`` checkpoint into ``cfg.model``;
  an experiment file or ``--set`` that asks for another value is a :class:`ConfigError` naming
  both. ``augment_eps`` (training noise) follows the checkpoint unless set explicitly, ``dropout``
  follows the config: they are training choices, not architecture.
* :func:`load_init` copies the weights in (strict: every key, every shape); the optimizer,
  schedule and step counter stay fresh.
* :func:`freeze` turns off ``requires_grad`` for every parameter under the given module-name
  prefixes; the trainer leaves those parameters out of the optimizer.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from pyg_mpnn.nn.weights import WeightsError, load_model, read_weights
from pyg_mpnn.train.config import Config, ConfigError

ARCH_KEYS = (
    "hidden_dim",
    "num_encoder_layers",
    "num_decoder_layers",
    "k_neighbors",
    "num_letters",
    "vocab",
    "backbone",
)
TRAINING_KEYS = ("augment_eps",)  # from the checkpoint unless set explicitly


def _read(spec: str) -> tuple[dict, dict]:
    try:
        return read_weights(spec)
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as err:
        raise ConfigError(f"init: {err}") from err


def resolve_init(
    cfg: Config, explicit: dict[str, str] | None = None, spec: str | None = None
) -> Config:
    """Set ``cfg.model``'s architecture from the checkpoint named by ``cfg.init`` (in place;
    returns ``cfg``).

    Args:
        cfg (Config): the experiment config.
        explicit (dict, optional): ``{dotted key: where}`` of keys that were set on purpose
            (:func:`pyg_mpnn.train.config.explicit_keys`); such a key that disagrees with the
            checkpoint is an error. Without it the checkpoint wins silently.
        spec (str, optional): read the architecture from here instead (the checkpoint of a
            fine-tune being resumed).
    """
    spec = spec or cfg.init
    if not spec:
        return cfg
    explicit = explicit or {}
    _, ck = _read(spec)
    try:  # the checkpoint's own architecture holds its weights (else no config could)
        load_model(spec)
    except WeightsError as err:
        raise ConfigError(f"init: {err}") from err
    model, changes = cfg.model, {}
    for key in ARCH_KEYS:
        if key not in ck:
            continue
        where = explicit.get(f"model.{key}")
        if where and getattr(model, key) != ck[key]:
            raise ConfigError(
                f"model.{key}={getattr(model, key)} ({where}) conflicts with {key}={ck[key]} of "
                f"the init weights {spec}: the architecture comes from the checkpoint; drop the "
                f"override or start from other weights"
            )
        changes[key] = ck[key]
    for key in TRAINING_KEYS:
        if key in ck and f"model.{key}" not in explicit:
            changes[key] = ck[key]
    cfg.model = dataclasses.replace(model, **changes)  # checked: the types of the section
    return cfg


def load_init(model: nn.Module, spec: str) -> None:
    """Copy the weights of ``spec`` into ``model`` (every parameter and buffer, same shapes)."""
    sd, _ = _read(spec)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"init: {spec} does not fit the model: {err}") from err


def module_names(model: nn.Module) -> list[str]:
    """Freezable prefixes: the top-level modules and the layers of each ``ModuleList``."""
    out = []
    for name, module in model.named_children():
        out.append(name)
        if isinstance(module, nn.ModuleList):
            out += [f"{name}.{i}" for i in range(len(module))]
    return out


def freeze(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Set ``requires_grad=False`` under every prefix (``"encoder_layers"`` matches
    ``encoder_layers.0.W1.weight`` but not ``encoder_layers_x``); returns the frozen parameter
    names. A prefix that matches nothing is a :class:`ConfigError`."""
    params = dict(model.named_parameters())
    frozen = []
    for prefix in prefixes or []:
        hit = [n for n in params if n == prefix or n.startswith(prefix + ".")]
        if not hit:
            raise ConfigError(
                f"model.freeze: {prefix!r} matches no parameter; modules: "
                f"{', '.join(module_names(model))}"
            )
        frozen += [n for n in hit if n not in frozen]
    for n in frozen:
        params[n].requires_grad_(False)
    return frozen


def count(model: nn.Module, frozen: list[str]) -> tuple[int, int]:
    """(trainable, frozen) parameter counts (elements)."""
    names = set(frozen)
    n_frozen = sum(p.numel() for n, p in model.named_parameters() if n in names)
    return sum(p.numel() for p in model.parameters()) - n_frozen, n_frozen
