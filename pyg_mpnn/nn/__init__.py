"""ProteinMPNN's layers and model on PyTorch Geometric.

The layers are PyG ``MessagePassing`` modules that work in any graph model
(``EncoderLayer(hidden_channels)(x, edge_index, edge_attr) -> (x, edge_attr)``); the model
names its trackable blocks with :meth:`ProteinMPNN.blocks`.
"""

from pyg_mpnn.nn.ca_features import CAEdgeFeatures
from pyg_mpnn.nn.decoding import DecodeControl
from pyg_mpnn.nn.features import EdgeFeatures, PositionalEncodings, rbf, virtual_cb
from pyg_mpnn.nn.graph import knn_edges, radius_edges
from pyg_mpnn.nn.layers import DecoderLayer, EncoderLayer, PositionWiseFeedForward
from pyg_mpnn.nn.model import Block, ProteinMPNN, decoding_rank
from pyg_mpnn.nn.modes import Modes
from pyg_mpnn.nn.probe import probe_mode
from pyg_mpnn.nn.weights import export_original, load_model

__all__ = [
    "Block",
    "CAEdgeFeatures",
    "DecodeControl",
    "DecoderLayer",
    "EdgeFeatures",
    "EncoderLayer",
    "Modes",
    "PositionWiseFeedForward",
    "PositionalEncodings",
    "ProteinMPNN",
    "decoding_rank",
    "export_original",
    "knn_edges",
    "load_model",
    "probe_mode",
    "radius_edges",
    "rbf",
    "virtual_cb",
]
