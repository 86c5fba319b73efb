"""Datasets of prepared protein graphs: shard folders, the token-budget sampler and loader,
graph transforms, crops, and the embedded default dataset."""

from pyg_mpnn.cli import lazy_exports

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


__getattr__ = lazy_exports(__name__, _ON_FIRST_USE)

__all__ = sorted(_ON_FIRST_USE)
