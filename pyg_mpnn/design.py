"""Design sequences for a structure; chains not named stay fixed (visible context).

    python -m pyg_mpnn.design --weights original:v_48_020 complex.pdb --chains A --num-seqs 8

Writes FASTA like the original's ``protein_mpnn_run.py``: first the native sequence with its
score, then one record per sample. Chains are joined with ``/`` in the file's chain order;
fixed chains keep their native sequence. ``score`` = mean negative log-likelihood over the
designed residues (with all backbone atoms) under the sample's own decoding order,
``global_score`` the same over every residue with a backbone, ``seq_recovery`` the identity to
the native over the designed residues. All samples run as one batch of graphs.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from torch_geometric.data import Batch

from pyg_mpnn.alphabet import decode
from pyg_mpnn.io.record import ProteinRecord, to_data
from pyg_mpnn.nn.model import ProteinMPNN


def _chain_string(record: ProteinRecord, seq: torch.Tensor) -> str:
    letters = decode(seq.tolist())
    return "/".join("".join(letters[i] for i in np.nonzero(record.chain_index == c)[0])
                    for c in range(len(record.chain_ids)))


def set_designed(record: ProteinRecord, chains: list[str] | None) -> ProteinRecord:
    """Mark ``chains`` designed and the others fixed (all designed when ``None``)."""
    if chains is None:
        record.designed = np.ones(len(record.chain_ids), bool)
        return record
    unknown = [c for c in chains if c not in record.chain_ids]
    if unknown:
        raise ValueError(f"{record.name}: no chain {', '.join(unknown)} "
                         f"(chains: {', '.join(record.chain_ids)})")
    record.designed = np.array([c in chains for c in record.chain_ids])
    return record


def _scores(log_probs, seq, weight, batch, n):
    nll = -log_probs.gather(1, seq.view(-1, 1)).view(-1) * weight
    tot = torch.zeros(n).index_add_(0, batch, nll)
    return tot / torch.zeros(n).index_add_(0, batch, weight).clamp(min=1)


@torch.no_grad()
def design(model: ProteinMPNN, record: ProteinRecord, num_seqs: int = 1,
           temperature: float = 0.1, seed: int = 0) -> list[tuple[str, str]]:
    """``[(header, sequence)]``: the native first, then ``num_seqs`` samples."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    one = to_data(record)
    designed = one.design_mask & one.mask
    if not bool(designed.any()):
        raise ValueError(f"{record.name}: no designed residue with a complete backbone")
    valid = one.mask.float()
    lp = model(one, decoding_rank=model.random_rank(one, gen))
    zero = torch.zeros(one.num_nodes, dtype=torch.long)
    native = _scores(lp, one.seq, designed.float(), zero, 1)[0]
    native_g = _scores(lp, one.seq, valid, zero, 1)[0]
    fixed = [c for c, d in zip(record.chain_ids, record.designed) if not d]
    des = [c for c, d in zip(record.chain_ids, record.designed) if d]
    out = [(f"{record.name}, score={native:.4f}, global_score={native_g:.4f}, "
            f"fixed_chains={fixed}, designed_chains={des}, seed={seed}",
            _chain_string(record, one.seq))]
    batch = Batch.from_data_list([one] * num_seqs)
    res = model.sample(batch, temperature=temperature, generator=gen)
    glob = _scores(res["log_probs"], res["seq"], batch.mask.float(), batch.batch, num_seqs)
    for s in range(num_seqs):
        sel = batch.batch == s
        out.append((f"T={temperature}, sample={s + 1}, score={float(res['score'][s]):.4f}, "
                    f"global_score={float(glob[s]):.4f}, "
                    f"seq_recovery={float(res['recovery'][s]):.4f}",
                    _chain_string(record, res["seq"][sel])))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyg_mpnn.design", description=__doc__.split("\n")[0])
    p.add_argument("structure", help="PDB / mmCIF / PQR / PDBQT file (plain or gzipped)")
    p.add_argument("--weights", default="original:v_48_020")
    p.add_argument("--chains", default=None, help="chains to design, e.g. A,B (default: all)")
    p.add_argument("--num-seqs", type=int, default=1)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="FASTA file (default: stdout)")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from pyg_mpnn.io.record import ReadError
    from pyg_mpnn.io.structure import read_structure
    from pyg_mpnn.nn.weights import load_model

    try:
        record = read_structure(a.structure)
        chains = [c.strip() for c in a.chains.split(",") if c.strip()] if a.chains else None
        set_designed(record, chains)
        records = design(load_model(a.weights), record, a.num_seqs, a.temperature, a.seed)
    except (ReadError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = "".join(f">{h}\n{s}\n" for h, s in records)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
