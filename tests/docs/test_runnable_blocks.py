"""The ``bash`` blocks of the docs marked ``<!-- runnable -->`` (the line before the fence) run
as written and exit 0: a renamed flag, file or weights name in a command a reader copies fails
here. A block's commands run in order, in a folder that links every top-level entry of the
repository (so ``tests/fixtures``, ``data/`` and ``experiments/`` resolve as from the root)
and holds the ``runs/`` they write (a pytest temporary folder). ``.venv/bin/python`` is this
interpreter and ``.venv/bin/torchrun`` is ``python -m torch.distributed.run``."""

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
# how-to guides without a runnable block (each block costs seconds of CI, which runs the suite
# twice), and the test that runs the same thing
NOT_RUN = {
    "docs/howto/reuse-layers.md": "tests/examples/test_secondary_structure.py",
    "docs/howto/torchrun.md": "tests/train/test_distributed.py",
}
LAUNCHERS = {
    ".venv/bin/python": [sys.executable],
    "python": [sys.executable],
    ".venv/bin/torchrun": [sys.executable, "-m", "torch.distributed.run"],
}


def runnable_blocks(text: str) -> list[list[str]]:
    """The commands of each marked block, one a line (``\\`` continues one), without comments."""
    blocks = []
    for m in BLOCK.finditer(text):
        body = re.sub(r"\s*\\\n\s*", " ", m["body"])
        commands = [line.split(" # ")[0].strip() for line in body.splitlines()]
        blocks.append([c for c in commands if c and not c.startswith("#")])
    return blocks


def marked() -> list[tuple[str, list[str]]]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [
        (str(doc.relative_to(REPO)), block)
        for doc in docs
        for block in runnable_blocks(doc.read_text())
    ]


def workdir(tmp_path: Path) -> Path:
    """A folder where the repository's relative paths resolve; outputs stay in it."""
    for entry in REPO.iterdir():
        if entry.name not in ("runs", ".venv", ".git"):
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def test_marker_finds_only_marked_blocks():
    text = (
        f"{MARKER}\n```bash\n# a comment\necho a  # why\necho b \\\n  c\n```\n\n"
        "```bash\necho d\n```\n"
    )
    assert runnable_blocks(text) == [["echo a", "echo b c"]]


def test_readme_quick_start_is_marked():
    assert any(
        doc == "README.md" and "pyg_mpnn.design" in cmd for doc, block in marked() for cmd in block
    )


def test_every_howto_guide_has_a_runnable_block():
    guides = {doc for doc, _ in marked() if doc.startswith("docs/howto/")}
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "docs" / "howto").glob("*.md")}
    assert on_disk - guides == set(NOT_RUN), "guides without a runnable block"
    assert all((REPO / test).exists() for test in NOT_RUN.values())


@pytest.mark.parametrize(
    "doc,block", marked(), ids=[f"{doc}:{block[0][:60]}" for doc, block in marked()]
)
def test_block_runs_as_written(doc, block, tmp_path):
    cwd = workdir(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    printed = ""
    for command in block:
        argv = shlex.split(command)
        argv = LAUNCHERS.get(argv[0], argv[:1]) + argv[1:]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{doc}: {command}\n{done.stderr[-2000:]}"
        printed += done.stdout + done.stderr  # train reports on stderr
    assert printed.strip(), f"{doc}: the block printed nothing"
