"""Foldcomp read in place against converted shards: disk, decoding, loading, conversion, and
what each costs at the AlphaFold DB's size.

    python -m benchmarks.foldcomp_backend --json [--cold drop] [--out FILE]

Databases: ``../shared/data/afdb/afdb_sample`` (24 real AlphaFold DB models; the copy in
``tests/fixtures/afdb`` without the shared data) and a larger one written into the scratch
folder from ``../shared/data/structures``: every protein chain of each file's first model
(standard amino acids, no hydrogens, altloc A, as Biopython reads it) compressed with
``foldcomp.compress``, in a forked child because Foldcomp aborts the process on some inputs
(those files are listed); ``--repeat K`` writes each chain K times, for a database larger than
the page cache.

Per database and backend (``shards``: ``prepare`` converts; ``foldcomp``: ``prepare
--foldcomp-in-place`` indexes where it is):

* bytes per residue on disk (shards + index.npz; database + .index + .lookup + index.npz);
* conversion: wall and CPU seconds of ``prepare`` in one process; entries/s and residues/s
  per core (CPU time);
* decode µs per residue: ``ProteinDataset.record(i)`` (read, CRC, decode) over up to 500
  entries spread over the dataset, best of 3 passes;
* the loader in a fresh process (``--workers`` 2, ``--max-tokens`` 10,000, every entry once an
  epoch): batches/s in the first epoch (cold with ``--cold``; timed when it has at least 4
  batches a worker) and in later epochs (warm). ``--cold drop`` drops the page cache before
  each loader process (``/proc/sys/vm/drop_caches``, as root; otherwise it says so and evicts
  the dataset's files instead); ``--cold fadvise`` only evicts the dataset's files
  (``posix_fadvise(DONTNEED)``, advisory); ``cold.method`` records which. Use ``--repeat`` so
  that an epoch has many batches, and a disk-backed ``--work`` folder (not a tmpfs).

Workers to keep a GPU fed: the step time of ``--max-tokens`` from a GPU suite result in
``benchmarks/results`` (``gpu_suite_*.json`` measured on a GPU), else from the original's A100
training log (10,000 tokens in about 0.55 s), and at 0.3 s; a worker's rate is the first
epoch's batches/s (else the later epochs') over the workers.

Projection (``projection.label`` says so): 214M entries of 300 residues. TB on disk from a
fit ``bytes = a + b * residues`` over the AFDB sample's records (and the index's bytes per
entry); hours on 64 cores from the residues/s per core of converting or indexing that sample,
assuming cores scale linearly and the disks keep up.
"""

from __future__ import annotations

import argparse
import faulthandler
import gzip
import io
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DATA,
    REPO,
    RESULTS,
    command,
    emit,
    finished,
    machine,
    python_m,
    result_parser,
    shown_path,
)

ENTRIES, RESIDUES, CORES = 214_000_000, 300, 64  # the AlphaFold DB v4, projected
ORIGINAL_A100 = (10_000, 0.55)  # the original's training log: tokens, seconds a step
GPU_STEP_S = 0.3


# -- the databases ------------------------------------------------------------------------
def sample_db() -> Path:
    shared = DATA / "afdb" / "afdb_sample"
    return shared if shared.is_file() else REPO / "tests" / "fixtures" / "afdb" / "afdb_sample"


def chains_fcz(path: Path) -> list[tuple[str, bytes]]:
    """``(name, FCZ)`` of each protein chain of the first model of a structure file."""
    import foldcomp
    from Bio.PDB import PDBIO, MMCIFParser, PDBParser, Select
    from Bio.PDB.Polypeptide import is_aa

    from pyg_mpnn.io.structure import structure_name

    class Chain(Select):
        def __init__(self, chain_id):
            self.chain_id = chain_id

        def accept_chain(self, c):
            return c.id == self.chain_id

        def accept_residue(self, r):
            return r.id[0] == " " and is_aa(r, standard=True)

        def accept_atom(self, a):
            return a.element != "H" and (not a.is_disordered() or a.get_altloc() in " A")

    parser = MMCIFParser(QUIET=True) if ".cif" in path.name else PDBParser(QUIET=True)
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rt") as f:
        model = next(iter(parser.get_structure("x", f)))
    out = []
    for chain in model:
        buf, writer = io.StringIO(), PDBIO()
        writer.set_structure(model)
        writer.save(buf, Chain(chain.id))
        if buf.getvalue().count("\nATOM") >= 20:  # at least a few residues
            name = f"{structure_name(path.name)}_{chain.id.strip() or '_'}"
            out.append((name, foldcomp.compress(name, buf.getvalue())))
    return out


