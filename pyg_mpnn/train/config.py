"""Typed experiment configs: ``experiments/base.yaml`` < ``experiments/<exp>.yaml`` < ``--set``.

The YAML files are merged into one nested mapping, which becomes a :class:`Config`: one
dataclass per section (:class:`ModelConfig`, :class:`DataConfig`, :class:`OptimConfig`, ...).

* ``base.yaml`` is the one place where the keys, their defaults and their meaning are written:
  the dataclasses declare names and types only (no defaults), and building one needs every key.
* An experiment file (or ``--set``) may only override keys that exist in ``base.yaml``; an
  experiment may name another one to start from with ``extends: NAME``.
* Every value is checked against its field's type when a section is built (also by
  :func:`dataclasses.replace`) or a field assigned; an ``int`` is accepted for a ``float`` field and an integral
  ``float`` (``1e6``) for an ``int`` field. A wrong type, an unknown or a missing key is a
  :class:`ConfigError` that names the key path and the expected type, e.g.
  ``optim.eps: expected float, got str 'abc' (--set)``. ``python -m pyg_mpnn.train`` prints it
  and exits with status 2.
* YAML numbers such as ``1e-4`` are floats (PyYAML's YAML 1.1 rules read them as strings).

Consumers read attributes (``cfg.optim.grad_clip``); :meth:`Config.to_dict` gives the plain
nested dict (checkpoints' ``train_config``, ``run.json``, ``--print-config``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

# merge, parse_override, set_values, apply_overrides, sections, flatten: this module's API too
from pyg_mpnn.train.schema import (
    ConfigError,
    Section,
    apply_overrides,
    check_value,
    flatten,
    load_yaml,
    merge,
    nested,
    parse_override,
    require,
    sections,  # noqa: F401 (re-exported)
    set_values,
)

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"


# -- the sections: what each key means and its default are in experiments/base.yaml -----------
@dataclass
class ModelConfig(Section):
    """``model``: the :class:`~pyg_mpnn.nn.model.ProteinMPNN` arguments, and ``freeze``."""

    section = "model"
    RANGES = {
        "num_letters vocab hidden_dim num_encoder_layers num_decoder_layers k_neighbors": ">= 1",
        "augment_eps": ">= 0",
        "dropout": "[0, 1)",
    }
    num_letters: int
    vocab: int
    hidden_dim: int
    num_encoder_layers: int
    num_decoder_layers: int
    k_neighbors: int
    augment_eps: float
    dropout: float
    backbone: Literal["full", "ca"]
    freeze: list[str]

    def validate(self) -> None:
        require(all(self.freeze), "model.freeze", "module-name prefixes", self.freeze)

    def kwargs(self) -> dict:
        """The :class:`~pyg_mpnn.nn.model.ProteinMPNN` constructor arguments (no ``freeze``)."""
        return {k: v for k, v in self.to_dict().items() if k != "freeze"}


@dataclass
class DataConfig(Section):
    """``data``: the dataset, batches and loaders (:class:`pyg_mpnn.train.data.RunData`)."""

    section = "data"
    RANGES = {
        "max_tokens max_length valid_max_tokens valid_max_proteins": ">= 1",
        "num_workers max_worker_restarts": ">= 0",
    }
    path: str | None
    train_split: str
    valid_split: str
    max_tokens: int
    max_length: int | None
    valid_max_tokens: int | None
    valid_max_proteins: int | None
    num_workers: int
    max_worker_restarts: int
    transform: str | dict[str, Any] | None

    def validate(self) -> None:
        ok = self.path is None or all(p.strip() for p in self.path.split(","))
        require(ok, "data.path", "a path, paths joined by commas, null or embedded", self.path)


@dataclass
class OptimConfig(Section):
    """``optim``: Adam, gradient clipping and accumulation."""

    section = "optim"
    RANGES = {"betas": "[0, 1)", "eps": "> 0", "weight_decay": ">= 0", "accumulate": ">= 1"}
    betas: list[float]
    eps: float
    weight_decay: float
    grad_clip: float
    accumulate: int

    def validate(self) -> None:
        require(len(self.betas) == 2, "optim.betas", "two floats", self.betas)


@dataclass
class ScheduleConfig(Section):
    """``schedule``: the learning rate (:class:`pyg_mpnn.train.schedule.Schedule`)."""

    section = "schedule"
    RANGES = {"lr factor": "> 0", "min_lr warmup_steps": ">= 0", "total_steps model_size": ">= 1"}
    name: Literal["noam", "constant", "cosine"]
    lr: float
    min_lr: float
    total_steps: int | None
    factor: float
    warmup_steps: int
    model_size: int | None

    def validate(self) -> None:
        if self.name == "noam":  # its rate divides by the warm-up
            require(
                self.warmup_steps >= 1,
                "schedule.warmup_steps",
                "an int >= 1 (noam)",
                self.warmup_steps,
            )
        if self.name == "cosine":
            require(self.min_lr <= self.lr, "schedule.min_lr", "at most lr", self.min_lr)


@dataclass
class LossConfig(Section):
    """``loss``: the training objective (:class:`pyg_mpnn.train.loss.TrainingLoss`)."""

    section = "loss"
    RANGES = {"label_smoothing": "[0, 1)", "tokens": "> 0"}
    label_smoothing: float
    normalize: Literal["constant", "mean"]
    tokens: float


@dataclass
class TrainConfig(Section):
    """``train``: the loop's length, stop conditions, device, precision and parallelism."""

    section = "train"
    RANGES = {
        "epochs max_steps max_residues valid_every_steps valid_at_residues threads": ">= 1",
        "max_minutes": "> 0",
        "max_bad_steps shape_buckets release_memory_every": ">= 0",
    }
    epochs: int
    max_steps: int | None
    max_minutes: float | None
    max_residues: int | None
    valid_every_steps: int | None
    valid_at_residues: list[int] | None
    device: str
    precision: Literal["auto", "fast", "fp32", "bf16", "fp16"]
    threads: int | Literal["auto"] | None
    activation_checkpointing: bool
    recompute_activations: bool | Literal["auto"]
    shape_buckets: int
    release_memory_every: int
    compile: bool | Literal["auto"]
    aggregation: Literal["dense", "csr"]
    distributed: Literal["auto", "none", "ddp", "fsdp"]
    progress: bool
    max_bad_steps: int


