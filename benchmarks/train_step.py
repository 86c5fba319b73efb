"""One training step (forward + backward + Adam) on the same real batch: the original, its
training model, PyG's port and ours, side by side in time and peak memory.

    python -m benchmarks.train_step --json                       # ~10,000 residues, 5 repeats
    python -m benchmarks.train_step --residues 1500 --repeats 3  # a quick look
    python -m benchmarks.train_step --json --residues 5000 \
        --impls original,original_training,ours,ours_concat,ours_checkpointing  # like with like
    python -m benchmarks.train_step --json --residues 5000 \
        --impls original,ours,original_bf16,ours_bf16  # both precisions in one run

The batch is a seeded pick of whole chains from ``--data`` (default ``db5.5_train.jsonl.gz``
of the shared data) until ``--residues``. Implementations, all width 128, 3 + 3 layers,
k = 48, dropout 0.1, backbone noise 0.2 A, train mode, fp32 unless ``--bf16``, the same loss
(mean NLL over valid residues); each JSON row says what it is (``description``) and whether
its layers are checkpointed:

* ``original``: the reference package's model (``proteinmpnn.protein_mpnn_utils.ProteinMPNN``,
  0.1.3: the *inference* model) on its padded dense batch ``[B, L_max]`` (built by
  :func:`pyg_mpnn.nn.reference.reference_batch_inputs`), no checkpointing;
* ``original_training``: the original's *training* model: the same package model with every
  encoder and decoder layer under ``torch.utils.checkpoint``, as the original's
  ``training/model_utils.py`` runs it (:func:`benchmarks.common.reference_model`;
  ``time_to_quality``'s "original" arm uses the same model);
* ``pyg_port``: ``torch_geometric.llm.models.ProteinMPNN`` on the concatenated graph (its
  ``knn_graph`` served by ``torch_cluster``, since ``pyg-lib`` has no wheel for this torch);
* ``ours``: :class:`pyg_mpnn.nn.model.ProteinMPNN` on a PyG ``Batch`` (split message weights);
* ``ours_concat`` (or ``--with-concat``): ours with ``split = False`` (the original's op order);
* ``ours_checkpointing``: ours with ``activation_checkpointing`` (every encoder and decoder layer
  under ``torch.utils.checkpoint``, as ``train.activation_checkpointing: true``);
* ``ours_keep_all``: ours with ``recompute_activations = False`` (every saved activation kept, as
  before pyg_mpnn/nn/recompute.py: what recomputing GELU/LayerNorm outputs saves and costs);
* ``ours_compiled``: ours under ``torch.compile`` (inductor, ``dynamic=True``, as
  ``train.compile: true``); its warm-up step includes the compilation (``compile_s``);
* ``NAME_bf16`` (``ours_bf16``, ``original_bf16``, ...): NAME under bf16 autocast, so that both
  precisions are timed in one run (``--bf16`` puts every row in bf16 instead).

``comparisons`` in the JSON pairs them like with like (plain against plain, checkpointed against
checkpointed) and gives each change its own credit (split against concat, concat against the
original): time ratio (residues/s of the first over the second) and memory ratio (peak of the
first over the second), for every pair whose two rows ran.

Steps are interleaved (one of each implementation per round, rotating the order), after one
warm-up step each on a small batch (every step seeded: same noise and dropout for every
implementation); the median of ``--repeats`` rounds is reported. Peak memory
is the process's resident-set high-water mark (Linux ``VmHWM``) during the step minus the
resident size before it, after freeing the previous step's memory (``malloc_trim``): what the
step adds on top of the already-resident model and data. Large blocks are mmapped and returned
at free (glibc ``M_MMAP_THRESHOLD`` fixed at 128 KiB, as ``MALLOC_MMAP_THRESHOLD_=131072``), so
that the RSS follows live tensors instead of glibc's retained heap.

``--device cuda`` runs every model on the GPU (peak memory is then
``torch.cuda.max_memory_allocated``). Each row also has its model FLOPs per step
(``flops_per_step``: matmul FLOPs of forward + backward, ``FlopCounterMode``; ``--flops``
says on which batch) and, against the device's matmul peak of the row's precision measured in
the same run (``peak_flops``, :mod:`benchmarks.peak`), ``achieved_flops_per_s`` and
``utilisation``.

Memory: at 10,000 residues (48 chains, 10,128 padded tokens) the original's step peaks at
22,491 MiB resident (ours 11,629 MiB; ``benchmarks/results/train_step_cpu.json``): on a 24 GB
machine run it with nothing else running (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch

from benchmarks import peak
from benchmarks.common import (
    CPU,
    DROPOUT,
    EPS,
    FLOPS_BASIS,
    HIDDEN,
    LAYERS,
    TRAIN,
    K,
    command,
    count_flops,
    emit,
    finished,
    machine,
    nll,
    pick_graphs,
    reference_forward,
    reference_model,
    shown_path,
    utilisation,
)
from pyg_mpnn.nn import Modes, ProteinMPNN
from pyg_mpnn.nn.reference import reference_batch_inputs
from pyg_mpnn.train.compiled import Compiled, maybe_compile
from pyg_mpnn.train.precision import peak_memory_mb, reset_peak_memory, resident_mb

# What each row is (written into the JSON beside its numbers).
DESCRIPTIONS = {
    "original": "the original: proteinmpnn 0.1.3's ProteinMPNN (the package's inference model), "
    "padded dense batch, no checkpointing",
    "original_training": "the original's training model (training/model_utils.py): the same "
    "package model with every encoder and decoder layer under torch.utils.checkpoint, "
    "padded dense batch",
    "pyg_port": "PyG's port: torch_geometric.llm.models.ProteinMPNN on the concatenated graph, "
    "no checkpointing",
    "ours": "ours: pyg_mpnn ProteinMPNN on a PyG Batch, split message weights (training path), "
    "no checkpointing",
    "ours_concat": "ours with split = False (the original's concatenating op order), "
    "no checkpointing",
    "ours_checkpointing": "ours (split path) with activation_checkpointing: every encoder and "
    "decoder layer under torch.utils.checkpoint",
    "ours_keep_all": "ours with recompute_activations = False: every saved activation kept",
    "ours_compiled": "ours under torch.compile (inductor, dynamic shapes; train.compile)",
}
CHECKPOINTED = {"original_training", "ours_checkpointing"}
BF16 = "_bf16"  # suffix: the same implementation under bf16 autocast (``ours_bf16``, ...)


def base_name(name: str) -> str:
    """``ours_bf16`` -> ``ours``: the implementation without its precision suffix."""
    return name.removesuffix(BF16)


def describe(name: str) -> str:
    """What row ``name`` is, its precision included."""
    text = DESCRIPTIONS[base_name(name)]
    return text + (", bf16 autocast" if name.endswith(BF16) else "")


# (first, second, what the pair measures): like with like, and each change's own credit
COMPARISONS = [
    ("ours", "original", "plain against plain: ours against the package's inference model"),
    (
        "ours_checkpointing",
        "original_training",
        "checkpointed against checkpointed: ours against the original's training model",
    ),
    ("ours", "original_training", "ours plain against the original's training model"),
    ("ours", "ours_concat", "the split message weights alone (same code, concatenating path)"),
    (
        "ours_concat",
        "original",
        "everything but the split: graph batch and kernels, the original's op order",
    ),
    ("ours", "pyg_port", "plain against plain: ours against PyG's port"),
    ("ours_checkpointing", "ours", "what checkpointing costs and saves in ours"),
    ("original_training", "original", "what checkpointing costs and saves in the original"),
    ("ours_bf16", "original", "ours in bf16 against the original in fp32 (as users run each)"),
    ("ours_bf16", "original_bf16", "bf16 against bf16: ours against the package's model"),
    ("ours_bf16", "ours", "what bf16 autocast gives ours"),
    ("original_bf16", "original", "what bf16 autocast gives the original"),
    ("ours", "ours_keep_all", "recomputing cheap activations instead of saving them"),
    ("ours_compiled", "ours", "what torch.compile gives ours"),
    ("ours_compiled_bf16", "ours_bf16", "what torch.compile gives ours in bf16"),
]


class Impl:
    """A model and a closure ``step()`` doing forward + backward + optimizer step."""

    def __init__(self, name: str, model: torch.nn.Module, make_inputs, run):
        self.name, self.model, self.make_inputs, self.run = name, model.train(), make_inputs, run
        self.bf16, self.device = name.endswith(BF16), CPU
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        self.times, self.mem, self.loss, self.flops = [], [], None, None
        self.warmup_s = None
        self.forward = None  # what the steps call instead of the model (e.g. compiled), if set

    def to(self, device: torch.device) -> Impl:
        """The model and a fresh optimizer on ``device`` (``--device``)."""
        self.device, self.model = device, self.model.to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        return self

    def inputs(self, graphs: list):
        """The model's inputs for ``graphs``, on its device."""
        x = self.make_inputs(graphs)
        return (
            {k: v.to(self.device) for k, v in x.items()}
            if isinstance(x, dict)
            else x.to(self.device)
        )

    def loss_of(self, inputs, bf16: bool = False, model=None) -> torch.Tensor:
        """The loss of ``model`` (default: :attr:`forward`, else the model) on ``inputs``."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16 or self.bf16):
            model = model if model is not None else self.forward or self.model
            return self.run(model, inputs)

    def count_flops(self, inputs, bf16: bool = False) -> int:
        """Matmul FLOPs of forward + backward on ``inputs``, of the eager model (a compiled
        :attr:`forward` runs the same products), :func:`benchmarks.common.count_flops`."""
        return count_flops(self.model, lambda: self.loss_of(inputs, bf16, self.model))

    def step(self, inputs, bf16: bool = False) -> float:
        """One step; bf16 autocast when ``bf16`` (``--bf16``) or the row is a ``_bf16`` one."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_of(inputs, bf16)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def _reference_impl(name: str) -> Impl:
    def run(m, d):
        return nll(reference_forward(m, d), d["S"], d["mask"])

    model = reference_model(checkpointed=base_name(name) == "original_training")
    return Impl(name, model, reference_batch_inputs, run)


