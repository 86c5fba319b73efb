"""pyg_mpnn: ProteinMPNN on PyTorch Geometric."""

import os

# bf16 on a CPU runs through oneDNN, which compiles a kernel ("primitive") per tensor shape and
# keeps 1,024 of them. Padding-free batches change the node and edge counts at every step, so
# the default cache thrashes: a scale_sweep size trained at 5,587 residues/s by step 300 with it
# and 7,744 with 8,192 (benchmarks/results/onednn_cache.json), at +0.6 GB. Set before torch
# builds its first primitive; a value the user exported wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")

__version__ = "0.1.0"
