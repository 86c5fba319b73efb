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


class EdgeFeatures(nn.Module):
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
        super().__init__()
        self.num_rbf = num_rbf
        self.embeddings = PositionalEncodings(num_positional_embeddings, max_relative_feature)
        edge_in = num_positional_embeddings + num_rbf * len(ATOM_PAIRS)
        self.edge_embedding = nn.Linear(edge_in, edge_features, bias=False)
        self.norm_edges = nn.LayerNorm(edge_features)
        self.register_buffer(
            "_centre_atom", torch.tensor([p[0] for p in ATOM_PAIRS]), persistent=False
        )
        self.register_buffer(
            "_neigh_atom", torch.tensor([p[1] for p in ATOM_PAIRS]), persistent=False
        )

    def reset_parameters(self):
        self.embeddings.linear.reset_parameters()
        self.edge_embedding.reset_parameters()
        self.norm_edges.reset_parameters()

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
        j, i = edge_index
        x = virtual_cb(coords)  # [N, 5, 3]
        a = x[i][:, self._centre_atom]  # [E, 25, 3] atom A at i
        b = x[j][:, self._neigh_atom]  # [E, 25, 3] atom B at j
        d = torch.sqrt(((a - b) ** 2).sum(-1) + 1e-6)  # [E, 25]
        e_pos = self.embeddings(residue_idx[i] - residue_idx[j], chain[i] == chain[j])
        inp = _edge_input(e_pos, d, self.num_rbf)  # [E, 16 + 25 * 16]
        e = self.edge_embedding(recompute_later(inp, _edge_input, e_pos, d, self.num_rbf))
        return layer_norm(self.norm_edges, e)
