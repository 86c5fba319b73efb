"""Declarative experiment configs: ``experiments/base.yaml`` < ``experiments/<exp>.yaml`` < ``--set``.

A config is a plain nested ``dict``. ``base.yaml`` defines every key (with its default and a
comment); an experiment file may only override keys that exist there (a typo is an error, not a
silently ignored setting), except inside ``sweep`` which is free-form. An experiment may name
another one to start from with ``extends: NAME``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
FREE_KEYS = {"sweep"}  # sections whose content base.yaml does not fix


class ConfigError(ValueError):
    pass


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> dict[str, str]:
    """``{name: description}`` for every ``*.yaml`` in the experiments folder."""
    out = {}
    for p in sorted(directory.glob("*.yaml")):
        try:
            out[p.stem] = (yaml.safe_load(p.read_text()) or {}).get("description", "")
        except yaml.YAMLError as e:  # a broken file must not hide the others from --help
            out[p.stem] = f"(unreadable: {e.__class__.__name__})"
    return out


def _load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def merge(base: dict, over: dict, path: str = "", strict: bool = True) -> dict:
    """Deep-merge ``over`` into a copy of ``base``; unknown keys are an error when ``strict``."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if (
            strict
            and key not in out
            and path.split(".")[0] not in FREE_KEYS
            and key not in FREE_KEYS
        ):
            raise ConfigError(f"unknown config key {where!r}")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{where}.", strict)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> tuple[list[str], object]:
    """``"optim.grad_clip=1.0"`` -> (``["optim", "grad_clip"]``, ``1.0``); values are YAML."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    for item in overrides or []:
        keys, value = parse_override(item)
        nested: dict = value
        for k in reversed(keys):
            nested = {k: nested}
        cfg = merge(cfg, nested)
    return cfg


def _chain(name: str, directory: Path) -> list[dict]:
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
        chain.append(data)
        current = data.pop("extends", None)
    return chain


def load_experiment(
    name: str, overrides: list[str] | None = None, directory: Path = EXPERIMENTS_DIR
) -> dict:
    """The merged config of experiment ``name`` (a name in ``experiments/`` or a YAML path)."""
    cfg = _load_yaml(directory / "base.yaml")
    for data in reversed(_chain(name, directory)):
        cfg = merge(cfg, data)
    cfg = apply_overrides(cfg, overrides or [])
    cfg["name"] = Path(name).stem
    validate(cfg)
    return cfg


def explicit_keys(
    name: str, overrides: list[str] | None = None, directory: Path = EXPERIMENTS_DIR
) -> dict[str, str]:
    """``{dotted key: where}`` for every key that the experiment's own files or ``--set`` set
    (not base.yaml's defaults); ``where`` is ``--set`` or the experiment's name."""
    out = {}
    for data in reversed(_chain(name, directory)):
        out.update(dict.fromkeys(flatten(data), f"experiment {Path(name).stem}"))
    for item in overrides or []:
        keys, value = parse_override(item)
        nested: object = value
        for k in reversed(keys):
            nested = {k: nested}
        out.update(dict.fromkeys(flatten(nested), "--set"))
    return out


def validate(cfg: dict) -> None:
    t, o, lo = cfg["train"], cfg["optim"], cfg["loss"]
    if t["precision"] not in ("auto", "fast", "fp32", "bf16", "fp16"):
        raise ConfigError(
            f"train.precision must be auto|fast|fp32|bf16|fp16, got {t['precision']!r}"
        )
    if lo["normalize"] not in ("constant", "mean"):
        raise ConfigError(f"loss.normalize must be constant|mean, got {lo['normalize']!r}")
    if int(o["accumulate"]) < 1:
        raise ConfigError("optim.accumulate must be >= 1")
    if int(cfg["data"]["max_tokens"]) < 1:
        raise ConfigError("data.max_tokens must be >= 1")
    if t.get("distributed", "auto") not in ("auto", "none", "ddp", "fsdp"):
        raise ConfigError("train.distributed must be auto|none|ddp|fsdp")
    if cfg["schedule"]["name"] not in ("noam", "constant", "cosine"):
        raise ConfigError("schedule.name must be noam|constant|cosine")
    freeze = cfg["model"].get("freeze") or []
    if not isinstance(freeze, list) or not all(isinstance(f, str) and f for f in freeze):
        raise ConfigError(f"model.freeze must be a list of module-name prefixes, got {freeze!r}")
    if cfg.get("init") is not None and not isinstance(cfg["init"], str):
        raise ConfigError(f"init must be a weight spec or checkpoint path, got {cfg['init']!r}")


def get(cfg: dict, dotted: str):
    node = cfg
    for k in dotted.split("."):
        node = node[k]
    return node


def flatten(cfg: dict, prefix: str = "") -> dict:
    """``{"model.hidden_dim": 128, ...}`` (for Aim hparams and CSV headers)."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
