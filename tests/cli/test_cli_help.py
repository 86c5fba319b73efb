"""Every command's ``--help`` teaches: a one-paragraph description without markup, every
option's default, and two or three examples that parse as written and name files that the
repository has; and it loads no torch, so it answers at once."""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import subprocess
import sys

import pytest
from _clitools import REPO

from pyg_mpnn.cli import HelpFormatter

COMMANDS = {  # command -> (module run by python -m, module and name of its parser)
    "train": ("pyg_mpnn.train", "pyg_mpnn.train.__main__", "_parser"),
    "evaluate": ("pyg_mpnn.evaluate", "pyg_mpnn.evaluate", "parser"),
    "design": ("pyg_mpnn.design", "pyg_mpnn.design.options", "parser"),
    "diagnose": ("pyg_mpnn.diagnose", "pyg_mpnn.diagnose.__main__", "_parser"),
    "prepare": ("pyg_mpnn.data.prepare", "pyg_mpnn.data.prepare", "parser"),
    "export": ("pyg_mpnn.export", "pyg_mpnn.export", "parser"),
}
MARKUP = ("``", "**", ":mod:", ":class:", ":func:", ":meth:")


def _parser(command: str) -> argparse.ArgumentParser:
    _, module, name = COMMANDS[command]
    return getattr(importlib.import_module(module), name)()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_has_a_paragraph_every_default_and_examples(command):
    p = _parser(command)
    text = p.format_help()
    assert "\n\n" not in p.description.strip() and len(p.description) > 150
    assert not [m for m in MARKUP if m in text], text
    formatter = HelpFormatter(p.prog)
    no_default = [
        a.option_strings[0]
        for a in p._actions
        if a.option_strings
        and not isinstance(a, argparse._HelpAction)
        and "default" not in formatter._get_help_string(a).lower()
    ]
    assert not no_default, no_default
    examples = [line.strip() for line in p.epilog.splitlines() if line.startswith("  python")]
    assert 2 <= len(examples) <= 3, p.epilog
    for example in examples:
        for part in example.split("&&"):
            argv = shlex.split(part)
            assert argv[:2] == ["python", "-m"], part
            module = argv[2]
            cmd = next(c for c, (m, _, _) in COMMANDS.items() if m == module)
            _parser(cmd).parse_args(argv[3:])  # exits (failing the test) on a usage error
            for arg in argv[3:]:
                if arg.startswith(("tests/", "data/")):
                    assert (REPO / arg).exists(), f"{example}: {arg} is not in the repository"


def test_help_loads_no_torch():
    code = (
        "import json, runpy, sys\n"
        f"for module in {[m for m, _, _ in COMMANDS.values()]!r}:\n"
        "    sys.argv = [module, '--help']\n"
        "    try:\n"
        "        runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (module, e.code)\n"
        "heavy = ('torch', 'torch_geometric', 'aim', 'matplotlib')\n"
        "sys.stderr.write(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stderr.strip().splitlines()[-1]) == []
    assert p.stdout.count("examples (from the repository's root):") == len(COMMANDS)
