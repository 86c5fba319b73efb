"""ProteinMPNN's edge featurizer, computed per edge of a sparse graph.

Everything here is ``O(|E|)``: distances are evaluated only for the pairs named by
``edge_index`` (never an ``[L, L]`` matrix). Parameter names equal the original's
``ProteinFeatures`` (``embeddings.linear``, ``edge_embedding``, ``norm_edges``) so its
``state_dict`` loads 1:1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyg_mpnn.nn.recompute import layer_norm, recompute_later

# Virtual C-beta from the ideal backbone geometry (the original's constants).
CB_A, CB_B, CB_C = -0.58273431, 0.56802827, -0.54067466

N_, CA_, C_, O_, CB_ = 0, 1, 2, 3, 4
# The 25 (centre atom, neighbour atom) pairs in the original's order:
# Ca-Ca, N-N, C-C, O-O, Cb-Cb, Ca-N, Ca-C, Ca-O, Ca-Cb, N-C, N-O, N-Cb, Cb-C, Cb-O,
# O-C, N-Ca, C-Ca, O-Ca, Cb-Ca, C-N, O-N, Cb-N, C-Cb, O-Cb, C-O.
ATOM_PAIRS = (
    (CA_, CA_),
    (N_, N_),
    (C_, C_),
    (O_, O_),
    (CB_, CB_),
    (CA_, N_),
    (CA_, C_),
    (CA_, O_),
    (CA_, CB_),
    (N_, C_),
    (N_, O_),
    (N_, CB_),
    (CB_, C_),
    (CB_, O_),
    (O_, C_),
    (N_, CA_),
    (C_, CA_),
    (O_, CA_),
    (CB_, CA_),
    (C_, N_),
    (O_, N_),
    (CB_, N_),
    (C_, CB_),
    (O_, CB_),
    (C_, O_),
)


def virtual_cb(coords: Tensor) -> Tensor:
    """Append the virtual C-beta: ``[N, 4, 3]`` (N, CA, C, O) -> ``[N, 5, 3]``."""
    n, ca, c = coords[:, 0], coords[:, 1], coords[:, 2]
    b = ca - n
    c = c - ca
    a = torch.cross(b, c, dim=-1)
    cb = CB_A * a + CB_B * b + CB_C * c + ca
    return torch.cat([coords, cb.unsqueeze(1)], dim=1)


def rbf(d: Tensor, d_min: float = 2.0, d_max: float = 22.0, num: int = 16) -> Tensor:
    """Gaussian radial basis: ``[...] -> [..., num]``, centres evenly on ``[d_min, d_max]``,
    width ``(d_max - d_min) / num``."""
    mu = torch.linspace(d_min, d_max, num, device=d.device, dtype=d.dtype)
    sigma = (d_max - d_min) / num
    return torch.exp(-(((d.unsqueeze(-1) - mu) / sigma) ** 2))


class PositionalEncodings(nn.Module):
    """Relative position ``r_i - r_j`` clipped to ``[-max_rel, max_rel]`` (same chain) or a
    separate class ``2 max_rel + 1`` (different chains), one-hot, then linear."""

    def __init__(self, num_embeddings: int = 16, max_relative_feature: int = 32):
        super().__init__()
        self.max_relative_feature = max_relative_feature
        self.linear = nn.Linear(2 * max_relative_feature + 2, num_embeddings)

    def forward(self, offset: Tensor, same_chain: Tensor) -> Tensor:
        m = self.max_relative_feature
        d = torch.where(
            same_chain, torch.clamp(offset + m, 0, 2 * m), torch.full_like(offset, 2 * m + 1)
        )
        dtype = self.linear.weight.dtype
        onehot = recompute_later(_one_hot(d, 2 * m + 2, dtype), _one_hot, d, 2 * m + 2, dtype)
        return self.linear(onehot)


def _one_hot(d: Tensor, classes: int, dtype: torch.dtype) -> Tensor:
    """``one_hot(d, classes)`` as ``dtype``, by comparison: ``F.one_hot`` checks the range of
    ``d`` on a CPU, a read of its values that a training step must not make."""
    return (d.unsqueeze(-1) == torch.arange(classes, device=d.device)).to(dtype)


def _edge_input(e_pos: Tensor, d: Tensor, num_rbf: int) -> Tensor:
    """``[PE || RBF(d)]``, the edge embedding's input (recomputed in backward, not saved)."""
    return torch.cat([e_pos, rbf(d, num=num_rbf).flatten(1)], dim=-1)


