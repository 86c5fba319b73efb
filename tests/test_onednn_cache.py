"""pyg_mpnn keeps more oneDNN kernels than oneDNN's default (see pyg_mpnn/__init__.py), unless the
user chose a capacity."""

import os
import subprocess
import sys

SHOW = "import pyg_mpnn, os; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"


def _capacity(env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_default_capacity_is_raised():
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    assert int(_capacity(env)) > 1024


def test_an_exported_capacity_wins():
    assert _capacity({**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "300"}) == "300"
