"""Datasets of prepared protein graphs: shard folders, the token-budget sampler and loader,
graph transforms, crops, and the embedded default dataset."""

import importlib

from pyg_mpnn.data.crop import SpatialCrop
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.graph import KNNEdges, RadiusEdges, knn_edges, radius_edges
from pyg_mpnn.data.loader import ProteinLoader, make_loader
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

# ``prepare`` (and ``default``, which uses it) are also a CLI, ``python -m
# pyg_mpnn.data.prepare``: imported here eagerly, runpy would find the module imported before it
# runs it as __main__ (a RuntimeWarning on every call). They load on first use instead.
_ON_FIRST_USE = {
    "prepare": "pyg_mpnn.data.prepare",
    "DEFAULT_JSONL": "pyg_mpnn.data.default",
    "default_dataset": "pyg_mpnn.data.default",
}


def __getattr__(name: str):
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'pyg_mpnn.data' has no attribute {name!r}")


__all__ = [
    "DEFAULT_JSONL",
    "KNNEdges",
    "ProteinDataset",
    "ProteinLoader",
    "RadiusEdges",
    "SpatialCrop",
    "TokenBudgetBatchSampler",
    "default_dataset",
    "knn_edges",
    "make_loader",
    "prepare",
    "radius_edges",
]
