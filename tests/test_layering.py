"""Dependencies point one way: parsed from the source with ``ast``, every import
of the package, at the top of a module or inside a function.

* ``pyg_mpnn.nn`` imports nothing from ``data``, ``train``, ``track``, ``diagnose``, ``design``;
* ``pyg_mpnn.io`` imports nothing from ``data``, ``nn``, ``train``, ``track``, ``diagnose``;
* ``pyg_mpnn.data`` imports nothing from ``train``, ``track``, ``diagnose``, ``design``;
* ``pyg_mpnn.train`` and ``pyg_mpnn.track`` import nothing from ``diagnose`` or ``sweep``
  (the sweep sits above the training engine: it runs trainers; only the train command,
  ``train/__main__.py``, hands a sweep config over to it);
* ``pyg_mpnn.sweep`` imports nothing from ``diagnose``, ``design``, ``track``;
* ``pyg_mpnn.errors`` (which every layer raises from), ``pyg_mpnn.utils`` and
  ``pyg_mpnn.seeding`` (which every layer may use) import nothing of the package, and
  ``pyg_mpnn.cli`` (every command's wrapper) only ``errors`` and ``atomic``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyg_mpnn"
FORBIDDEN = {
    "nn": ("data", "train", "track", "diagnose", "design", "sweep"),
    "io": ("data", "nn", "train", "track", "diagnose", "design", "sweep"),
    "data": ("train", "track", "diagnose", "design", "sweep"),
    "train": ("diagnose", "sweep"),
    "track": ("diagnose", "train", "sweep"),
    "sweep": ("diagnose", "design", "track"),
}
# the commands sit on top of every layer: ``python -m pyg_mpnn.train`` runs a sweep config
COMMANDS = {"pyg_mpnn/train/__main__.py": ("sweep",)}


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (a file under ``root``), relative imports
    resolved."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def imports_of(subpackage: str) -> dict[str, list[tuple[int, str]]]:
    return {
        str(p.relative_to(PACKAGE.parent)): imported_modules(p)
        for p in sorted((PACKAGE / subpackage).rglob("*.py"))
    }


@pytest.mark.parametrize("subpackage", sorted(FORBIDDEN))
def test_imports_point_one_way(subpackage):
    imports = imports_of(subpackage)
    assert len(imports) > 2, f"no modules found under {PACKAGE / subpackage}"
    bad = [
        f"{path}:{line} imports {module}"
        for path, found in imports.items()
        for line, module in found
        if any(
            module == f"pyg_mpnn.{other}" or module.startswith(f"pyg_mpnn.{other}.")
            for other in FORBIDDEN[subpackage]
            if other not in COMMANDS.get(Path(path).as_posix(), ())
        )
    ]
    assert not bad, "\n".join(bad)


def test_the_parser_sees_relative_and_function_level_imports(tmp_path):
    found = {m for _, m in imported_modules(PACKAGE / "nn" / "model.py")}
    assert "pyg_mpnn.nn.graph.knn_edges" in found and "torch.nn.functional" in found
    fake = tmp_path / "pyg_mpnn" / "nn" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..data import graph\n    import pyg_mpnn.train\n")
    assert [m for _, m in imported_modules(fake, tmp_path)] == [
        "pyg_mpnn.data.graph",
        "pyg_mpnn.train",
    ]


def test_package_imports_leave_the_commands_to_run_module():
    """``python -m pyg_mpnn.data.prepare`` runs without runpy's warning that the package's
    ``__init__`` had already imported it (a public API must not import its commands)."""
    p = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "pyg_mpnn.data.prepare", "--help"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=120,
    )
    assert p.returncode == 0 and not p.stderr, p.stderr


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("errors.py", set()),
        ("cli.py", {"pyg_mpnn.errors", "pyg_mpnn.atomic"}),
        ("utils.py", set()),
        ("seeding.py", set()),
    ],
)
def test_the_error_modules_sit_below_every_layer(module, allowed):
    found = {m.rsplit(".", 1)[0] for _, m in imported_modules(PACKAGE / module)}
    assert {m for m in found if m.startswith("pyg_mpnn")} <= allowed, found
