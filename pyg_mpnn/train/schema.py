"""Typed config sections: dataclasses whose fields are checked against their annotations.

:class:`Section` is the base of every section of :class:`pyg_mpnn.train.config.Config`: building
one (:meth:`Section.from_dict`, the constructor or :func:`dataclasses.replace`) checks and
converts each value with :func:`check_value`; a wrong type, an unknown or a missing key is a
:class:`ConfigError` naming the dotted key path and the expected type.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from dataclasses import fields
from typing import Any, ClassVar, Literal, Union

import yaml

from pyg_mpnn.errors import UserError


class ConfigError(UserError, ValueError):
    """A config that cannot be used; ``key`` is the dotted key path when one is at fault."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class _Loader(yaml.SafeLoader):
    """The safe loader, with YAML 1.2 floats: ``1e-4`` is a float, not the string ``'1e-4'``."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


# -- type checking -------------------------------------------------------------------------------
def _describe(tp) -> str:
    """``int``, ``float or null``, ``list of int``, ``one of 'a'|'b'``: the type in an error."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        rest = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(rest + ["null"] * (type(None) in args))
    if origin is Literal:
        return "one of " + "|".join(str(a) for a in args)
    if origin is list:
        return f"list of {_describe(args[0])}"
    if origin is dict or tp is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return f"mapping (a {tp.__name__})"
    return "any value" if tp is Any else getattr(tp, "__name__", str(tp))


def _mismatch(value, tp, key: str) -> ConfigError:
    got = "null" if value is None else f"{type(value).__name__} {value!r}"
    return ConfigError(f"{key}: expected {_describe(tp)}, got {got}", key)


def check_value(value, tp, key: str):
    """``value`` as a value of type ``tp`` (a field's annotation), or a :class:`ConfigError`
    naming ``key``; ints become floats for ``float``, integral floats ints for ``int``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        raise _mismatch(value, tp, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(value, option, key)
            except ConfigError:
                continue
        raise _mismatch(value, tp, key)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _mismatch(value, tp, key)
    if origin is list:
        if not isinstance(value, list):
            raise _mismatch(value, tp, key)
        return [check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _mismatch(value, tp, key)
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if tp is float and number:
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise _mismatch(value, tp, key)


_INTERVAL = re.compile(r"^([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$|^(>=|>)\s*(\S+)$")


def in_range(value, interval: str) -> bool:
    """Whether the number ``value`` is finite and lies in ``interval``: ``"> 0"``, ``">= 1"``,
    ``"[0, 1)"``, ``"(0, 1]"``..."""
    m = _INTERVAL.match(interval)
    if m is None:
        raise ValueError(f"bad interval {interval!r}")
    if not math.isfinite(value):
        return False
    if m.group(5):
        low = float(m.group(6))
        return value > low if m.group(5) == ">" else value >= low
    low, high = float(m.group(2)), float(m.group(3))
    above = value > low if m.group(1) == "(" else value >= low
    return above and (value < high if m.group(4) == ")" else value <= high)


def a_value(interval: str) -> str:
    """``"a value > 0"``, ``"a value in [0, 1)"``: what an interval accepts, for a message."""
    return f"a value {'' if interval[0] == '>' else 'in '}{interval}"


def check_ranges(section: Section) -> None:
    """Every field named in the section's ``RANGES`` (``None`` and the words a ``Literal``
    allows, such as ``"auto"``, skipped; lists checked item by item) lies in its interval;
    else a :class:`ConfigError` naming the key and interval."""
    for names, interval in section.RANGES.items():
        for name in names.split():
            value = getattr(section, name)
            for v in value if isinstance(value, list) else [value]:
                if v is not None and not isinstance(v, str) and not in_range(v, interval):
                    key = section._key(name)
                    raise ConfigError(f"{key}: expected {a_value(interval)}, got {v!r}", key)


def require(ok: bool, key: str, what: str, value) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {what}, got {value!r}", key)


@functools.cache
def field_types(cls) -> dict:
    """``{field name: its annotation}`` of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