class PairEdgeFeatures(nn.Module):
    r"""What the edge featurizers share: the positional code, RBFs of the distances between
    pairs of points of the edge's two residues, a bias-free linear map and a LayerNorm.

    .. math::
        \mathbf{e}_{ij} = \mathrm{LN}\Big(\mathbf{W}\big[\,\mathrm{PE}(r_i - r_j,
        [c_i = c_j]) \,\|\, \mathrm{RBF}(\lVert A_i - B_j \rVert)_{(A,B)\in\mathcal{P}}
        \,\|\, \mathbf{x}_{ij} \big]\Big)

    with :math:`\mathbf{x}_{ij}` further per-edge inputs of size ``extra_features`` (none for
    :class:`EdgeFeatures`). Subclasses compute the points and :math:`\mathbf{x}_{ij}` in
    ``forward``, with :meth:`pair_distances` and :meth:`positional`.

    Args:
        pairs (tuple): the (centre point, neighbour point) indices :math:`\mathcal{P}`.
        extra_features (int): size of :math:`\mathbf{x}_{ij}`.
        edge_features (int): output size.
        num_positional_embeddings (int): size of the positional code.
        num_rbf (int): Gaussians per point pair.
        max_relative_feature (int): clip of the relative position.

    Shapes:
        - **input of** :meth:`pair_distances`: points :math:`(|\mathcal{V}|, P, 3)`,
          edge_index :math:`(2, |\mathcal{E}|)`
        - **output:** edge features :math:`(|\mathcal{E}|, F_{edge})`
    """

    def __init__(
        self,
        pairs: tuple[tuple[int, int], ...],
        extra_features: int,
        edge_features: int,
        num_positional_embeddings: int,
        num_rbf: int,
        max_relative_feature: int,
    ):
        super().__init__()
        self.num_rbf = num_rbf
        self.embeddings = PositionalEncodings(num_positional_embeddings, max_relative_feature)
        edge_in = num_positional_embeddings + num_rbf * len(pairs) + extra_features
        self.edge_embedding = nn.Linear(edge_in, edge_features, bias=False)
        self.norm_edges = nn.LayerNorm(edge_features)
        self.register_buffer("_centre", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("_neigh", torch.tensor([p[1] for p in pairs]), persistent=False)

    def reset_parameters(self):
        self.embeddings.linear.reset_parameters()
        self.edge_embedding.reset_parameters()
        self.norm_edges.reset_parameters()

    def pair_distances(self, points: Tensor, edge_index: Tensor) -> Tensor:
        """``[E, |P|]``: the distance from point ``A`` of the centre ``i`` to point ``B`` of
        the neighbour ``j`` for every pair ``(A, B)`` (``points`` ``[N, P, 3]``)."""
        j, i = edge_index
        a = points[i][:, self._centre]  # [E, |P|, 3] point A at i
        b = points[j][:, self._neigh]  # [E, |P|, 3] point B at j
        return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-6)

    def positional(self, residue_idx: Tensor, chain: Tensor, edge_index: Tensor) -> Tensor:
        """``[E, num_positional_embeddings]``: the positional code of each edge ``j -> i``."""
        j, i = edge_index
        return self.embeddings(residue_idx[i] - residue_idx[j], chain[i] == chain[j])


class EdgeFeatures(PairEdgeFeatures):
    r"""Edge embeddings of ProteinMPNN for the edges ``j -> i`` of ``edge_index``.

    .. math::
        \mathbf{e}_{ij} = \mathrm{LN}\Big(\mathbf{W}\big[\,\mathrm{PE}(r_i - r_j,
        [c_i = c_j]) \,\|\, \mathrm{RBF}(\lVert A_i - B_j \rVert)_{(A,B)\in\mathcal{P}}
        \big]\Big)

    with :math:`\mathcal{P}` the 25 pairs of backbone atoms (N, CA, C, O, virtual CB) in the
    original's order, 16 RBFs each, and :math:`\mathbf{W}` a bias-free linear map
    ``416 -> edge_features``.

    Args:
        edge_features (int, optional): output size. (default: :obj:`128`)
        num_positional_embeddings (int, optional): size of the positional code.
            (default: :obj:`16`)
        num_rbf (int, optional): Gaussians per atom pair. (default: :obj:`16`)
        max_relative_feature (int, optional): clip of the relative position.
            (default: :obj:`32`)

    Shapes:
        - **input:** coords :math:`(|\mathcal{V}|, 4, 3)`, edge_index
          :math:`(2, |\mathcal{E}|)`, residue_idx :math:`(|\mathcal{V}|)`,
          chain :math:`(|\mathcal{V}|)`
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
            ATOM_PAIRS, 0, edge_features, num_positional_embeddings, num_rbf, max_relative_feature
        )

    def forward(
        self,
        coords: Tensor,
        edge_index: Tensor,
        residue_idx: Tensor,
        chain: Tensor,
        batch: Tensor | None = None,
    ) -> Tensor:
        """``batch`` is accepted for the signature :class:`~pyg_mpnn.nn.ca_features.CAEdgeFeatures`
        shares; every feature here is a function of the edge's two residues alone."""
        d = self.pair_distances(virtual_cb(coords), edge_index)  # [E, 25]
        e_pos = self.positional(residue_idx, chain, edge_index)
        inp = _edge_input(e_pos, d, self.num_rbf)  # [E, 16 + 25 * 16]
        e = self.edge_embedding(recompute_later(inp, _edge_input, e_pos, d, self.num_rbf))
        return layer_norm(self.norm_edges, e)
