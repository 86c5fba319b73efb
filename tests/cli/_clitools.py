"""Helpers of the command-line tests: run a command's ``main`` in-process (through the shared
:func:`pyg_mpnn.cli.run_cli`, as ``python -m`` does), and snapshot a folder to check that a
refused command wrote nothing."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from testdata import FIXTURES

REPO = Path(__file__).resolve().parents[2]
ZNG = FIXTURES / "biotite__5zng.pdb"  # chains A (79 residues, numbered from 991) and C (62)
MRR = FIXTURES / "proteinmpnn__6MRR.pdb"

# command name -> (module, attribute) of its main(argv)
MAINS = {
    "train": ("pyg_mpnn.train.__main__", "main"),
    "evaluate": ("pyg_mpnn.evaluate", "main"),
    "design": ("pyg_mpnn.design.cli", "main"),
    "diagnose": ("pyg_mpnn.diagnose.__main__", "main"),
    "prepare": ("pyg_mpnn.data.prepare", "main"),
    "export": ("pyg_mpnn.export", "main"),
}


def run(capsys, command: str, *argv) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``python -m <command> ARGV``, run in-process; an
    argparse usage error (``SystemExit``) gives its status too."""
    module, name = MAINS[command]
    main = getattr(importlib.import_module(module), name)
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return status, out.out, out.err


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha1 of the content ("dir" for a folder)}`` of everything under
    ``folder``, hidden files included."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def assert_refused(status: int, err: str, culprit: str) -> None:
    """Exit status 2 and one ``error:`` line on stderr that names ``culprit``, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert culprit in errors[0], (culprit, err)
