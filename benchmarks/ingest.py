"""Ingestion throughput of ``prepare``: structures/s and residues/s, printed as JSON.

    python -m benchmarks.ingest [SRC] [--workers 1 2]

Default SRC: ../shared/data/structures (211 files: PDB, mmCIF, PQR, plain and gzipped).
"""

import argparse
import tempfile
import time

from benchmarks.common import REPO, emit, finished, machine
from pyg_mpnn.data.prepare import prepare


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", default=str(REPO.parent / "shared/data/structures"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true", help="(output is always JSON)")
    args = ap.parse_args(argv)
    info, results = machine(), []
    for w in args.workers:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            s = prepare([args.src], out, progress=False, workers=w)
            dt = time.perf_counter() - t0
        results.append(
            {
                "workers": w,
                "seconds": round(dt, 2),
                "files": s["files"],
                "records": s["records"],
                "residues": s["residues"],
                "structures_per_s": round(s["files"] / dt, 2),
                "residues_per_s": round(s["residues"] / dt),
            }
        )
    return emit({"source": args.src, "machine": finished(info), "results": results}, args)


if __name__ == "__main__":
    main()
