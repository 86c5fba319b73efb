"""Evaluate ProteinMPNN weights on a dataset: teacher-forced perplexity / accuracy under one
random decoding order, and recovery of sequences sampled at a low temperature. The command line
is :mod:`pyg_mpnn.evaluate`:

    python -m pyg_mpnn.evaluate --weights original:v_48_020 --data ts50.jsonl --json

Protocol (what ``studies/ts50_eval.py`` also runs with the reference implementation):

* residues scored: designed chains, all four backbone atoms present (the original's
  ``mask * chain_M``); with CA-only weights (``ca:v_48_020``) every residue with a CA atom,
  as the original's ``--ca_only`` (its mask comes from the CA atoms alone); visible chains are
  context only;
* perplexity = ``exp(total NLL / residues)`` and accuracy = share of residues whose argmax is
  the native type, both pooled over all residues, under one random decoding order per protein;
* recovery: one sequence per protein sampled at temperature 0.1 (``X`` never sampled) under a
  fresh random order; identity to the native per designed chain; median and mean over chains;
* seeded: the torch RNG and a sampling generator are seeded with ``--seed``; proteins are
  batched (``--batch-residues``) and the random numbers drawn per batch, so results depend on
  the seed and on the batching, not on anything else.

Percentages are in ``[0, 100]``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator

import torch
from torch_geometric.data import Batch
from tqdm import tqdm

from pyg_mpnn.io.record import ProteinRecord, ReadError, to_data
from pyg_mpnn.io.sources import iter_source
from pyg_mpnn.nn.model import ProteinMPNN


def iter_records(source: str, warn=True) -> Iterator[ProteinRecord]:
    """Records from any readable source (JSONL, structure file, folder, ...); read errors
    are reported on stderr and skipped."""
    for entry in iter_source(source):  # (..., item name, record or ReadError)
        item, result = entry[-2], entry[-1]
        if isinstance(result, ReadError):
            if warn:
                print(f"skipped {item}: {result}", file=sys.stderr)
            continue
        yield result


def batches(records: Iterable[ProteinRecord], max_residues: int = 2000) -> Iterator[list]:
    """Group records into lists of at most ``max_residues`` residues (one record always fits)."""
    chunk, size = [], 0
    for rec in records:
        if chunk and size + rec.num_residues > max_residues:
            yield chunk
            chunk, size = [], 0
        chunk.append(rec)
        size += rec.num_residues
    if chunk:
        yield chunk


def limit_chains(records: Iterable[ProteinRecord], max_chains: int | None):
    """Stop before the designed-chain count would exceed ``max_chains``."""
    n = 0
    for rec in records:
        k = int(rec.designed.sum())
        if max_chains is not None and n + k > max_chains:
            return
        n += k
        yield rec


def chain_recoveries(data, seq: torch.Tensor) -> list[float]:
    """Identity to the native per designed chain of each graph (valid residues only)."""
    batch = (
        data.batch
        if getattr(data, "batch", None) is not None
        else torch.zeros(data.num_nodes, dtype=torch.long)
    )
    scored = data.design_mask & data.mask
    key = batch * 100000 + data.chain  # one id per (graph, chain)
    out = []
    for k in torch.unique(key[scored]):
        sel = scored & (key == k)
        out.append(float((seq[sel] == data.seq[sel]).float().mean()))
    return out


@torch.no_grad()
def evaluate(
    model: ProteinMPNN,
    records: Iterable[ProteinRecord],
    seed: int = 0,
    temperature: float = 0.1,
    max_residues: int = 2000,
    progress: bool = True,
) -> dict:
    """Run the protocol of this module's docstring; returns the metrics dict."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    nll_sum, correct, residues, recov = 0.0, 0, 0, []
    records = list(records)
    bar = tqdm(
        total=sum(r.num_residues for r in records),
        unit="res",
        disable=not progress,
        file=sys.stderr,
    )
    for chunk in batches(records, max_residues):
        data = Batch.from_data_list([to_data(r, model.backbone) for r in chunk])
        scored = data.design_mask & data.mask
        encoded = model.encode(data)  # shared by scoring and sampling
        log_probs = model(data, decoding_rank=model.random_rank(data, gen), encoded=encoded)
        nll = -log_probs.gather(1, data.seq.view(-1, 1)).view(-1)
        nll_sum += float(nll[scored].sum())
        correct += int((log_probs.argmax(-1) == data.seq)[scored].sum())
        residues += int(scored.sum())
        out = model.sample(data, temperature=temperature, generator=gen, encoded=encoded)
        recov += chain_recoveries(data, out["seq"])
        bar.update(data.num_nodes)
    bar.close()
    rec = torch.tensor(recov) if recov else torch.zeros(0)
    return dict(
        perplexity=math.exp(nll_sum / residues) if residues else float("nan"),
        accuracy=100.0 * correct / residues if residues else float("nan"),
        median_recovery=100.0 * float(rec.median()) if len(rec) else float("nan"),
        mean_recovery=100.0 * float(rec.mean()) if len(rec) else float("nan"),
        chains=len(recov),
        residues=residues,
    )
