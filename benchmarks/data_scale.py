"""Data loading at scale: the original loader's approach against pyg_mpnn's shards.

    python -m benchmarks.data_scale --json [--sizes 10000 100000 1000000 10000000]

**pyg_mpnn** (per size N): a format 2 index of N synthetic rows tiled over the shards of
``../shared/data/structures`` prepared once (:func:`pyg_mpnn.data.synthetic.tile_index`:
rows point at real records with their true lengths; clusters, splits, names synthetic,
3 rows per cluster on average). A fresh process then opens the train split, builds the
cluster-sampled token-budget sampler (10,000 residues) and a 2-worker loader, and measures:
startup (process start excluded: open + first epoch plan + first batch), resident memory of
the main process and of each worker (RSS and USS, the part not shared), and batches/s.

**The original** (dauparas/ProteinMPNN training/utils.py, re-implemented here from its
description, not copied): ``build_training_clusters`` reads list.csv with ``csv.reader``,
parses two dates per row with ``dateutil`` and builds dicts of lists per cluster -- measured
on synthetic list.csv files made of the real rows of ``../shared/data/pdb_2021aug02_format``
(new chain ids, 3 rows per cluster). Training then waits for a first ``get_pdbs`` pass that
loads one assembly per training cluster (``loader_pdb``) and converts it into dicts of Python
lists of floats; ``3`` such passes each for train and valid are queued and their results held
in RAM. The per-example time (our ``iter_pdb2021``, which builds assemblies the same way, as a
stand-in for ``loader_pdb``) and the per-example memory of the original's dict layout
(tracemalloc) are measured on the real folder, then multiplied out (marked ``extrapolated``).

``--model-step`` also times one forward+backward of the ``base`` model on a ~10k-residue
batch, to compare with the loader's time per batch.

``--rows N [--clusters C1,C2] [--ranks R]``: the AlphaFold DB's size instead (214M rows), run
by :mod:`benchmarks.data_scale_rows` (its options apply).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks import data_scale_rows
from benchmarks.common import REPO, emit, machine, python_m

SHARED = REPO.parent / "shared" / "data"


def rss_mb(pid: int | None = None) -> dict:
    import psutil

    p = psutil.Process(pid)
    full = p.memory_full_info()
    return {"rss_mb": round(full.rss / 2**20, 1), "uss_mb": round(full.uss / 2**20, 1)}


# -- pyg_mpnn -------------------------------------------------------------------------
def child(root: str, batches: int, workers: int, max_tokens: int) -> dict:
    """Runs in a fresh process: startup, memory, batches/s of the shard loader."""
    import psutil

    t0 = time.perf_counter()
    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.data.loader import make_loader
    from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = ProteinDataset(root, "train")
    t_open = time.perf_counter() - t0
    sampler = TokenBudgetBatchSampler(ds.lengths, max_tokens, clusters=ds.clusters, seed=0)
    t0 = time.perf_counter()
    n_batches = len(sampler)  # the epoch plan
    t_plan = time.perf_counter() - t0
    loader = make_loader(ds, sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)
    t_first = time.perf_counter() - t0 - t_plan
    startup = t_open + t_plan + t_first
    mem_start = rss_mb()
    for _ in range(2 * workers + 1):  # drain what the workers prefetched during startup
        next(it)
    t0 = time.perf_counter()
    residues, got = 0, 0
    for _ in range(batches):
        b = next(it, None)
        if b is None:
            break
        residues += b.num_nodes
        got += 1
    dt = time.perf_counter() - t0
    kids = psutil.Process().children(recursive=True)
    out = {
        "rows": int(ds.meta["records"]),
        "train_items": len(ds),
        "clusters_per_epoch": len(sampler._group()[1]),
        "batches_per_epoch": n_batches,
        "import_s": round(t_import, 2),
        "open_s": round(t_open, 4),
        "plan_s": round(t_plan, 2),
        "first_batch_s": round(t_first, 2),
        "startup_s": round(startup, 2),
        "main_after_startup": mem_start,
        "main": rss_mb(),
        "workers": [rss_mb(k.pid) for k in kids],
        "batches_per_s": round(got / dt, 2) if got else None,
        "residues_per_batch": round(residues / got),
    }
    del it
    return out


def run_child(root: Path, batches: int, workers: int, max_tokens: int) -> dict:
    cmd = [
        *python_m("benchmarks.data_scale"),
        "--child",
        str(root),
        "--batches",
        str(batches),
        "--workers",
        str(workers),
        "--max-tokens",
        str(max_tokens),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the original's approach ----------------------------------------------------------
def write_list_csv(path: Path, n: int, seed: int = 0) -> None:
    """``n`` rows made of the real list.csv rows, new chain ids, ~3 rows per cluster."""
    with open(SHARED / "pdb_2021aug02_format" / "list.csv") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, max(1, n // 3), n)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            r = list(rows[i % len(rows)])
            r[0] = f"s{i}_A"
            r[4] = str(int(cluster[i]))
            w.writerow(r)


def original_clusters(list_csv: Path, val_ids: set, test_ids: set, rescut=3.5, datcut="2030-01-01"):
    """What ``build_training_clusters`` does: csv rows filtered by resolution and by a
    dateutil-parsed deposition date, grouped into dicts ``cluster -> [[chain, hash], ...]``."""
    from dateutil import parser

    with open(list_csv) as f:
        reader = csv.reader(f)
        next(reader)
        rows = [
            [r[0], r[3], int(r[4])]
            for r in reader
            if float(r[2]) <= rescut and parser.parse(r[1]) <= parser.parse(datcut)
        ]
    train, valid, test = {}, {}, {}
    for chain, hsh, c in rows:
        target = valid if c in val_ids else test if c in test_ids else train
        target.setdefault(c, []).append([chain, hsh])
    return train, valid, test


def measure_original_parse(n: int, tmp: Path) -> dict:
    path = tmp / f"list_{n}.csv"
    write_list_csv(path, n)
    val = set(range(0, n // 3, 20))
    test = set(range(1, n // 3, 20))
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    train, valid, testd = original_clusters(path, val, test)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {
        "rows": n,
        "parse_s": round(dt, 2),
        "parse_peak_mb": round(peak / 2**20, 1),
        "train_clusters": len(train),
        "valid_clusters": len(valid),
    }
    path.unlink()
    return out


def original_dict(rec) -> dict:
    """A record in the layout ``get_pdbs`` produces (Python lists of floats per atom)."""
    d = {"name": rec.name, "masked_list": [], "visible_list": [], "seq": rec.seq}
    for c, cid in enumerate(rec.chain_ids):
        sel = rec.chain_index == c
        d[f"seq_chain_{cid}"] = "".join(np.array(list(rec.seq))[sel])
        xyz = rec.coords[sel]
        d[f"coords_chain_{cid}"] = {
            f"{a}_chain_{cid}": xyz[:, k].tolist() for k, a in enumerate(("N", "CA", "C", "O"))
        }
        (d["masked_list"] if rec.designed[c] else d["visible_list"]).append(cid)
    d["num_of_chains"] = len(rec.chain_ids)
    return d


def measure_original_example() -> dict:
    """Per example: seconds to build an assembly, bytes held in the original's layout."""
    from pyg_mpnn.io.pdb2021 import iter_pdb2021
    from pyg_mpnn.io.record import ProteinRecord

    t0 = time.perf_counter()
    recs = [
        r for r in iter_pdb2021(SHARED / "pdb_2021aug02_format") if isinstance(r, ProteinRecord)
    ]
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    held = [original_dict(r) for r in recs]  # timed without tracemalloc (it slows Python)
    t_convert = time.perf_counter() - t0
    del held
    gc.collect()
    tracemalloc.start()
    held = [original_dict(r) for r in recs]
    mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    residues = sum(r.num_residues for r in recs)
    del held
    return {
        "examples": len(recs),
        "residues": residues,
        "load_s_per_residue": (t_load) / residues,
        "convert_s_per_residue": t_convert / residues,
        "bytes_per_residue": round(mem / residues),
        "ours_bytes_per_residue": 27,
    }


