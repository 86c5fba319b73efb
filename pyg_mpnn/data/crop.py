"""Spatial crops: train on arbitrarily large complexes with bounded memory.

:class:`SpatialCrop` is a PyG transform. It picks a centre residue (uniformly among the valid
designed residues: ``mask & design_mask``), keeps every valid residue whose CA lies within
``context_radius`` (default 50 A) of the centre's CA, and marks for supervision only the kept
residues within ``inner_radius`` (default 20 A) that are valid and designed.

Supervision goes into a separate boolean field ``loss_mask`` -- ``design_mask`` is left as it
was. ``design_mask`` also decides the decoding order (visible residues are decoded first, so
their true sequence is context for every designed residue). Restricting it to the inner sphere
would reveal the native sequence of the whole 20-50 A shell to the residues near the inner
boundary, a context that whole-graph training never gives. With ``loss_mask`` the decoding order
stays random over every kept designed residue, exactly as on the whole graph; only the loss
(and the reported metrics) are restricted: see :func:`pyg_mpnn.train.loss.supervised_mask`.

Why the two radii: a residue near the edge of the crop misses neighbours that lie outside it
(and the k-NN graph of such residues is rebuilt from what is left), and with ``L`` layers of
message passing a prediction depends on residues up to ``L`` neighbour hops away. With the
default 30 A margin between the spheres, a supervised residue keeps everything within 30 A of
itself: its own k = 48 neighbourhood (about 10-13 A) and its neighbours' neighbourhoods are
complete, so the first two hops are exactly those of the whole graph; deeper hops may be cut
at the outer sphere. That approximation, plus a decoding order drawn over the crop instead of
the whole complex, is what a crop trades for bounded memory.

Residues with ``mask == False`` (a backbone atom missing) have no coordinates, no edges and no
loss; they are dropped from the crop. Kept residues keep their ``residue_idx`` and ``chain``,
so the positional features (differences of ``residue_idx`` within a chain) are unchanged.
The output also has ``crop_center`` (``[1]``: the centre's index in the crop; -1 when there
was no valid designed residue and the graph is returned whole) and ``crop_source`` (the kept
residues' indices in the input; not named ``*_index``, which PyG would offset when batching).

``min_residues`` crops only what is large: a protein with at most that many valid residues
passes whole with every valid designed residue supervised (``crop_center = -1``), so small
examples teach as much as in whole-graph training and only complexes that would not fit are
bounded (the `spatial_crop` experiment's third point; docs/findings.md).

Randomness: with ``seed=None`` the centre is drawn from torch's global RNG (in a training run
that stream is seeded, checkpointed and restored on resume; in a ``DataLoader`` worker it is
seeded per worker by torch); with an integer ``seed`` a private generator is used (each call
advances it).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from pyg_mpnn.errors import BadValue

GRAPH_KEYS = ("name", "chain_ids")  # per-protein fields copied as they are


def crop_indices(pos: Tensor, valid: Tensor, center: int, radius: float) -> Tensor:
    """Indices of the ``valid`` residues whose ``pos`` lies within ``radius`` of ``pos[center]``
    (inclusive), ascending."""
    d2 = ((pos.double() - pos[center].double()) ** 2).sum(-1)
    return ((d2 <= float(radius) ** 2) & valid).nonzero().view(-1)


class SpatialCrop(BaseTransform):
    """Crop a protein graph to a sphere around a random designed residue (see module docstring).

    Args:
        context_radius: residues with CA within this distance (A) of the centre are kept.
        inner_radius: of those, residues within this distance get ``loss_mask = True``.
        seed: ``None`` (torch's global RNG) or an int seeding a private generator.
        min_residues: proteins with at most this many valid residues are not cropped
            (default 0: crop every protein).
    """

    def __init__(
        self,
        context_radius: float = 50.0,
        inner_radius: float = 20.0,
        seed: int | None = None,
        min_residues: int = 0,
    ):
        if not 0 < inner_radius <= context_radius:
            raise BadValue(
                f"need 0 < inner_radius <= context_radius, got {inner_radius} and {context_radius}"
            )
        self.context_radius, self.inner_radius = float(context_radius), float(inner_radius)
        self.seed, self.min_residues = seed, int(min_residues)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def pick_center(self, data: Data) -> int | None:
        candidates = (data.mask & data.design_mask).nonzero().view(-1)
        if len(candidates) == 0:
            return None
        i = torch.randint(len(candidates), (1,), generator=self.generator)
        return int(candidates[i])

    def crop(self, data: Data, center: int) -> Data:
        """The crop around residue ``center`` (an index into ``data``)."""
        pos = data.pos if getattr(data, "pos", None) is not None else data.coords[:, 1]
        keep = crop_indices(pos, data.mask, center, self.context_radius)
        n = data.num_nodes
        out = Data()
        for key, value in data.items():
            if key == "edge_index":
                continue  # edges are rebuilt on the crop (the model builds them in forward)
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
                out[key] = value[keep]
            elif key in GRAPH_KEYS or not isinstance(value, Tensor):
                out[key] = value
        out.num_nodes = len(keep)
        sub_pos = pos[keep]
        d2 = ((sub_pos.double() - pos[center].double()) ** 2).sum(-1)
        inner = d2 <= self.inner_radius**2
        out.loss_mask = inner & out.mask & out.design_mask
        out.crop_source = keep
        out.crop_center = torch.tensor([int((keep == center).nonzero().view(-1)[0])])
        return out

    def forward(self, data: Data) -> Data:
        if int(data.mask.sum()) <= self.min_residues:  # small: whole graph, all supervised
            return self._whole(data, data.mask & data.design_mask)
        center = self.pick_center(data)
        if center is None:  # nothing to supervise: keep the graph, supervise nothing
            return self._whole(data, torch.zeros(data.num_nodes, dtype=torch.bool))
        return self.crop(data, center)

    @staticmethod
    def _whole(data: Data, loss_mask: Tensor) -> Data:
        data.loss_mask = loss_mask
        data.crop_source = torch.arange(data.num_nodes)
        data.crop_center = torch.tensor([-1])
        if "edge_index" in data:
            del data.edge_index  # as for a crop: edges are rebuilt by the model
        return data

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(context_radius={self.context_radius}, "
            f"inner_radius={self.inner_radius}, seed={self.seed}, "
            f"min_residues={self.min_residues})"
        )


def make_transform(spec: dict | str | None):
    """The transform named by a config's ``data.transform``: ``None``, ``"spatial_crop"`` or
    ``{"name": "spatial_crop", "context_radius": ..., "inner_radius": ..., "seed": ...,
    "min_residues": ...}``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name", None)
    if name == "spatial_crop":
        return SpatialCrop(**spec)
    raise BadValue(f"unknown data.transform {name!r} (known: spatial_crop)")