@dataclass
class CheckpointConfig(Section):
    """``checkpoint``: when checkpoints are written and which are kept."""

    section = "checkpoint"
    RANGES = {"every_steps keep_last": ">= 1", "keep_every": ">= 0"}
    every_steps: int | None
    keep_last: int
    keep_every: int
    keep_best: bool


@dataclass
class TrackConfig(Section):
    """``track``: Aim, metrics.csv and the per-layer monitor."""

    section = "track"
    RANGES = {"log_every bins": ">= 1", "layer_every": ">= 0"}
    aim: bool
    aim_repo: str | None
    experiment: str | None
    log_every: int
    layer_every: int
    histograms: bool
    bins: int


@dataclass
class JacobianConfig(Section):
    """``jacobian``: the categorical-Jacobian probe during training."""

    section = "jacobian"
    RANGES = {"every_steps": ">= 0", "max_length orders": ">= 1", "substitutions": "[1, 20]"}
    every_steps: int
    probe: str
    max_length: int | None
    substitutions: int
    orders: int
    seed: int


@dataclass
class InjectConfig(Section):
    """``inject``: controlled faults for diagnostics."""

    section = "inject"
    RANGES = {"noise_std nan_step": ">= 0"}
    noise_after: int | None
    noise_std: float
    freeze_embedding: bool
    embedding_scale: float
    nan_step: int | list[int] | None
    nan_layer: str | None
    nan_in: Literal["forward", "backward"]


@dataclass
class ProfileConfig(Section):
    """``profile``: the torch.profiler window of ``--profile``."""

    section = "profile"
    RANGES = {"wait warmup": ">= 0", "active": ">= 1"}
    enabled: bool
    wait: int
    warmup: int
    active: int


