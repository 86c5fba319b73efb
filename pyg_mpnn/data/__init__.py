"""Datasets of prepared protein graphs: shard folders, the token-budget sampler and loader,
graph transforms, crops, and the embedded default dataset."""

from pyg_mpnn.data.crop import SpatialCrop
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.default import DEFAULT_JSONL, default_dataset
from pyg_mpnn.data.graph import KNNEdges, RadiusEdges, knn_edges, radius_edges
from pyg_mpnn.data.loader import ProteinLoader, make_loader
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

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
