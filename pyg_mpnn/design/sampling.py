"""Sample designs for one structure: score the native, then batches of copies.

The structure is encoded once; every batch is ``B`` copies of its graph (no padding: PyG
concatenates them) sharing the encoder output. Each copy gets its own random decoding order
and draws. Scores are the original's: ``score`` = mean NLL over the designed residues (with a
complete backbone), ``global_score`` over all residues with a complete backbone, under the
sample's decoding order; ``seq_recovery`` = identity to the native over the designed residues.

With backbone noise (the original's ``--backbone_noise``) every forward pass sees its own draw
of Gaussian noise on the backbone atoms, as in the original, and every copy in a batch its
own: the native is scored on one noisy backbone, each sample is drawn and scored on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from pyg_mpnn.design.constraints import Constraints
from pyg_mpnn.io.record import ProteinRecord, to_data
from pyg_mpnn.nn.model import ProteinMPNN


@dataclass
class Sample:
    """One sequence and its scores (``seq`` ``[N]``, the whole structure)."""

    temperature: float | None
    number: int
    seq: Tensor
    score: float
    global_score: float
    recovery: float
    probs: Tensor | None = None
    log_probs: Tensor | None = None


def use_split_layers(model: ProteinMPNN, split: bool = True) -> None:
    """Run every encoder and decoder layer on its split path (``split=True``: first message
    weight split into blocks, last one after the neighbour sum; log-probs within 1e-4 of the
    exact path, several times fewer operations) or on the exact path (``False``, the
    original's operation order)."""
    model.set_modes(split=split)


def add_noise(data: Data, sigma: float, generator: torch.Generator | None) -> Data:
    """A copy of ``data`` with Gaussian noise of std ``sigma`` (Angstrom) added to every
    backbone coordinate (``data`` itself when ``sigma`` is 0), drawn from ``generator`` as the
    original's ``X + augment_eps * randn_like(X)``."""
    if sigma <= 0:
        return data
    noisy = data.clone()
    noisy.coords = data.coords + sigma * torch.randn(data.coords.shape, generator=generator)
    noisy.pos = noisy.coords[:, 1].clone()
    return noisy


def design_graph(record: ProteinRecord, cons: Constraints) -> Data:
    """The record's graph with ``design_mask`` = the residues to sample."""
    data = to_data(record)
    data.design_mask = torch.from_numpy(cons.designed.copy())
    return data


def repeat_encoded(encoded: tuple[Tensor, Tensor, Tensor], copies: int, num_nodes: int):
    """Encoder output of one graph tiled for ``copies`` identical graphs in one batch."""
    h_V, h_E, edge_index = encoded
    shift = torch.arange(copies, device=edge_index.device).repeat_interleave(edge_index.size(1))
    return (
        h_V.repeat(copies, 1),
        h_E.repeat(copies, 1),
        edge_index.repeat(1, copies) + shift * num_nodes,
    )


def copies_of(data: Data, copies: int) -> Batch:
    return Batch.from_data_list([data] * copies)


def per_graph_mean(values: Tensor, weight: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    tot = torch.zeros(num_graphs, dtype=values.dtype).index_add_(0, batch, values * weight)
    return tot / torch.zeros(num_graphs, dtype=values.dtype).index_add_(0, batch, weight).clamp(
        min=1
    )


def chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


@torch.no_grad()
def score_native(
    model: ProteinMPNN, data: Data, encoded, generator: torch.Generator, noise: float = 0.0
) -> Sample:
    """The native sequence under one random decoding order (the FASTA's first record);
    with ``noise``, on a noisy backbone (``encoded`` is then not used)."""
    rank = model.random_rank(data, generator)
    if noise > 0:
        encoded = model.encode(add_noise(data, noise, generator))
    lp = model(data, decoding_rank=rank, encoded=encoded)
    nll = -lp.gather(1, data.seq.view(-1, 1)).view(-1)
    zero = torch.zeros(data.num_nodes, dtype=torch.long)
    design = (data.design_mask & data.mask).float()
    return Sample(
        None,
        0,
        data.seq,
        float(per_graph_mean(nll, design, zero, 1)[0]),
        float(per_graph_mean(nll, data.mask.float(), zero, 1)[0]),
        1.0,
    )


def _batch_to_sample(model, data, copies, encoded, noise, generator):
    """``copies`` copies of ``data``, their random decoding rank, then their encoder output
    (``encoded`` tiled; with ``noise``, each copy noised and encoded after its rank is drawn,
    the original's order of draws)."""
    batch = copies_of(data, copies)
    rank = model.random_rank(batch, generator)
    if noise > 0:
        return batch, rank, model.encode(add_noise(batch, noise, generator))
    return batch, rank, repeat_encoded(encoded, copies, data.num_nodes)


@torch.no_grad()
def sample_designs(
    model: ProteinMPNN,
    data: Data,
    cons: Constraints,
    temperatures: list[float],
    num_seqs: int,
    batch_size: int,
    generator: torch.Generator,
    omit: str = "X",
    encoded=None,
    progress=None,
    exact: bool = True,
    noise: float = 0.0,
    keep_probs: bool = False,
) -> list[Sample]:
    """``num_seqs`` samples per temperature, ``batch_size`` copies per forward pass
    (``exact=False``: the sampler's fast incremental decoder, see
    :class:`~pyg_mpnn.nn.incremental.IncrementalDecoder`). ``noise``: backbone noise std, a
    draw per copy after its decoding order (``encoded`` is then not used). ``keep_probs``:
    keep each sample's ``probs`` and ``log_probs`` ``[N, 21]``."""
    if noise <= 0 and encoded is None:
        encoded = model.encode(data)
    control = cons.control()
    out = []
    for temperature in temperatures:
        number = 0
        for b in chunks(num_seqs, batch_size):
            batch, rank, enc = _batch_to_sample(model, data, b, encoded, noise, generator)
            res = model.sample(
                batch,
                temperature=temperature,
                decoding_rank=rank,
                generator=generator,
                omit=omit,
                encoded=enc,
                control=control.repeat(b),
                exact=exact,
            )
            nll = -res["log_probs"].gather(1, res["seq"].view(-1, 1)).view(-1)
            glob = per_graph_mean(nll, batch.mask.float(), batch.batch, b)
            for s in range(b):
                number += 1
                sel = slice(s * data.num_nodes, (s + 1) * data.num_nodes)
                out.append(
                    Sample(
                        temperature,
                        number,
                        res["seq"][sel],
                        float(res["score"][s]),
                        float(glob[s]),
                        float(res["recovery"][s]),
                        res["probs"][sel] if keep_probs else None,
                        res["log_probs"][sel] if keep_probs else None,
                    )
                )
            if progress is not None:
                progress.update(b)
    return out
