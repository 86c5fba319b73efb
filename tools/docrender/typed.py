"""Typed numbers: a measured number in a results table or in README.md's headline list comes
from a result file (a rendered part, ``<!-- render:... -->``), or is marked as a quotation
with its source::

    <!-- quote: the ProteinMPNN paper, Table 1 -->
    | model | recovery |
    | --- | ---: |
    | ProteinMPNN | 52.4 % |
    <!-- /quote -->

The source says where the number comes from and, for a measurement no result file holds,
why (``not re-made on this machine: ...``). Static text is exempt: a table's header row, its
first column (the row's label: a size, a setting), code spans and fenced blocks, link targets.
In a table a *measured* number is a decimal (``12.65``), a grouped integer (``22,491``) or a
number with ``%``, ``×`` or ``x``; in a headline every number counts.
"""

from __future__ import annotations

import re

QUOTE = re.compile(r"<!-- quote:(?P<source>[^>]*?)-->(?P<body>.*?)<!-- /quote -->", re.S)
QUOTE_OPEN = re.compile(r"<!-- quote:")
RENDERED = re.compile(r"<!-- render:[^\s>]+ -->.*?<!-- /render -->", re.S)
FENCED = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
EXEMPT_INLINE = re.compile(r"`[^`\n]*`|\]\([^)\s]*\)|<!--.*?-->|<[^>\n]*>", re.S)
# a number standing alone: not part of a name (TS50, fp32, db5.5, 1e-3) or of a version (0.1.3)
_ALONE_BEFORE = r"(?<![\w.,/^-])"
_ALONE_AFTER = r"(?![\w]|[.,]\d)"
NUMBER = re.compile(_ALONE_BEFORE + r"\d+(?:[.,]\d+)*" + _ALONE_AFTER)
MEASURED = re.compile(
    _ALONE_BEFORE
    + r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?(?:%|×|x\b)))"
    + _ALONE_AFTER
)
SEPARATOR = re.compile(r"^\s*\|(?:\s*:?-+:?\s*\|)+\s*$")
HEADLINES = re.compile(r"^## Headline results\s*$(?P<body>.*?)(?=^#{1,2} |\Z)", re.S | re.M)


class QuoteError(ValueError):
    """A quotation marker without its end or without a source."""


def _blank(m: re.Match) -> str:
    """The match's text as spaces, its line breaks kept (line numbers stay right)."""
    return re.sub(r"[^\n]", " ", m[0])


def strip_exempt(text: str, where: str = "doc") -> str:
    """``text`` with everything that may hold a typed number blanked: rendered parts,
    quotations, fenced blocks, code spans, link targets and comments."""
    if len(QUOTE_OPEN.findall(text)) != len(QUOTE.findall(text)):
        raise QuoteError(f"{where}: a '<!-- quote:SOURCE -->' marker has no '<!-- /quote -->'")
    for m in QUOTE.finditer(text):
        if not m["source"].strip():
            line = text.count("\n", 0, m.start()) + 1
            raise QuoteError(f"{where}:{line}: a quotation names no source")
    for pattern in (RENDERED, QUOTE, FENCED, EXEMPT_INLINE):
        text = pattern.sub(_blank, text)
    return text


def _table_hits(lines: list[str]) -> list[tuple[int, str]]:
    hits = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|") or SEPARATOR.match(line):
            continue
        if i + 1 < len(lines) and SEPARATOR.match(lines[i + 1]):
            continue  # the header row
        cells = line.strip().strip("|").split("|")[1:]  # the first column labels the row
        hits += [(i + 1, m[0]) for cell in cells for m in MEASURED.finditer(cell)]
    return hits


def typed_numbers(text: str, where: str = "doc", headlines: bool = False) -> list[str]:
    """Each typed number of ``text`` as ``WHERE:LINE: NUMBER``: a measured number in a table
    row, or (``headlines``) any number in the "Headline results" section."""
    lines = strip_exempt(text, where).split("\n")
    hits = _table_hits(lines)
    if headlines:
        for m in HEADLINES.finditer("\n".join(lines)):
            first = "\n".join(lines).count("\n", 0, m.start("body"))
            for j, line in enumerate(m["body"].split("\n")):
                hits += [(first + j + 1, n[0]) for n in NUMBER.finditer(line)]
    return [f"{where}:{line}: {number}" for line, number in sorted(set(hits))]