@dataclass
class SweepConfig(Section):
    """``sweep``: several runs of the experiment (:mod:`pyg_mpnn.sweep`): model sizes at
    equal compute (``sizes`` or ``widths`` x ``depths``) or ablation ``points``."""

    section = "sweep"
    RANGES = {
        "widths depths token_budget": ">= 1",
        "flop_budgets max_minutes flop_budget": "> 0",
        "curve_flops": "(0, 1]",
        "overhead_s": ">= 0",
    }
    sizes: list[list[int]] | None
    widths: list[int] | None
    depths: list[int] | None
    flop_budgets: list[float] | None
    curve_flops: list[float] | None
    replicate: dict[str, Any] | list[dict[str, Any]] | None
    overhead_s: float
    max_minutes: float | None
    points: list[dict[str, Any]] | None
    table: str | None
    token_budget: int | None
    flop_budget: float | None
    budget_unit: Literal["residues", "supervised"]
    seeds: list[int] | None
    match_flops_per_residue: str | float | None
    match_key: str
    match_tolerance: float

    SIZES_KEYS = ("sizes", "widths", "depths", "flop_budgets", "curve_flops", "replicate")
    POINTS_KEYS = ("seeds", "match_flops_per_residue", "flop_budget")

    @property
    def enabled(self) -> bool:
        return bool(self.sizes or self.widths or self.points)

    def validate(self) -> None:
        """Each key's shape, then that the keys of the other form are unset: sizes and
        ``flop_budgets`` are the sizes form's, seeds, FLOP matching, ``flop_budget`` and a
        ``budget_unit`` other than residues the ablation points' (a point's own run config has
        ``points`` null and so neither)."""
        self._validate_sizes()
        self._validate_points()
        require(
            0 < self.match_tolerance < 1,
            "sweep.match_tolerance",
            "a value in (0, 1)",
            self.match_tolerance,
        )
        if self.points:
            for key in self.SIZES_KEYS:
                value = getattr(self, key)
                require(not value, f"sweep.{key}", "null with sweep.points (sizes form)", value)
        elif self.sizes or self.widths:
            unit = self.budget_unit if self.budget_unit != "residues" else None
            given = {k: getattr(self, k) for k in self.POINTS_KEYS} | {"budget_unit": unit}
            for key, value in given.items():
                if value:
                    raise ConfigError(
                        f"sweep.{key}={value!r} needs sweep.points (the ablation form)",
                        f"sweep.{key}",
                    )
        if self.enabled:
            budget = self.points and self.flop_budget or self.flop_budgets or self.token_budget
            require(
                bool(budget), "sweep.token_budget", "a budget (or flop_budgets, flop_budget)", None
            )

    def _validate_sizes(self) -> None:
        for i, size in enumerate(self.sizes or []):
            ok = len(size) == 2 and min(size) >= 1
            require(ok, f"sweep.sizes[{i}]", "[hidden_dim, layers], both >= 1", size)
        if self.widths and not self.sizes:
            require(bool(self.depths), "sweep.depths", "a list of depths", self.depths)
        many = isinstance(self.replicate, list)
        for i, rep in enumerate(self.replicates):
            key = f"sweep.replicate[{i}]" if many else "sweep.replicate"
            require(set(rep) <= {"size", "seed"}, key, "{size, seed}", rep)
            size = check_value(rep.get("size"), list[int], f"{key}.size")
            require(len(size) == 2, f"{key}.size", "[hidden_dim, layers]", size)
            check_value(rep.get("seed"), int | None, f"{key}.seed")

    @property
    def replicates(self) -> list[dict[str, Any]]:
        """``replicate`` as a list: one ``{size, seed}`` or several."""
        if self.replicate is None:
            return []
        return self.replicate if isinstance(self.replicate, list) else [self.replicate]

    def _validate_points(self) -> None:
        names = []
        for i, p in enumerate(self.points or []):
            require(set(p) <= {"name", "set"}, f"sweep.points[{i}]", "{name, set}", p)
            sets = check_value(p.get("set") or {}, dict[str, Any], f"sweep.points[{i}].set")
            names.append(str(p.get("name") or f"p{i}"))
            if self.match_flops_per_residue is not None:
                what = f"no {self.match_key} (sweep.match_key chooses it)"
                require(self.match_key not in sets, f"sweep.points[{i}].set", what, sets)
        ref = self.match_flops_per_residue
        if isinstance(ref, str) and self.points:
            require(ref in names, "sweep.match_flops_per_residue", f"a point of {names}", ref)
        require(
            len(set(self.seeds or [])) == len(self.seeds or []),
            "sweep.seeds",
            "distinct seeds",
            self.seeds,
        )
        if self.budget_unit == "supervised":
            require(
                not self.flop_budget and bool(self.token_budget),
                "sweep.budget_unit",
                "token_budget (not flop_budget) with budget_unit supervised",
                self.budget_unit,
            )


