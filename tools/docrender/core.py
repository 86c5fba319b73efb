"""The renderers' registry and the helpers every renderer uses: load a result file, look up a
key path, format numbers, build a Markdown table. ``render_docs.py`` finds every renderer here
(``RENDERERS``) once the topic modules are imported."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDERERS = {}
SCRIPT_PATH = re.compile(r"python benchmarks/(?P<name>\w+)\.py\b")


class RenderError(ValueError):
    """A marker that cannot be rendered: unknown kind, missing file or key."""


def renderer(kind: str):
    def register(fn):
        RENDERERS[kind] = fn
        return fn

    return register


@cache
def load(results: Path, name: str) -> dict:
    path = results / name
    if not path.is_file():
        raise RenderError(f"{path}: result file not found")
    return json.loads(path.read_text())


def lookup(data, path: str, where: str):
    """``data[k1][k2]...`` for the dotted ``path`` (integers index lists)."""
    for key in path.split("."):
        try:
            data = data[int(key)] if isinstance(data, list) else data[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise RenderError(f"{where}: no key {path!r} (failed at {key!r})") from None
    return data


def machine_cpu(m: dict, flags: bool = False) -> str:
    """``2-core AMD EPYC ...`` from a result's ``machine``; with ``flags``, its architecture and
    CPU flags in brackets (absent from older results: the architecture alone)."""
    arch = f" ({', '.join([m['arch'], *m.get('cpu_flags', [])])})" if flags else ""
    return f"{m['logical_cpus']}-core {m['cpu']}{arch}"


def machine_threads(m: dict) -> str:
    """``1 thread`` or ``N threads``."""
    return f"{m['threads']} thread{'s' * (m['threads'] != 1)}"


def machine_load(m: dict) -> str:
    """The 1-minute load average at the start and the end, ``a → b`` (``a`` with no end)."""
    end = f" → {m['loadavg_end'][0]:.1f}" if "loadavg_end" in m else ""
    return f"{m['loadavg_start'][0]:.1f}{end}"


def num(x: float) -> str:
    """Below 10 with one decimal, else a whole number with thousands separators."""
    return f"{x:.1f}" if abs(x) < 10 else f"{x:,.0f}"


def runnable(command: str) -> str:
    """A recorded command as it runs today: results recorded when the scripts ran by path
    (``python benchmarks/NAME.py ARGS``) name the module that now holds the script
    (``python -m benchmarks.NAME ARGS``, or ``studies.NAME``)."""
    m = SCRIPT_PATH.match(command)
    if m:
        for package in ("benchmarks", "studies"):
            if (REPO / package / f"{m['name']}.py").is_file():
                return f"python -m {package}.{m['name']}" + command[m.end() :]
    return command


def table(header: list[str], align: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- one value -------------------------------------------------------------------------------------
@renderer("json")
def render_json(results: Path, file: str, path: str, spec: str = "") -> str:
    """One value of a result file, formatted by ``spec`` (Python format spec; ``gib``: MiB
    shown as GiB with one decimal)."""
    value = lookup(load(results, file), path, str(results / file))
    if spec == "gib":
        return f"{value / 1024:.1f}"
    return format(value, spec)