class Section:
    """A config section: a dataclass whose fields are checked (and converted: see
    :func:`check_value`) whenever one is set: when it is built (:meth:`from_dict`, the
    constructor, :func:`dataclasses.replace`) and when a field is assigned later.

    ``section`` is its key path (``"optim"``); ``RANGES`` maps fields (space-separated names)
    to the interval their numbers must lie in (``{"lr factor": "> 0"}``: where a wrong sign or
    a zero is never meant);
    :meth:`validate` holds the other checks beyond the types (shapes, relations). Both run
    when it is built."""

    section: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, str]] = {}

    def __setattr__(self, name: str, value) -> None:
        tp = field_types(type(self)).get(name)
        if tp is not None:
            value = check_value(value, tp, self._key(name))
        object.__setattr__(self, name, value)

    def __post_init__(self) -> None:
        check_ranges(self)
        self.validate()

    def _key(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name

    def validate(self) -> None:
        pass

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a mapping that has exactly this section's keys (sections nested)."""
        where = cls.section or "config"
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {data!r}", cls.section or None)
        names = [f.name for f in fields(cls)]
        prefix = f"{cls.section}." if cls.section else ""
        for key in data:
            if key not in names:
                raise unknown_key(f"{prefix}{key}", [prefix + n for n in names])
        for name in names:
            if name not in data:
                key = prefix + name
                raise ConfigError(f"{key}: missing (experiments/base.yaml defines every key)", key)
        hints = field_types(cls)
        return cls(
            **{n: hints[n].from_dict(data[n]) if _is_section(hints[n]) else data[n] for n in names}
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_section(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, Section)


def unknown_key(key: str, known: list[str]) -> ConfigError:
    """The error for a key that is not in ``known`` (dotted keys of every section): it
    suggests a near spelling in the same section, else the same name in another section
    (``optim.lr`` -> ``schedule.lr``), else the closest key, else the key whose last part is
    closest."""
    section, _, leaf = key.rpartition(".")
    leaves = {k: k.rsplit(".", 1)[-1] for k in known}
    here = [k for k in known if k.rpartition(".")[0] == section]
    close = difflib.get_close_matches(key, here, n=1, cutoff=0.8)
    close = close or [k for k, name in leaves.items() if name == leaf and k != key]
    close = close or difflib.get_close_matches(key, known, n=1)
    if not close:
        near = difflib.get_close_matches(leaf, sorted(set(leaves.values())), n=1)
        close = [k for k, name in leaves.items() if near and name == near[0]][:2]
    hint = f" (did you mean {' or '.join(close[:2])}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}", key)


# -- nested mappings: merging, --set overrides, dotted keys ----------------------------------
def merge(base: dict, over: dict, path: str = "", known: list[str] | None = None) -> dict:
    """Deep-merge ``over`` into a copy of ``base``; a key that ``base`` lacks is an error (its
    "did you mean" searches ``known``: every key and section of the top-level ``base``)."""
    known = known if known is not None else [*flatten(base), *sections(base)]
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if key not in out:
            raise unknown_key(where, known)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{where}.", known)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> tuple[str, object]:
    """``"optim.grad_clip=1.0"`` -> (``"optim.grad_clip"``, ``1.0``); values are YAML."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def nested(key: str, value) -> dict:
    for k in reversed(key.split(".")):
        value = {k: value}
    return value


def set_values(cfg: dict, pairs) -> dict:
    """``cfg`` with each ``(dotted key, value)`` of ``pairs`` merged in (keys must exist)."""
    for key, value in pairs:
        cfg = merge(cfg, nested(key, value))
    return cfg


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    return set_values(cfg, [parse_override(item) for item in overrides or []])


def sections(cfg: dict, prefix: str = "") -> list[str]:
    """The dotted paths of the mappings in ``cfg`` (``["model", "sweep", ...]``)."""
    return [
        p
        for k, v in cfg.items()
        if isinstance(v, dict)
        for p in [f"{prefix}{k}", *sections(v, f"{prefix}{k}.")]
    ]


def flatten(cfg: dict, prefix: str = "") -> dict:
    """``{"model.hidden_dim": 128, ...}`` of a nested dict."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
