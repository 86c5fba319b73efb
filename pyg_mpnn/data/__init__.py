"""Datasets of prepared protein graphs: shard folders, the token-budget sampler and loader,
graph transforms, crops, and the embedded default dataset."""

import importlib

# Every name loads on first use: ``python -m pyg_mpnn.data.prepare`` imports this package
# before it runs, and its ``--help`` must not wait for torch; and ``prepare`` (and
# ``default``, which uses it) imported here eagerly would be found imported before runpy
# runs it as __main__ (a RuntimeWarning on every call).
_ON_FIRST_USE = {
    "SpatialCrop": "pyg_mpnn.data.crop",
    "ProteinDataset": "pyg_mpnn.data.dataset",
    "KNNEdges": "pyg_mpnn.data.graph",
    "RadiusEdges": "pyg_mpnn.data.graph",
    "knn_edges": "pyg_mpnn.data.graph",
    "radius_edges": "pyg_mpnn.data.graph",
    "ProteinLoader": "pyg_mpnn.data.loader",
    "make_loader": "pyg_mpnn.data.loader",
    "TokenBudgetBatchSampler": "pyg_mpnn.data.sampler",
    "prepare": "pyg_mpnn.data.prepare",
    "DEFAULT_JSONL": "pyg_mpnn.data.default",
    "default_dataset": "pyg_mpnn.data.default",
}


def __getattr__(name: str):
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'pyg_mpnn.data' has no attribute {name!r}")


__all__ = sorted(_ON_FIRST_USE)