def in_fork(fn, arg):
    """``fn(arg)`` in a forked child (a crash there costs only that call), or None."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        faulthandler.disable()  # an abort in Foldcomp is expected here, not worth a dump
        try:
            data = pickle.dumps(fn(arg))
        except Exception:
            data = pickle.dumps(None)
        with os.fdopen(write, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return pickle.loads(data) if status == 0 and data else None


def write_structures_db(db: Path, limit: int | None, repeat: int) -> dict:
    """A Foldcomp database of the shared structures' chains (each written ``repeat`` times)."""
    from pyg_mpnn.io.foldcomp import write_database

    files = sorted(
        p for p in (DATA / "structures").iterdir() if not p.name.endswith((".tsv", ".md"))
    )[:limit]
    t0, chains, failed = time.perf_counter(), [], []
    for path in files:
        got = in_fork(chains_fcz, path)
        if got is None:
            failed.append(path.name)
        chains += got or []
    entries = ((f"{n}_r{k}" if repeat > 1 else n, b) for k in range(repeat) for n, b in chains)
    write_database(db, entries)
    return {
        "files": len(files),
        "chains": len(chains),
        "entries": len(chains) * repeat,
        "failed_files": failed,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# -- what each backend costs --------------------------------------------------------------
def db_bytes(db: Path) -> int:
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", ".index", ".lookup"))


def folder_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def timed_prepare(db: Path, out: Path, in_place: bool) -> dict:
    """``prepare`` in this process: wall and CPU seconds, entries and residues per core-s."""
    from pyg_mpnn.data.prepare import prepare

    wall, cpu = time.perf_counter(), time.process_time()
    summary = prepare([str(db)], out, progress=False, foldcomp_in_place=in_place)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "entries": summary["records"],
        "residues": summary["residues"],
        "skipped": summary["skipped_total"],
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "entries_per_s_per_core": round(summary["records"] / cpu, 1),
        "residues_per_s_per_core": round(summary["residues"] / cpu),
    }


def decode_us_per_residue(root: Path, entries: int = 500, passes: int = 3) -> float:
    """``record(i)`` (pread, CRC, decode) over up to ``entries`` entries spread over the
    dataset, best of ``passes``, per residue."""
    from pyg_mpnn.data.dataset import ProteinDataset

    ds = ProteinDataset(root)
    picked = np.unique(np.linspace(0, len(ds) - 1, min(entries, len(ds))).astype(int))
    best = math.inf
    for _ in range(passes):
        t0 = time.perf_counter()
        for i in picked:
            ds.record(int(i))
        best = min(best, time.perf_counter() - t0)
    return round(best / int(np.asarray(ds.lengths)[picked].sum()) * 1e6, 3)


def size_fit(root: Path, extra: int = 0) -> dict:
    """``bytes = a + b * residues`` over the records of a dataset (payload only), and the
    bytes per entry of the index (with ``extra``: a database's .index and .lookup)."""
    from pyg_mpnn.data.store import open_index

    meta, cols = open_index(root)
    lengths, nbytes = np.asarray(cols["length"], float), np.asarray(cols["nbytes"], float)
    b, a = np.polyfit(lengths, nbytes, 1) if len(set(lengths)) > 1 else (nbytes.mean(), 0.0)
    index = ((root / "index.npz").stat().st_size + extra) / max(1, meta["records"])
    return {"bytes_per_entry": round(a, 1), "bytes_per_residue": round(b, 3), "index": index}


