"""ProteinMPNN's CA-only edge featurizer (the original's ``CA_ProteinFeatures``), per edge.

A residue is its CA atom alone. Each residue carries three points: the CA of the residue
before it in the chain concatenation (``Ca_0``), its own (``Ca_1``) and the next one's
(``Ca_2``); where there is none (the first or last residue) the point is the origin, as in the
original's zero-filled tensors, and so is a residue without CA (its coordinates are 0). A local
frame per residue comes from the two CA-CA steps around it. Everything is ``O(|E|)``, as
:class:`~pyg_mpnn.nn.features.EdgeFeatures`. Parameter names equal the original's
(``embeddings.linear``, ``edge_embedding``, ``norm_edges``); its ``node_embedding``,
``norm_nodes`` and the model's ``W_v`` are never used by the original's forward and are not
held here (:mod:`pyg_mpnn.nn.weights` drops them on load and writes them back on export).

Neighbours in sequence are found in node order: node ``n - 1`` is the residue before node ``n``
when it is in the same graph and its position (``residue_idx - 100 * chain``) is one less. On a
whole protein that is always so; in a spatial crop a residue whose sequence neighbour was cut
away sees the origin in its place, as at a protein's end. As in the original, the chains are one
concatenation: a chain's first residue sees the previous chain's last CA as its ``Ca_0`` (the
CA-CA step between them is longer than 4 A, so it gives no frame direction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_mpnn.io.record import CHAIN_OFFSET
from pyg_mpnn.nn.features import PairEdgeFeatures, rbf
from pyg_mpnn.nn.recompute import layer_norm, recompute_later

PREV, SELF, NEXT = 0, 1, 2
# The 9 (centre point, neighbour point) pairs in the original's order: Ca_1-Ca_1, Ca_0-Ca_0,
# Ca_2-Ca_2, Ca_0-Ca_1, Ca_0-Ca_2, Ca_1-Ca_0, Ca_1-Ca_2, Ca_2-Ca_0, Ca_2-Ca_1.
CA_PAIRS = (
    (SELF, SELF),
    (PREV, PREV),
    (NEXT, NEXT),
    (PREV, SELF),
    (PREV, NEXT),
    (SELF, PREV),
    (SELF, NEXT),
    (NEXT, PREV),
    (NEXT, SELF),
)
ORIENTATION_FEATURES = 7  # direction to the neighbour in the local frame (3), quaternion (4)
STEP_MIN, STEP_MAX = 3.6, 4.0  # a CA-CA step outside this range is a chain break: no direction


def _follows(residue_idx: Tensor, chain: Tensor, batch: Tensor | None) -> Tensor:
    """``[N - 1]``: whether node ``n + 1`` is the residue right after node ``n``."""
    pos = residue_idx - CHAIN_OFFSET * chain
    ok = pos[1:] - pos[:-1] == 1
    return ok & (batch[1:] == batch[:-1]) if batch is not None else ok


def sequence_points(
    ca: Tensor, residue_idx: Tensor, chain: Tensor, batch: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(points [N, 3, 3], framed [N])``: ``Ca_0, Ca_1, Ca_2`` of each residue, and whether it
    has a frame (a residue before it and two after it, as the original, whose frames stop two
    residues before the end)."""
    n = ca.shape[0]
    follows = _follows(residue_idx, chain, batch)
    zero = ca.new_zeros(1, 3)
    no = follows.new_zeros(1)
    has_prev = torch.cat([no, follows])[:n]
    has_next = torch.cat([follows, no])[:n]
    prev = torch.where(has_prev.unsqueeze(-1), torch.cat([zero, ca[:-1]])[:n], 0.0)
    nxt = torch.where(has_next.unsqueeze(-1), torch.cat([ca[1:], zero])[:n], 0.0)
    has_next2 = has_next & torch.cat([follows[1:], no, no])[:n]
    return torch.stack([prev, ca, nxt], dim=1), has_prev & has_next2


def local_frames(points: Tensor, framed: Tensor) -> Tensor:
    """``[N, 3, 3]`` frames (rows: bisector, normal, their cross product) from the steps
    ``Ca_0 -> Ca_1`` and ``Ca_1 -> Ca_2``; zero where there is no frame."""
    u_2 = _step(points[:, SELF] - points[:, PREV])
    u_1 = _step(points[:, NEXT] - points[:, SELF])
    n_2 = F.normalize(torch.cross(u_2, u_1, dim=-1), dim=-1)
    o_1 = F.normalize(u_2 - u_1, dim=-1)
    frame = torch.stack([o_1, n_2, torch.cross(o_1, n_2, dim=-1)], dim=1)
    return frame * framed.view(-1, 1, 1).to(frame.dtype)


def _step(d: Tensor) -> Tensor:
    """Unit CA-CA step, zero for a break (length outside ``(3.6, 4.0)`` A)."""
    norm = torch.norm(d, dim=-1, keepdim=True)
    return F.normalize(d * ((norm > STEP_MIN) & (norm < STEP_MAX)).to(d.dtype), dim=-1)


