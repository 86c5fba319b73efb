"""How a :class:`~pyg_mpnn.nn.model.ProteinMPNN` computes: its modes, in one dataclass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modes:
    """How a :class:`ProteinMPNN` computes, never what: every mode gives the same outputs
    (within 1e-4 for ``split``) and the same parameters. Set them with
    ``ProteinMPNN(..., modes=Modes(...))`` and change them with
    :meth:`ProteinMPNN.set_modes`, the one place that writes them.

    Args:
        split (bool, optional): the encoder and decoder layers' path (``True``: first message
            weight split into blocks, last one after the neighbour sum, several times fewer
            operations; ``False``: the original's operation order; ``None``: split while
            training only). (default: :obj:`None`)
        activation_checkpointing (bool): run every encoder and decoder layer under
            :func:`torch.utils.checkpoint.checkpoint` while training, keeping only layer inputs
            and recomputing the per-edge activations during backward. (default: :obj:`False`)
        recompute_activations (bool): while training, keep for backward only what cannot be
            recomputed cheaply -- GELU and LayerNorm outputs, dropout's noise (from a bit mask),
            the RBF edge input and the first edge state are recomputed from tensors that are
            kept anyway (:mod:`pyg_mpnn.nn.recompute`). Bit-identical values and gradients,
            about half the activation memory of a plain fp32 step. Off for a model that runs
            under ``torch.compile`` (``train.compile``: inductor's partitioner chooses what to
            recompute itself). (default: :obj:`True`)
        shape_buckets (int): :meth:`ProteinMPNN.forward` pads the batch to one of about this
            many node and edge counts per power of two (:mod:`pyg_mpnn.nn.buckets`), so that
            tensor sizes repeat from step to step; the real residues' outputs are unchanged.
            ``0``: off. (default: :obj:`0`)
        aggregation (str): how the training path sums messages over the edges sorted by target
            (:mod:`pyg_mpnn.nn.aggregate`): ``"dense"`` (the original's order) or ``"csr"``
            (segment reductions; torch-scatter's when installed). (default: :obj:`"dense"`)
    """

    split: bool | None = None
    activation_checkpointing: bool = False
    recompute_activations: bool = True
    shape_buckets: int = 0
    aggregation: str = "dense"

    def __post_init__(self):
        if self.aggregation not in ("dense", "csr"):
            raise ValueError(f"aggregation must be dense or csr, got {self.aggregation!r}")
        if self.shape_buckets < 0:
            raise ValueError(f"shape_buckets must be >= 0, got {self.shape_buckets}")