def original_estimate(
    n: int,
    parse_s_per_row: float,
    ex: dict,
    mean_len: float,
    cores: int = 2,
    queued: int = 3,
    cap: int = 1_000_000,
) -> dict:
    """Startup and memory of the original at ``n`` rows of the synthetic index (3 rows per
    cluster, 90 % train, examples of ``mean_len`` residues, at most ``cap`` =
    ``num_examples_per_epoch`` examples per pass)."""
    clusters = n / 3
    train_c, valid_c = min(cap, 0.9 * clusters), min(cap, 0.05 * clusters)
    per_ex_s = mean_len * (ex["load_s_per_residue"] + ex["convert_s_per_residue"])
    first_pass = train_c * per_ex_s / cores
    held = queued * (train_c + valid_c) * ex["bytes_per_residue"] * mean_len
    return {
        "rows": n,
        "startup_s": round(n * parse_s_per_row + first_pass, 1),
        "first_get_pdbs_s": round(first_pass, 1),
        "held_in_ram_gb": round(held / 2**30, 2),
        "extrapolated": True,
    }


# -- base model step --------------------------------------------------------------------
def model_step(template: Path, max_tokens: int = 10_000) -> dict:
    import torch

    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.data.loader import make_loader
    from pyg_mpnn.data.sampler import TokenBudgetBatchSampler
    from pyg_mpnn.nn.model import ProteinMPNN
    from pyg_mpnn.train.loss import training_loss

    ds = ProteinDataset(template)
    s = TokenBudgetBatchSampler(ds.lengths, max_tokens, seed=0)
    batch = max(make_loader(ds, s), key=lambda b: b.num_nodes)
    model = ProteinMPNN(
        hidden_dim=128, num_encoder_layers=3, num_decoder_layers=3, k_neighbors=48, augment_eps=0.2
    )
    t0 = time.perf_counter()
    loss = training_loss(model(batch), batch.seq, batch.mask & batch.design_mask, 0.1)
    loss.backward()
    return {
        "residues": int(batch.num_nodes),
        "step_s": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
    }


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000]
    )
    ap.add_argument("--original-sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=10_000)
    ap.add_argument(
        "--model-step",
        action="store_true",
        help="time one base step (needs several GB of RAM at 10k residues)",
    )
    ap.add_argument("--skip-ours", action="store_true", help="only the original's side")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def ours_at(n: int, template: Path, work: Path, args) -> dict:
    """The shard loader on a synthetic index of ``n`` rows (built once, kept below 1M)."""
    from pyg_mpnn.data.synthetic import tile_index

    root = work / f"n{n}"
    t0 = time.perf_counter()
    if not (root / "meta.json").exists():
        tile_index(template, root, n)
    build = time.perf_counter() - t0
    row = run_child(root, args.batches, args.workers, args.max_tokens)
    row["index_build_s"] = round(build, 1)
    row["index_mb"] = round((root / "index.npz").stat().st_size / 2**20, 1)
    if n >= 1_000_000:
        shutil.rmtree(root)
    return row


def original_side(sizes: list[int], original_sizes: list[int], tmeta: dict, work: Path) -> dict:
    """The original's parse measured at ``original_sizes``, its per-example cost, and its
    startup and memory extrapolated to ``sizes``."""
    mean_len = tmeta["residues"] / tmeta["records"]  # what the synthetic rows average
    measured = [measure_original_parse(n, work) for n in original_sizes]
    per_row = max(m["parse_s"] / m["rows"] for m in measured)
    ex = measure_original_example()
    return {
        "parse_measured": measured,
        "example": ex,
        "parse_s_per_row": per_row,
        "mean_residues": round(mean_len),
        "estimates": [original_estimate(n, per_row, ex, mean_len) for n in sizes],
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--rows" or a.startswith("--rows=") for a in argv):
        return data_scale_rows.main(argv)
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batches, args.workers, args.max_tokens)))
        return 0
    from pyg_mpnn.data.prepare import prepare

    work = Path(args.work or tempfile.mkdtemp(prefix="data_scale_")).resolve()  # children: cwd=REPO
    template = work / "template"
    if not (template / "meta.json").exists():
        prepare([str(SHARED / "structures")], template, progress=False)
    tmeta = json.loads((template / "meta.json").read_text())
    result = {
        "machine": {**machine(), "platform": sys.platform},
        "template": {
            "records": tmeta["records"],
            "residues": tmeta["residues"],
            "bytes": sum(f.stat().st_size for f in (template / "shards").iterdir()),
        },
        "ours": [],
        "original": {},
    }
    for n in [] if args.skip_ours else args.sizes:
        result["ours"].append(ours_at(n, template, work, args))
        print(json.dumps(result["ours"][-1]), file=sys.stderr)
    result["original"] = original_side(args.sizes, args.original_sizes, tmeta, work)
    if args.model_step:
        result["model_step"] = model_step(template, args.max_tokens)
    emit(result, args, json.dumps)  # without --json: the JSON on one line
    return 0


if __name__ == "__main__":
    sys.exit(main())