def quaternions(R: Tensor) -> Tensor:
    """Unit quaternions ``[..., 4]`` (x, y, z, w) of rotation matrices ``[..., 3, 3]`` (the
    original's formula: non-negative trace enforced by a ReLU, zero matrices give ``w = 1``)."""
    diag = torch.diagonal(R, dim1=-2, dim2=-1)
    Rxx, Ryy, Rzz = diag.unbind(-1)
    magnitudes = 0.5 * torch.sqrt(
        torch.abs(1 + torch.stack([Rxx - Ryy - Rzz, -Rxx + Ryy - Rzz, -Rxx - Ryy + Rzz], -1))
    )
    signs = torch.sign(
        torch.stack(
            [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]],
            -1,
        )
    )
    w = torch.sqrt(F.relu(1 + diag.sum(-1, keepdim=True))) / 2.0
    return F.normalize(torch.cat((signs * magnitudes, w), -1), dim=-1)


def orientations(ca: Tensor, frame: Tensor, edge_index: Tensor) -> Tensor:
    """``[E, 7]``: the unit direction to the neighbour ``j`` in the centre's frame, and the
    quaternion of the relative rotation ``O_i^T O_j``. Products written out elementwise, so
    that autocast leaves them in float32 (a bf16 rotation would be a poor one)."""
    j, i = edge_index
    o_i, o_j = frame[i], frame[j]  # [E, 3, 3]
    du = F.normalize((o_i * (ca[j] - ca[i]).unsqueeze(1)).sum(-1), dim=-1)
    q = quaternions((o_i.unsqueeze(-1) * o_j.unsqueeze(-2)).sum(1))  # O_i^T O_j
    return torch.cat([du, q], dim=-1)


def _edge_input(e_pos: Tensor, d: Tensor, orient: Tensor, num_rbf: int) -> Tensor:
    """``[PE || RBF(d) || orientation]``, the edge embedding's input (recomputed in backward)."""
    return torch.cat([e_pos, rbf(d, num=num_rbf).flatten(1), orient], dim=-1)


class CAEdgeFeatures(PairEdgeFeatures):
    r"""Edge embeddings of the CA-only ProteinMPNN for the edges ``j -> i`` of ``edge_index``.

    .. math::
        \mathbf{e}_{ij} = \mathrm{LN}\Big(\mathbf{W}\big[\,\mathrm{PE}(r_i - r_j,
        [c_i = c_j]) \,\|\, \mathrm{RBF}(\lVert A_i - B_j \rVert)_{(A,B)\in\mathcal{P}}
        \,\|\, \hat{\mathbf{u}}_{ij} \,\|\, \mathbf{q}(O_i^\top O_j) \big]\Big)

    with :math:`\mathcal{P}` the 9 pairs of the points ``Ca_0, Ca_1, Ca_2`` (previous, own and
    next CA) in the original's order, 16 RBFs each, :math:`O_i` the residue's local frame,
    :math:`\hat{\mathbf{u}}_{ij}` the unit vector to ``CA_j`` in that frame and
    :math:`\mathbf{W}` a bias-free linear map ``167 -> edge_features``.

    Args:
        edge_features (int, optional): output size. (default: :obj:`128`)
        num_positional_embeddings (int, optional): size of the positional code.
            (default: :obj:`16`)
        num_rbf (int, optional): Gaussians per point pair. (default: :obj:`16`)
        max_relative_feature (int, optional): clip of the relative position.
            (default: :obj:`32`)

    Shapes:
        - **input:** coords :math:`(|\mathcal{V}|, 4, 3)` (only CA, index 1, is read),
          edge_index :math:`(2, |\mathcal{E}|)`, residue_idx :math:`(|\mathcal{V}|)`,
          chain :math:`(|\mathcal{V}|)`, batch :math:`(|\mathcal{V}|)` or ``None``
        - **output:** edge features :math:`(|\mathcal{E}|, F_{edge})`
    """

    def __init__(
        self,
        edge_features: int = 128,
        num_positional_embeddings: int = 16,
        num_rbf: int = 16,
        max_relative_feature: int = 32,
    ):
        super().__init__(
            CA_PAIRS,
            ORIENTATION_FEATURES,
            edge_features,
            num_positional_embeddings,
            num_rbf,
            max_relative_feature,
        )

    def forward(
        self,
        coords: Tensor,
        edge_index: Tensor,
        residue_idx: Tensor,
        chain: Tensor,
        batch: Tensor | None = None,
    ) -> Tensor:
        ca = coords[:, 1]
        x, framed = sequence_points(ca, residue_idx, chain, batch)  # [N, 3, 3], [N]
        d = self.pair_distances(x, edge_index)  # [E, 9]
        orient = orientations(ca, local_frames(x, framed), edge_index)
        e_pos = self.positional(residue_idx, chain, edge_index)
        inp = _edge_input(e_pos, d, orient, self.num_rbf)  # [E, 16 + 9 * 16 + 7]
        e = self.edge_embedding(recompute_later(inp, _edge_input, e_pos, d, orient, self.num_rbf))
        return layer_norm(self.norm_edges, e)