# -- the loader ---------------------------------------------------------------------------
def child(root: str, batches: int, workers: int, max_tokens: int) -> dict:
    """Runs in a fresh process: the first epoch (cold if the cache was dropped), then later
    epochs until ``batches`` batches (warm)."""
    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.data.loader import make_loader
    from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

    t0 = time.perf_counter()
    ds = ProteinDataset(root)
    # every entry once an epoch: the backends cluster repeated chains differently
    sampler = TokenBudgetBatchSampler(ds.lengths, max_tokens, clusters=None, seed=0)
    loader = make_loader(ds, sampler, num_workers=workers, persistent_workers=workers > 0)
    out = {}
    for phase in ("first_epoch", "later_epochs"):
        n, residues, start = 0, 0, time.perf_counter()
        while True:
            for b in loader:
                if "startup_s" not in out:  # timed from the first batch: start-up excluded
                    out["startup_s"] = round(time.perf_counter() - t0, 3)
                    start = time.perf_counter()
                    continue
                n, residues = n + 1, residues + b.num_nodes
            if phase == "first_epoch" or n >= batches:
                break
        dt = time.perf_counter() - start
        # a first epoch of a few batches is mostly what the workers prefetched at start-up
        timed = n >= 4 * max(1, workers) or phase != "first_epoch"
        out[phase] = {
            "batches": n,
            "seconds": round(dt, 3),
            "batches_per_s": round(n / dt, 2) if n and timed else None,
            "residues_per_batch": round(residues / n) if n else None,
        }
    return out


def drop_cache(how: str | None, files: list[Path]) -> dict:
    """Empty the page cache (``drop``, as root) or evict ``files`` from it (``fadvise``)."""
    if how is None:
        return {"method": None}
    note = None
    if how == "drop":
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return {"method": "drop_caches"}
        except OSError as e:
            note = f"could not drop the page cache ({e.strerror}): not root?"
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return {"method": "posix_fadvise DONTNEED (advisory)", "note": note}


def run_loader(root: Path, files: list[Path], args) -> dict:
    cold = drop_cache(args.cold, files)
    cmd = [*python_m("benchmarks.foldcomp_backend"), "--child", str(root)]
    cmd += ["--batches", str(args.batches), "--workers", str(args.workers)]
    cmd += ["--max-tokens", str(args.max_tokens)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "cold": cold}


def measure(db: Path, work: Path, args) -> dict:
    """Both backends on one database."""
    shards, inplace = work / "shards", work / "inplace"
    convert, index = timed_prepare(db, shards, False), timed_prepare(db, inplace, True)
    residues = convert["residues"]
    disk = {
        "shards": folder_bytes(shards),
        "foldcomp": db_bytes(db) + (inplace / "index.npz").stat().st_size,
    }
    shard_files = sorted((shards / "shards").iterdir())
    return {
        "database": shown_path(db),
        "entries": convert["entries"],
        "residues": residues,
        "bytes_on_disk": disk,
        "bytes_per_residue": {k: round(v / residues, 2) for k, v in disk.items()},
        "prepare": {"shards": convert, "foldcomp": index},
        "decode_us_per_residue": {
            "shards": decode_us_per_residue(shards),
            "foldcomp": decode_us_per_residue(inplace),
        },
        "record_size_fit": {
            "shards": size_fit(shards),
            "foldcomp": size_fit(inplace, db_bytes(db) - db.stat().st_size),
        },
        "loader": {
            "shards": run_loader(shards, shard_files, args),
            "foldcomp": run_loader(inplace, [db], args),
        },
    }


# -- what it means ------------------------------------------------------------------------
def gpu_step(max_tokens: int) -> dict:
    """Seconds of a GPU training step of ``max_tokens``: a GPU suite result, else the
    original's A100 log."""
    for path in sorted(RESULTS.glob("gpu_suite_*.json")):
        result = json.loads(path.read_text())
        if not (result.get("machine") or {}).get("gpu"):
            continue
        for size in sorted((result.get("train_step_summary") or {}).values(), key=str):
            rows = size.get("rows", {})
            row = rows.get("ours_bf16") or rows.get("ours") or {}
            if row.get("residues_per_s"):
                return {
                    "seconds": round(max_tokens / row["residues_per_s"], 4),
                    "source": f"GPU suite {shown_path(path)} ({result['machine']['gpu']})",
                }
    tokens, seconds = ORIGINAL_A100
    return {
        "seconds": round(seconds * max_tokens / tokens, 4),
        "source": "the original's A100 training log: 10,000 tokens in about 0.55 s "
        "(no GPU suite result in benchmarks/results)",
    }