def _port_impl(name: str) -> Impl:
    import torch_cluster
    import torch_geometric.llm.models.protein_mpnn as port_module
    from torch_geometric.llm.models import ProteinMPNN as Port

    # PyG 2.8's knn_graph needs pyg-lib (no wheel for this torch); torch_cluster's
    # knn_graph builds the same graph (PyG's own backend before pyg-lib).
    port_module.knn_graph = torch_cluster.knn_graph
    model = Port(
        hidden_dim=HIDDEN,
        num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_neighbors=K,
        dropout=DROPOUT,
        augment_eps=EPS,
    )

    def run(m, b):
        lp = m(
            b.coords, b.seq, b.mask.float(), b.design_mask.float(), b.residue_idx, b.chain + 1,
            b.batch,
        )  # fmt: skip
        return nll(lp, b.seq, b.mask)

    return Impl(name, model, Batch.from_data_list, run)


def _ours_impl(name: str) -> Impl:
    kind = base_name(name)
    modes = Modes(
        split=False if kind == "ours_concat" else None,
        activation_checkpointing=kind == "ours_checkpointing",
        recompute_activations=kind != "ours_keep_all",
    )
    model = ProteinMPNN(
        hidden_dim=HIDDEN,
        num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS,
        k_neighbors=K,
        augment_eps=EPS,
        dropout=DROPOUT,
        modes=modes,
    )
    compiled = kind == "ours_compiled"
    forward = maybe_compile(model, True, CPU) if compiled else model
    if isinstance(forward, Compiled):  # inductor's partitioner picks what to recompute
        model.set_modes(recompute_activations=False)

    def run(m, b):
        return nll(m(b), b.seq, b.mask)

    impl = Impl(name, model, Batch.from_data_list, run)
    impl.forward = forward if compiled else None  # the steps call it; FLOPs count the model
    return impl


