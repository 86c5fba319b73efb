"""PyG transforms that add neighbour graphs on CA coordinates to a ``Data``.

The graph builders themselves, :func:`knn_edges` and :func:`radius_edges`, live in
:mod:`pyg_mpnn.nn.graph` (the model builds its kNN graph with them) and are re-exported here.
Edges follow PyG's ``source_to_target`` convention (``edge_index[1]`` is the centre).
"""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from pyg_mpnn.nn.graph import knn_edges, radius_edges

__all__ = ["KNNEdges", "RadiusEdges", "knn_edges", "radius_edges"]


class KNNEdges(BaseTransform):
    """PyG transform: ``data.edge_index`` from :func:`knn_edges` on ``data.pos``."""

    def __init__(self, k: int = 48):
        self.k = k

    def forward(self, data: Data) -> Data:
        data.edge_index = knn_edges(
            data.pos, self.k, getattr(data, "batch", None), getattr(data, "mask", None)
        )
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k})"


class RadiusEdges(BaseTransform):
    """PyG transform: ``data.edge_index`` from :func:`radius_edges` on ``data.pos``."""

    def __init__(self, r: float = 10.0, max_num_neighbors: int = 64):
        self.r = r
        self.max_num_neighbors = max_num_neighbors

    def forward(self, data: Data) -> Data:
        data.edge_index = radius_edges(
            data.pos,
            self.r,
            getattr(data, "batch", None),
            getattr(data, "mask", None),
            self.max_num_neighbors,
        )
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(r={self.r})"
