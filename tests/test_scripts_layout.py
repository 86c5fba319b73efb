"""The benchmarks, studies and tools are packages run as modules, kept small and listed:

* nothing edits ``sys.path`` (``python -m benchmarks.NAME`` from the repository root imports
  them as they are);
* ``pyg_mpnn`` imports none of them, ``benchmarks`` neither the studies nor the tools, the
  studies not the tools, and the tools neither (they read result files);
* no file is over 500 lines and no function over 60, in them and in ``pyg_mpnn``;
* ``benchmarks/README.md`` and ``studies/README.md`` list every script of their folder.
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmarks", "studies", "tools")
# package -> the packages of this repository it must not import
FORBIDDEN = {
    "pyg_mpnn": PACKAGES,
    "benchmarks": ("studies", "tools"),
    "studies": ("tools",),
    "tools": ("benchmarks", "studies"),
}
HELPERS = {"__init__", "common", "gpu_suite_parts", "_reference_run"}  # not scripts of their own


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_path_edits_and_imports_point_one_way(package):
    files = sources(package)
    assert len(files) > 2, f"no modules found under {REPO / package}"
    bad = [
        f"{p.relative_to(REPO)} edits sys.path" for p in files if "sys.path.insert" in p.read_text()
    ]
    bad += [
        f"{p.relative_to(REPO)}:{line} imports {top}"
        for p in files
        for line, top in imports(p)
        if top in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", ["pyg_mpnn", *PACKAGES])
def test_files_and_functions_stay_short(package):
    long = []
    for p in sources(package):
        text = p.read_text()
        if text.count("\n") > 500:
            long.append(f"{p.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text, str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("package", ["benchmarks", "studies"])
def test_the_readme_lists_every_script(package):
    readme = (REPO / package / "README.md").read_text()
    listed = set(re.findall(rf"python -m {package}\.([a-z0-9_]+)\b", readme))
    scripts = {p.stem for p in (REPO / package).glob("*.py")} - HELPERS
    assert scripts <= listed, f"{package}/README.md does not list {sorted(scripts - listed)}"
    assert listed <= scripts, f"{package}/README.md lists missing {sorted(listed - scripts)}"
