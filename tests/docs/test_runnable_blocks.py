"""The ``bash`` blocks of the docs marked ``<!-- runnable -->`` (the line before the fence) run
as written, from the repository's root, and exit 0: a renamed flag, file or weights name in
a command a reader copies fails here. ``.venv/bin/python`` is this interpreter."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- runnable -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```bash\n(?P<body>.*?)\n```", re.DOTALL)


def runnable_blocks(text: str) -> list[str]:
    """The commands of the marked blocks, one a line, without comments."""
    commands = []
    for m in BLOCK.finditer(text):
        for line in m["body"].splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def marked() -> list[tuple[str, str]]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [
        (str(doc.relative_to(REPO)), command)
        for doc in docs
        for command in runnable_blocks(doc.read_text())
    ]


def test_marker_finds_only_marked_blocks():
    text = f"{MARKER}\n```bash\n# a comment\necho a  # why\n```\n\n```bash\necho b\n```\n"
    assert runnable_blocks(text) == ["echo a"]


def test_readme_quick_start_is_marked():
    assert any(doc == "README.md" and "pyg_mpnn.design" in cmd for doc, cmd in marked())


@pytest.mark.parametrize("doc,command", marked())
def test_block_runs_as_written(doc, command):
    argv = shlex.split(command)
    if argv[0] in (".venv/bin/python", "python"):
        argv[0] = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{doc}: {command}\n{done.stderr[-2000:]}"
    assert done.stdout.strip(), f"{doc}: {command} printed nothing"