BUILDERS = {
    "original": _reference_impl,
    "original_training": _reference_impl,
    "pyg_port": _port_impl,
    "ours": _ours_impl,
    "ours_concat": _ours_impl,
    "ours_checkpointing": _ours_impl,
    "ours_keep_all": _ours_impl,
    "ours_compiled": _ours_impl,
}


def build(names: list[str], seed: int, device: torch.device = CPU) -> list[Impl]:
    """The implementations ``names`` on ``device``, each initialised from ``seed`` (the
    reference models share their initial weights, as do ours)."""
    impls = []
    for name in names:
        if base_name(name) not in BUILDERS:
            raise SystemExit(
                f"unknown implementation {name!r} (--impls: one of {list(BUILDERS)}, "
                f"each also as NAME{BF16} for bf16 autocast)"
            )
        torch.manual_seed(seed)
        impls.append(BUILDERS[base_name(name)](name).to(device))
    return impls


def _fixed_mmap_threshold(nbytes: int = 131072) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residues", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--impls",
        default="original,original_training,pyg_port,ours",
        help=f"comma-separated, any of {', '.join(BUILDERS)}; NAME{BF16}: NAME in bf16 autocast",
    )
    ap.add_argument("--with-concat", action="store_true", help="also time ours_concat")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for every model")
    ap.add_argument("--data", type=Path, default=TRAIN, help="JSONL(.gz) of protein records")
    ap.add_argument("--max-length", type=int, default=None, help="leave out longer records")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument(
        "--peak-n",
        type=int,
        default=None,
        help="matrix size of the peak FLOP/s measurement (default: by device; small for quick "
        "checks: a 2,048-wide bf16 product takes tens of seconds on a CPU without native bf16 "
        "kernels)",
    )
    ap.add_argument(
        "--flops",
        choices=("warmup", "batch", "off"),
        default="warmup",
        help="count model FLOPs on the warm-up batch, scaled to the batch by its tokens "
        "(default; seconds on a CPU), on the batch itself (one more step each), or not",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    a.device = torch.device(a.device)
    a.names = list(dict.fromkeys(a.impls.split(",") + (["ours_concat"] if a.with_concat else [])))
    return a


def tokens(inputs) -> int:
    """Positions a step computes on: residues of a graph batch, ``B x L_max`` of a padded one."""
    return inputs["mask"].numel() if isinstance(inputs, dict) else inputs.num_nodes


def time_steps(impls: list[Impl], inputs: dict, warm: list, a, n_res: int, log) -> None:
    """One seeded warm-up step each, then ``a.repeats`` interleaved rounds (rotating order),
    each step seeded alike; times and peak memory are appended to each ``Impl``."""
    for im in impls:  # warm-up: allocator, kernels, lazy imports (and compilation)
        torch.manual_seed(a.seed)
        warm_inputs = im.inputs(warm)
        t0 = time.perf_counter()
        im.step(warm_inputs, a.bf16)
        im.warmup_s = time.perf_counter() - t0
        if a.flops != "off":  # model FLOPs: on the warm-up batch scaled by tokens, or exact
            x = warm_inputs if a.flops == "warmup" else inputs[im.name]
            im.flops = im.count_flops(x, a.bf16) * tokens(inputs[im.name]) / tokens(x)
    dev = a.device
    for r in range(a.repeats):
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        for im in order:
            base = reset_peak_memory(dev)
            rss = (resident_mb() or 0.0) if dev.type == "cpu" else base
            torch.manual_seed(a.seed + r)
            peak.sync(dev)
            t0 = time.perf_counter()
            im.loss = im.step(inputs[im.name], a.bf16)
            peak.sync(dev)
            im.times.append(time.perf_counter() - t0)
            im.mem.append(peak_memory_mb(dev) - min(base, rss))
            log(
                f"round {r + 1}/{a.repeats} {im.name:18s} {im.times[-1]:8.2f} s "
                f"{n_res / im.times[-1]:8.1f} res/s  peak +{im.mem[-1]:.0f} MiB  loss {im.loss:.3f}"
            )


def comparisons(rows: dict) -> list[dict]:
    """Every pair of :data:`COMPARISONS` whose two rows ran: residues/s and peak-memory ratios."""
    out = []
    for first, second, what in COMPARISONS:
        if first in rows and second in rows:
            a, b = rows[first], rows[second]
            out.append(
                {
                    "first": first,
                    "second": second,
                    "what": what,
                    "speed": round(a["residues_per_s"] / b["residues_per_s"], 3),
                    "memory": round(a["peak_mem_mb"] / b["peak_mem_mb"], 3)
                    if b["peak_mem_mb"] > 0
                    else None,
                }
            )
    return out


def main(argv=None) -> dict:
    a = parse_args(argv)
    _fixed_mmap_threshold()
    if a.threads:
        torch.set_num_threads(a.threads)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)
    info = machine()
    graphs = pick_graphs(a.residues, a.seed, a.data, a.max_length)
    warm = pick_graphs(min(1000, a.residues), a.seed + 1, a.data, a.max_length)
    n_res = sum(g.num_nodes for g in graphs)
    padded = len(graphs) * max(g.num_nodes for g in graphs)
    log(f"{len(graphs)} chains, {n_res} residues, {padded} padded tokens for the original")
    impls = build(a.names, a.seed, a.device)
    inputs = {im.name: im.inputs(graphs) for im in impls}
    time_steps(impls, inputs, warm, a, n_res, log)
    precisions = ["bf16" if a.bf16 or im.bf16 else "fp32" for im in impls]
    peaks = peak.measure_peaks(a.device, precisions, a.peak_n) if a.flops != "off" else {}
    res = {
        "command": command("benchmarks.train_step", argv),
        "data": shown_path(a.data),
        "residues": n_res,
        "chains": len(graphs),
        "padded_tokens": padded,
        "repeats": a.repeats,
        "precision": "bf16" if a.bf16 else "fp32",
        "config": {"hidden": HIDDEN, "layers": f"{LAYERS}+{LAYERS}", "k": K},
        "machine": finished(info),
        "memory": "peak RSS during the step minus RSS before it (VmHWM, MiB)"
        if a.device.type == "cpu"
        else "torch.cuda.max_memory_allocated during the step minus memory_allocated before (MiB)",
        "device": str(a.device),
        "flops": FLOPS_BASIS[a.flops],
        "peak_flops": peaks,
        "impls": {im.name: row(im, a, n_res, peaks) for im in impls},
    }
    res.update(ratios({k: v["residues_per_s"] for k, v in res["impls"].items()}))
    res["comparisons"] = comparisons(res["impls"])
    return emit(res, a, _table)


