"""A doc example that reads ``../shared`` tells the reader what that data is and how to get an
equivalent: its section names the shared corpus and the doc links to the table of equivalents
(docs/data.md, "The shared corpus"), which must list every folder the examples read."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
ANCHOR = "data.md#the-shared-corpus-shareddata"
FENCE = re.compile(r"^```")
SHARED = re.compile(r"\.\./shared/data/([\w.]+)")


def examples(text: str) -> list[tuple[int, str, str]]:
    """``(line, section text, code line)`` of every fenced line that reads ``../shared``."""
    out, in_block, section = [], False, []
    for i, line in enumerate(text.splitlines(), 1):
        if not in_block and line.startswith("#"):
            section = []
        section.append(line)
        if FENCE.match(line):
            in_block = not in_block
        elif in_block and "../shared/" in line:
            out.append((i, "\n".join(section), line))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_on_the_shared_corpus_say_so(doc):
    text = doc.read_text()
    found = examples(text)
    if not found:
        return
    bad = [f"{i}: {code.strip()[:80]}" for i, sec, code in found if "shared corpus" not in sec]
    assert not bad, f"{doc.name}: an example reads ../shared without saying it is the shared corpus"
    assert doc.name == "data.md" or ANCHOR.split("#")[1] in text, f"{doc.name}: no link to {ANCHOR}"


def test_the_corpus_table_lists_every_folder_the_examples_read():
    table = (REPO / "docs" / "data.md").read_text().split("## The shared corpus", 1)[1]
    listed = set(re.findall(r"^\| `([\w.]+)/?`", table, re.M))
    read = {
        m.group(1)
        for doc in DOCS
        for _, _, code in examples(doc.read_text())
        for m in SHARED.finditer(code)
    }
    assert read and read <= listed, f"not in docs/data.md's table: {sorted(read - listed)}"


def test_the_check_can_fail():
    text = "# A\n\n```bash\npython -m x --data ../shared/data/training\n```\n"
    assert examples(text) and "shared corpus" not in examples(text)[0][1]