def workers_to_feed(loader: dict, workers: int, step: dict) -> dict:
    """Workers whose batches keep up with one step of ``step["seconds"]`` and of 0.3 s, at a
    worker's rate in the first epoch (cold with ``--cold``) or, when that epoch was too short
    to time, in later ones."""
    out = {}
    for backend, run in loader.items():
        phase = "first_epoch" if run["first_epoch"]["batches_per_s"] else "later_epochs"
        rate = (run[phase]["batches_per_s"] or 0) / workers
        out[backend] = {
            "rate_from": phase,
            "per_worker_batches_per_s": round(rate, 3),
            "for_step": math.ceil(1 / (step["seconds"] * rate)) if rate else None,
            "for_0.3_s": math.ceil(1 / (GPU_STEP_S * rate)) if rate else None,
        }
    return out


def projection(basis: dict) -> dict:
    """TB on disk and hours on 64 cores at 214M entries of 300 residues (not measured)."""
    out = {
        "label": "projection, not measured: 214M entries x 300 residues from the AFDB "
        "sample's per-record sizes and per-core throughput, cores scaling linearly",
        "entries": ENTRIES,
        "residues_per_entry": RESIDUES,
        "cores": CORES,
    }
    total_residues = ENTRIES * RESIDUES
    for backend, fit in basis["record_size_fit"].items():
        per_entry = fit["bytes_per_entry"] + fit["bytes_per_residue"] * RESIDUES + fit["index"]
        rate = basis["prepare"][backend]["residues_per_s_per_core"]
        out[backend] = {
            "tb_on_disk": round(ENTRIES * per_entry / 1e12, 3),
            "hours_to_prepare": round(total_residues / (rate * CORES) / 3600, 2),
        }
    fit = basis["record_size_fit"]["foldcomp"]
    db_tb = ENTRIES * (fit["bytes_per_entry"] + fit["bytes_per_residue"] * RESIDUES)
    for backend in ("shards", "foldcomp"):  # both read the whole database once
        out[backend]["tb_read"] = round(db_tb / 1e12, 3)
    out["foldcomp"]["note"] = (
        "the database as downloaded plus the index; indexing is one sequential read of it, "
        "so on many cores the disk sets its time, not the CPU hours here"
    )
    out["shards"]["note"] = "shards plus the index; the Foldcomp download is no longer needed"
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = result_parser(__doc__)
    ap.add_argument("--limit", type=int, default=None, help="structure files (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="copies of each chain written")
    ap.add_argument("--batches", type=int, default=40, help="warm batches timed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=10_000)
    ap.add_argument("--cold", choices=("drop", "fadvise"), default=None)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batches, args.workers, args.max_tokens)))
        return 0
    info = machine()
    work = Path(args.work or tempfile.mkdtemp(prefix="foldcomp_backend_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        written = write_structures_db(work / "structures_db", args.limit, args.repeat)
        dbs = {"afdb_sample": sample_db(), "structures": work / "structures_db"}
        results = {name: measure(db, work / name, args) for name, db in dbs.items()}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["structures"]["written"] = written
    step = gpu_step(args.max_tokens)
    result = {
        "command": command("benchmarks.foldcomp_backend", argv),
        "machine": {**finished(info), "platform": sys.platform},
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "work", "out")},
        "databases": results,
        "gpu_step": step,
        "workers_to_feed": {
            name: workers_to_feed(r["loader"], args.workers, step) for name, r in results.items()
        },
        "projection": projection(results["afdb_sample"]),
    }
    emit(result, args, json.dumps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