def row(im: Impl, a, n_res: int, peaks: dict) -> dict:
    """The JSON row of one implementation: what it is, its times, memory, loss and FLOPs."""
    med = statistics.median(im.times)
    out = {
        "description": describe(im.name),
        "checkpointing": base_name(im.name) in CHECKPOINTED,
        "precision": "bf16" if a.bf16 or im.bf16 else "fp32",
        "median_s": round(med, 3),
        "residues_per_s": round(n_res / med, 1),
        "times_s": [round(t, 3) for t in im.times],
        "peak_mem_mb": round(statistics.median(im.mem), 1),
        "parameters": sum(p.numel() for p in im.model.parameters()),
        "last_loss": round(im.loss, 4),
        "warmup_s": round(im.warmup_s, 3),
    }
    if base_name(im.name) == "ours_compiled":  # its warm-up step compiled the model
        out["compile_s"] = round(im.warmup_s, 3)
        out["compiled"] = isinstance(im.forward, Compiled) and im.forward.failed is None
    if im.flops is not None:
        out["flops_per_step"] = round(im.flops)
        out.update(utilisation(im.flops, med, peaks.get(out["precision"])))
    return out


def ratios(rate: dict) -> dict:
    """``ours_over_X`` and ``ours_bf16_over_X``: residues/s of ours over each other row."""
    out = {}
    for ours, others in (
        ("ours", ("original", "original_training", "pyg_port", "ours_concat")),
        ("ours_bf16", ("original", "original_training", "original_bf16")),
    ):
        for other in others:
            if ours in rate and other in rate:
                out[f"{ours}_over_{other}"] = round(rate[ours] / rate[other], 3)
    return out


def _table(res: dict) -> str:
    rows = [
        f"{res['residues']} residues, {res['repeats']} repeats, {res['precision']}, "
        f"{res['machine']['threads']} threads on {res['machine']['cpu']}",
        f"{'impl':18s} {'median s':>9s} {'res/s':>8s} {'peak MiB':>9s} {'util':>6s}  what",
    ]
    for k, v in res["impls"].items():
        util = f"{100 * v['utilisation']:5.1f}%" if "utilisation" in v else "   n/a"
        rows.append(
            f"{k:18s} {v['median_s']:9.2f} {v['residues_per_s']:8.1f} {v['peak_mem_mb']:9.0f}"
            f" {util}  {v['description']}"
        )
    for c in res["comparisons"]:
        mem = "n/a" if c["memory"] is None else f"{c['memory']:.2f}x"
        rows.append(
            f"{c['first']} / {c['second']}: {c['speed']:.2f}x residues/s, {mem} memory"
            f" ({c['what']})"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
