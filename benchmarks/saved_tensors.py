"""What a training forward keeps for backward, by the operator that made each tensor: ours with
every saved activation kept against ours recomputing the cheap ones (pyg_mpnn/nn/recompute.py).

    python -m benchmarks.saved_tensors --json --residues 2000 \\
        --out benchmarks/results/saved_tensors.json

One graph (the memory curve's assembly of ``proteinmpnn__3HTN`` copies,
:func:`benchmarks.common.assembly`),
the ``base`` model (width 128, 3 + 3 layers, k = 48, dropout 0.1, noise 0.2 A), train mode, one
seeded forward each way inside :func:`pyg_mpnn.nn.recompute.count_saved` (``saved_tensors_hooks``:
the distinct storages autograd keeps, recipes counted by their inputs), then the backward of
both, whose gradients must be bit-identical (``identical_gradients``). No timing: forward +
backward of both at 2,000 residues take about a minute on 2 cores.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import assembly, command, emit, finished, machine
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.recompute import count_saved

MIB = 2**20


def one_way(model: ProteinMPNN, data, recompute: bool, bf16: bool) -> tuple[dict, dict]:
    """Saved bytes (total and by label) of one seeded forward, and the gradients after backward."""
    model.set_modes(recompute_activations=recompute)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    with count_saved() as saved, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        lp = model(data)
        loss = -lp.float().gather(1, data.seq[:, None])[data.mask].mean()
    loss.backward()
    n = data.num_nodes
    row = {
        "saved_mib_per_residue": round(saved.bytes / n / MIB, 4),
        "saved_mib": round(saved.bytes / MIB, 1),
        "by_tensor_kib_per_residue": {
            k: round(v / n / 1024, 1) for k, v in saved.by_label().items() if v / n >= 512
        },
        "loss": float(loss.detach()),
    }
    return row, {k: p.grad.clone() for k, p in model.named_parameters()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residues", type=int, default=2000)
    ap.add_argument("--structure", default="proteinmpnn__3HTN.pdb.gz")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    info = machine()
    data = assembly(a.residues, a.structure)
    torch.manual_seed(0)
    model = ProteinMPNN(augment_eps=0.2, dropout=0.1).train()
    keep, g_keep = one_way(model, data, False, a.bf16)
    rec, g_rec = one_way(model, data, True, a.bf16)
    res = {
        "command": command("benchmarks.saved_tensors", argv),
        "residues": data.num_nodes,
        "edges": data.num_nodes * 48,
        "precision": "bf16" if a.bf16 else "fp32",
        "machine": finished(info),
        "keep_all": keep,
        "recompute": rec,
        "ratio": round(rec["saved_mib_per_residue"] / keep["saved_mib_per_residue"], 3),
        "identical_loss": keep["loss"] == rec["loss"],
        "identical_gradients": all(torch.equal(g_rec[k], g) for k, g in g_keep.items()),
    }
    return emit(res, a, _table)


def _table(res: dict) -> str:
    lines = []
    for way in ("keep_all", "recompute"):
        lines.append(f"{way}: {res[way]['saved_mib_per_residue']:.3f} MiB/residue saved")
        for k, v in res[way]["by_tensor_kib_per_residue"].items():
            lines.append(f"    {v:8.1f} KiB/residue  {k}")
    lines.append(f"ratio {res['ratio']}, identical gradients: {res['identical_gradients']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
