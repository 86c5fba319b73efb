"""Peak memory of one training step against complex size: one graph of up to 20,000 residues.

    python -m benchmarks.memory_curve --json                      # 1k, 2k, 5k, 10k, 20k residues
    python -m benchmarks.memory_curve --sizes 1000,2000 --variants plain,checkpointing

The complex is an assembly replicated from real chains: the chains of
``--structure`` (default ``proteinmpnn__3HTN.pdb.gz``, 4 chains) copied onto a cubic grid, 80 A
apart, until the size is reached (the last copy cut to fit), every copy its own chains. Each
size runs in a fresh Python process (so one size's freed memory cannot hide the next one's
peak): the ``base`` model (width 128, 3 + 3 layers, k = 48, dropout 0.1, noise 0.2 A) does
forward + backward + Adam in train mode, fp32 unless ``--bf16``. Peak memory is the process's
resident-set high-water mark (``VmHWM``) during the step minus the resident size just before
it; ``largest_tensor_mb`` is the largest tensor any operator returned during the step
(``TorchDispatchMode``), which would be ``4 L^2`` bytes for one ``L x L`` float matrix.
Children run with ``MALLOC_MMAP_THRESHOLD_=131072`` (unless set): without it glibc keeps freed
large blocks on its heap and the RSS peak overstates live memory (at 1,000 residues: 1,503 vs
1,176 MiB plain, 1,262 vs 520 MiB with checkpointing).
Variants: ``plain``, ``keep_all`` (plain with ``recompute_activations = False``: every saved
activation kept, as before pyg_mpnn/nn/recompute.py), ``checkpointing``
(``train.activation_checkpointing``), ``crop`` (the step
runs on one ``SpatialCrop(50, 20, seed=0)`` of the complex and supervises its inner sphere:
``graph_residues`` and ``supervised`` say how much of the complex that is).
``--device cuda``: the step runs on the GPU and its peak is ``torch.cuda.max_memory_allocated``
during the step minus the memory allocated before it. The structure is read from the shared
data, else from its copy in ``tests/fixtures``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.common import REPO, assembly, emit, finished, machine, python_m
from pyg_mpnn.data.crop import SpatialCrop
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.modes import Modes
from pyg_mpnn.train.precision import peak_memory_mb, reset_peak_memory


class Largest(TorchDispatchMode):
    """The largest tensor (bytes) any operator returned while the mode was on."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                Largest.largest = max(Largest.largest, t.numel() * t.element_size())
        return out


def model_for(variant: str) -> ProteinMPNN:
    """The ``base`` model in train mode, seeded, with the variant's memory switches."""
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=128,
        num_encoder_layers=3,
        num_decoder_layers=3,
        k_neighbors=48,
        augment_eps=0.2,
        dropout=0.1,
        modes=Modes(
            activation_checkpointing=variant == "checkpointing",
            recompute_activations=variant != "keep_all",
        ),
    ).train()
    return model


def one(
    n: int, variant: str, bf16: bool, structure: str, threads: int | None, device: str = "cpu"
) -> dict:
    """Runs in its own process: one training step at ``n`` residues on ``device``."""
    if threads:
        torch.set_num_threads(threads)
    data = assembly(n, structure)
    supervised = data.mask
    if variant == "crop":
        data = SpatialCrop(50.0, 20.0, seed=0)(data)
        supervised = data.loss_mask
    model = model_for(variant)
    dev = torch.device(device)
    model, data, supervised = model.to(dev), data.to(dev), supervised.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    base = reset_peak_memory(dev)
    t0 = time.perf_counter()
    with Largest(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        lp = model(data)
        loss = -lp.float().gather(1, data.seq[:, None])[supervised].mean()
    with Largest():
        loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    return {
        "residues": n,
        "variant": variant,
        "precision": "bf16" if bf16 else "fp32",
        "graph_residues": data.num_nodes,
        "supervised": int(supervised.sum()),
        "edges": data.num_nodes * 48,
        "chains": int(data.chain.unique().numel()),
        "step_s": round(seconds, 2),
        "residues_per_s": round(data.num_nodes / seconds, 1),
        "loss": round(float(loss), 4),
        "peak_mem_mb": round(peak_memory_mb(dev) - base, 1),
        "largest_tensor_mb": round(Largest.largest / 2**20, 1),
        "l_by_l_fp32_mb": round(4 * n * n / 2**20, 1),
        "threads": torch.get_num_threads(),
        "device": str(dev),
    }


def in_child(n: int, variant: str, a) -> dict:
    """:func:`one` in a fresh process: its row, or the error it ended with."""
    cmd = python_m("benchmarks.memory_curve")
    cmd += ["--one", str(n), "--variant", variant, "--structure", a.structure]
    cmd += ["--bf16"] if a.bf16 else []
    cmd += ["--threads", str(a.threads)] if a.threads else []
    cmd += ["--device", a.device] if a.device != "cpu" else []
    # big blocks mmapped and unmapped at free, so RSS follows live tensors (glibc would
    # otherwise raise its mmap threshold and keep freed blocks on the heap)
    env = {"MALLOC_MMAP_THRESHOLD_": "131072", **os.environ}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode != 0:
        return {"residues": n, "variant": variant, "error": p.stderr[-500:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    ap.add_argument("--variants", default="plain")
    ap.add_argument("--structure", default="proteinmpnn__3HTN.pdb.gz")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one is not None:
        print(json.dumps(one(a.one, a.variant, a.bf16, a.structure, a.threads, a.device)))
        return []
    info, rows = machine(a.threads), []  # before the steps: their load, the children's threads
    for variant in a.variants.split(","):
        for n in map(int, a.sizes.split(",")):
            rows.append(in_child(n, variant, a))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    res = {
        "machine": finished(info),
        "device": a.device,
        "memory": "peak RSS during the step minus RSS before it (VmHWM, MiB)"
        if a.device == "cpu"
        else "torch.cuda.max_memory_allocated during the step minus allocated before (MiB)",
        "rows": rows,
    }
    emit(res, a, lambda r: "\n".join(map(str, r["rows"])))
    return rows


if __name__ == "__main__":
    main()
