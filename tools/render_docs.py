"""Render the docs' measured tables and figures from ``benchmarks/results/*.json``, or check
that the docs agree with them.

    python -m tools.render_docs            # rewrite every rendered part of the docs
    python -m tools.render_docs --check    # exit 1, with a diff, where a doc disagrees

A rendered part sits between two markers, on their own lines for a block (a table) or inside
a sentence for one value::

    <!-- render:train_step_table:train_step_cpu.json -->
    | implementation | ... |
    <!-- /render -->

    ours is <!-- render:json:train_step_cpu.json:ours_over_original:.2f -->2.24<!-- /render -->×

The name is ``KIND[:ARGS]``; ARGS are a result file (relative to ``benchmarks/results``) and,
for ``json``, a dotted key path (list items by index) and a Python format spec. Everything
outside the markers is left alone. Rendering is deterministic: ``--check`` renders every part
again and compares. ``tests/docs/test_render_docs.py`` runs it in CI, so a number that drifts
from its source fails the tests.

A measured number typed into a table, or into README.md's "Headline results", fails both
modes: render it, or mark it as a quotation with its source (``<!-- quote: SOURCE -->`` ...
``<!-- /quote -->``; :mod:`tools.docrender.typed`).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

# the topic modules register their renderers in RENDERERS when imported
from tools.docrender import (  # noqa: F401
    ablations,
    data,
    finetune,
    jacobian,
    memory,
    monitoring,
    parity,
    speed,
    sweep,
)
from tools.docrender.core import RENDERERS, REPO, RenderError, load
from tools.docrender.typed import QuoteError, typed_numbers

RESULTS = REPO / "benchmarks" / "results"
DOCS = [REPO / "README.md"] + [
    REPO / "docs" / name
    for name in (
        "findings.md",
        "performance.md",
        "monitoring.md",
        "reliability.md",
        "training.md",
        "finetuning.md",
        "data_at_scale.md",
        "data.md",
        "model.md",
        "design.md",
        "profiling.md",
    )
]
MARKER = re.compile(r"<!-- render:(?P<name>[^\s>]+) -->(?P<body>.*?)<!-- /render -->", re.S)
OPEN = re.compile(r"<!-- render:")


# -- the documents -----------------------------------------------------------------------------------
def render_one(name: str, results: Path, where: str) -> str:
    kind, *args = name.split(":")
    if kind not in RENDERERS:
        raise RenderError(f"{where}: unknown render kind {kind!r} (known: {sorted(RENDERERS)})")
    try:
        return RENDERERS[kind](results, *args)
    except TypeError as e:
        raise RenderError(f"{where}: render:{name}: wrong arguments ({e})") from None
    except (KeyError, IndexError) as e:
        raise RenderError(f"{where}: render:{name}: missing field {e}") from None


def render_text(text: str, results: Path = RESULTS, where: str = "doc") -> tuple[str, list[str]]:
    """The text with every rendered part rendered again, and the names of the parts."""
    if len(OPEN.findall(text)) != len(MARKER.findall(text)):
        raise RenderError(f"{where}: a '<!-- render:NAME -->' marker has no '<!-- /render -->'")
    names = []

    def sub(m: re.Match) -> str:
        names.append(m["name"])
        line = where + ":" + str(text.count("\n", 0, m.start()) + 1)
        out = render_one(m["name"], results, line)
        if "\n" in out or m["body"].startswith("\n"):
            out = f"\n{out}\n"
        return f"<!-- render:{m['name']} -->{out}<!-- /render -->"

    return MARKER.sub(sub, text), names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 on a mismatch")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the result JSONs")
    ap.add_argument("docs", nargs="*", type=Path, default=DOCS, help="Markdown files")
    a = ap.parse_args(argv)
    load.cache_clear()
    stale = typed = 0
    for doc in a.docs:
        text = doc.read_text()
        try:
            new, names = render_text(text, a.results, str(doc))
            hits = typed_numbers(new, str(doc), headlines=doc.name == "README.md")
        except (RenderError, QuoteError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        typed += len(hits)
        for hit in hits:
            print(f"{hit}: typed, not rendered (render it, or mark it <!-- quote: SOURCE -->)")
        if new == text:
            print(f"{doc}: {len(names)} rendered parts agree with {a.results}")
            continue
        stale += 1
        if a.check:
            diff = difflib.unified_diff(
                text.splitlines(),
                new.splitlines(),
                f"{doc} (as written)",
                f"{doc} (from its sources)",
                lineterm="",
            )
            print("\n".join(diff))
        else:
            doc.write_text(new)
            print(f"{doc}: rendered {len(names)} parts")
    if a.check and stale:
        print(
            f"{stale} doc(s) disagree with their sources: run `python -m tools.render_docs`",
            file=sys.stderr,
        )
    if typed:
        print(f"{typed} typed number(s) in results tables or headlines", file=sys.stderr)
    return 1 if typed or (a.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
