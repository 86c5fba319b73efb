"""pyg_mpnn: ProteinMPNN on PyTorch Geometric."""

__version__ = "0.1.0"