@dataclass
class Config(Section):
    """A whole experiment: ``cfg.model.hidden_dim``, ``cfg.optim.grad_clip``, ...

    Build it with :func:`load_experiment` (or :meth:`from_dict` from a merged mapping)."""

    name: str
    description: str
    seed: int
    init: str | None
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    loss: LossConfig
    train: TrainConfig
    checkpoint: CheckpointConfig
    track: TrackConfig
    jacobian: JacobianConfig
    inject: InjectConfig
    profile: ProfileConfig
    sweep: SweepConfig

    def validate(self) -> None:
        ok = self.init is None or bool(self.init.strip())
        require(ok, "init", "weights (original:v_48_0xx, soluble:..., a file) or null", self.init)
        for i, point in enumerate(self.sweep.points or []):  # each point is a config too
            try:
                self.override({**(point.get("set") or {}), "sweep.points": None})
            except ConfigError as e:
                raise ConfigError(f"sweep.points[{i}].set: {e}", "sweep.points") from None

    def override(self, items: list[str] | dict[str, Any]) -> Config:
        """A new, checked config with dotted keys set: ``["model.hidden_dim=32"]`` (values are
        YAML, as ``--set``) or ``{"model.hidden_dim": 32}``."""
        pairs = [parse_override(i) for i in items] if isinstance(items, list) else items.items()
        return Config.from_dict(set_values(self.to_dict(), pairs))


# -- loading -----------------------------------------------------------------------------------
def list_experiments(directory: Path = EXPERIMENTS_DIR) -> dict[str, str]:
    """``{name: description}`` for every ``*.yaml`` in the experiments folder."""
    out = {}
    for p in sorted(directory.glob("*.yaml")):
        try:
            out[p.stem] = (load_yaml(p.read_text()) or {}).get("description", "")
        except yaml.YAMLError as e:  # a broken file must not hide the others from --help
            out[p.stem] = f"(unreadable: {e.__class__.__name__})"
    return out


def _load_yaml(path: Path) -> dict:
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{line} ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _chain(name: str, directory: Path) -> list[tuple[Path, dict]]:
    """The experiment files of ``name``, itself first, following ``extends`` (base excluded)."""
    chain, seen = [], set()
    current: str | None = name
    while current and current != "base":
        p = Path(current)
        p = p if p.suffix in (".yaml", ".yml") and p.exists() else directory / f"{current}.yaml"
        if not p.exists():
            known = ", ".join(list_experiments(directory))
            raise ConfigError(f"no experiment {current!r} (known: {known})")
        if p in seen:
            raise ConfigError(f"experiment {name!r}: 'extends' loops")
        seen.add(p)
        data = _load_yaml(p)
        chain.append((p, data))
        current = data.pop("extends", None)
    return chain


def load_experiment(
    name: str, overrides: list[str] | None = None, directory: Path = EXPERIMENTS_DIR
) -> Config:
    """The checked config of experiment ``name`` (a name in ``experiments/`` or a YAML path)
    with ``overrides`` (``["key=value", ...]``, as ``--set``) applied."""
    if not str(name).strip():
        raise ConfigError(f"no experiment named (known: {', '.join(list_experiments(directory))})")
    cfg = _load_yaml(directory / "base.yaml")
    for path, data in reversed(_chain(name, directory)):
        try:
            cfg = merge(cfg, data)
        except ConfigError as e:
            raise ConfigError(f"{e} (in {path})", e.key) from None
    try:
        cfg = apply_overrides(cfg, overrides or [])
    except ConfigError as e:
        raise ConfigError(f"{e} (--set)", e.key) from None
    cfg["name"] = Path(name).stem
    try:
        return Config.from_dict(cfg)
    except ConfigError as e:
        where = _source(e.key, explicit_keys(name, overrides, directory))
        raise ConfigError(f"{e} ({where})", e.key) from None


def _source(key: str | None, explicit: dict[str, str]) -> str:
    """Where a key's value came from: ``--set``, ``experiment NAME`` or base.yaml."""
    key = re.sub(r"\[\d+\]", "", key or "")
    for k, where in explicit.items():
        if key and (k == key or k.startswith(key + ".") or key.startswith(k + ".")):
            return where
    return "experiments/base.yaml"


def explicit_keys(
    name: str, overrides: list[str] | None = None, directory: Path = EXPERIMENTS_DIR
) -> dict[str, str]:
    """``{dotted key: where}`` for every key that the experiment's own files or ``--set`` set
    (not base.yaml's defaults); ``where`` is ``--set`` or the experiment's name."""
    out = {}
    for _, data in reversed(_chain(name, directory)):
        out.update(dict.fromkeys(flatten(data), f"experiment {Path(name).stem}"))
    for item in overrides or []:
        key, value = parse_override(item)
        out.update(dict.fromkeys(flatten(nested(key, value)), "--set"))
    return out
