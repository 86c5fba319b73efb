"""Data loading at the AlphaFold DB's size: a synthetic index of ``--rows`` rows (214M for
AFDB v4) over real records, once per cluster structure of ``--clusters``.

    python -m benchmarks.data_scale_rows --json --rows 214000000 --clusters 2300000,52000000 \\
        --ranks 8 --work SCRATCH --out benchmarks/results/data_scale_214m.json

(also ``python -m benchmarks.data_scale --rows ...``). Per cluster structure,
:func:`pyg_mpnn.data.synthetic.tile_index_large` streams the index into ``--work`` (rows point
at the records ``prepare`` makes of ``../shared/data/structures``; clusters of heavy-tailed
sizes, :func:`~pyg_mpnn.data.synthetic.cluster_sizes`). Then, in fresh processes:

* **one rank**: open the train split, a cluster-sampled token-budget sampler and a 2-worker
  loader. Open time, first batch after the open, RSS / USS of the main process and of each
  worker, batches/s, the epoch plan's time (planned in the background while batches flow), the
  next epoch's plan (started when the current one is complete) and the first batch across the
  epoch boundary, resumed two batches before the end;
* **``--ranks`` ranks** as processes (``num_replicas``/``rank``, no process group): each plans
  its share of epoch 0 and reports its steps, plan time and RSS / USS; the parent checks that
  the ranks' batches hold one member of every train cluster, each once, and that every rank
  runs the same number of steps.

The index is removed after its structure (``--keep`` keeps it). Nothing is written in the
repository but ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, command, emit, finished, machine, python_m, result_parser

SHARED = REPO.parent / "shared" / "data"


def mem(pid: int | None = None) -> dict:
    import psutil

    full = psutil.Process(pid).memory_full_info()
    return {"rss_mb": round(full.rss / 2**20, 1), "uss_mb": round(full.uss / 2**20, 1)}


def _planned_s(plan) -> float:
    """Seconds the (background) plan took, once it is complete."""
    len(plan)
    return round(plan.seconds, 2)


def one_rank(root: str, batches: int, workers: int, max_tokens: int, block_rows: int) -> dict:
    """Runs in a fresh process: the loader of one rank, from open to the epoch boundary."""
    import psutil

    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.data.loader import make_loader
    from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

    t0 = time.perf_counter()
    ds = ProteinDataset(root, "train")
    t_open = time.perf_counter() - t0
    sampler = TokenBudgetBatchSampler(
        ds.lengths, max_tokens, clusters=ds.clusters, seed=0, block_rows=block_rows
    )
    loader = make_loader(ds, sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)
    t_first = time.perf_counter() - t0 - t_open
    main_first = mem()
    for _ in range(2 * workers + 1):  # what the workers prefetched during startup
        next(it)
    t1, got, residues = time.perf_counter(), 0, 0
    for _ in range(batches):
        residues += next(it).num_nodes
        got += 1
    rate = got / (time.perf_counter() - t1)
    workers_mem = [mem(k.pid) for k in psutil.Process().children(recursive=True)]
    plan = sampler.plan()
    plan_s, n = _planned_s(plan), len(plan)
    del it
    len(sampler)  # the next epoch's plan started when this one was complete
    next_s = _planned_s(sampler.plan(1))
    state = {"epoch": 0, "consumed": n - 2, "seed": 0, "num_items": len(ds)}
    loader.load_state_dict(state)
    tail = [list(b.name) for b in loader]
    planned = [[ds.record(i).name for i in plan.batch(k)] for k in (n - 2, n - 1)]
    t3 = time.perf_counter()
    next(iter(loader))
    boundary = time.perf_counter() - t3
    return {
        "train_items": len(ds),
        "plan_blocks": plan.num_blocks,
        "batches_per_epoch": n,
        "open_s": round(t_open, 3),
        "first_batch_s": round(t_first, 2),
        "startup_s": round(t_open + t_first, 2),
        "epoch_plan_s": plan_s,
        "next_epoch_plan_s": next_s,
        "epoch_s_at_this_rate": round(n / rate, 1),
        "resumed_tail_exact": tail == planned,
        "first_batch_of_next_epoch_s": round(boundary, 3),
        "main_after_first_batch": main_first,
        "main_with_two_plans": mem(),
        "workers": workers_mem,
        "batches_per_s": round(rate, 2),
        "residues_per_batch": round(residues / got) if got else None,
    }


def rank_plan(root: str, rank: int, world: int, args) -> dict:
    """Runs in a fresh process: rank ``rank`` of ``world`` plans its share of epoch 0."""
    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.data.sampler import TokenBudgetBatchSampler

    ds = ProteinDataset(root, "train")
    before = mem()
    t0 = time.perf_counter()
    sampler = TokenBudgetBatchSampler(
        ds.lengths,
        args.max_tokens,
        clusters=ds.clusters,
        seed=0,
        num_replicas=world,
        rank=rank,
        block_rows=args.block_rows,
    )
    plan = sampler.plan()
    steps = len(plan)
    plan_s = time.perf_counter() - t0
    after = mem()
    np.save(args.items, np.concatenate([b[0] for b in plan.blocks]))
    return {
        "rank": rank,
        "steps": steps,
        "plan_s": round(plan_s, 2),
        "before": before,
        "after": after,
    }


def child(args, *extra) -> dict:
    cmd = [*python_m("benchmarks.data_scale_rows"), *map(str, extra)]
    cmd += ["--max-tokens", str(args.max_tokens), "--batches", str(args.batches)]
    cmd += ["--workers", str(args.workers), "--block-rows", str(args.block_rows)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)


def result_of(proc) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"child exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def train_clusters(root: Path) -> int:
    """Clusters of the train split, counted in a streaming pass."""
    from pyg_mpnn.data.dataset import ProteinDataset

    c, step, count = ProteinDataset(root, "train").clusters, 1 << 24, 0
    for lo in range(0, len(c), step):
        w = np.asarray(c[max(lo - 1, 0) : lo + step])
        count += int((w[1:] != w[:-1]).sum()) + (lo == 0)
    return count


def ranks_at(root: Path, world: int, args) -> dict:
    """``world`` ranks as processes at once; each sample once, equal steps, per-rank memory."""
    from pyg_mpnn.data.dataset import ProteinDataset

    outs = [root / f"rank{r}.npy" for r in range(world)]
    procs = [
        child(args, "--rank-child", root, "--rank", r, "--world", world, "--items", o)
        for r, o in enumerate(outs)
    ]
    ranks = [result_of(p) for p in procs]
    items = np.concatenate([np.load(o) for o in outs])
    for o in outs:
        o.unlink()
    clusters = ProteinDataset(root, "train").clusters
    used = np.sort(np.asarray(clusters[np.sort(items)]))
    expected = train_clusters(root)
    return {
        "world": world,
        "ranks": ranks,
        "equal_steps": len({r["steps"] for r in ranks}) == 1,
        "items": len(items),
        "train_clusters": expected,
        "each_cluster_once": bool(len(items) == expected and np.all(used[1:] != used[:-1])),
        "each_item_once": bool(len(np.unique(items)) == len(items)),
    }


def structure(n: int, clusters: int, template: Path, work: Path, args) -> dict:
    from pyg_mpnn.data.synthetic import cluster_sizes, tile_index_large

    root = work / f"rows{n}_clusters{clusters}"
    t0 = time.perf_counter()
    if not (root / "meta.json").exists():
        tile_index_large(template, root, n, clusters, tail=args.tail)
    build = time.perf_counter() - t0
    sizes = cluster_sizes(n, clusters, args.tail)
    nbytes = (root / "index.npz").stat().st_size
    row = {
        "clusters": clusters,
        "cluster_size_max": int(sizes.max()),
        "singleton_clusters": int((sizes == 1).sum()),
        "index_build_s": round(build, 1),
        "index_gb": round(nbytes / 2**30, 2),
        "index_bytes_per_row": round(nbytes / n, 1),
    }
    del sizes
    row["one_rank"] = result_of(child(args, "--rows-child", root))
    print(json.dumps(row), file=sys.stderr)
    if args.ranks:
        row["ranks"] = ranks_at(root, args.ranks, args)
    if not args.keep:
        shutil.rmtree(root)
    return row


def parse_args(argv=None) -> argparse.Namespace:
    ap = result_parser(__doc__)
    ap.add_argument("--rows", type=int, default=214_000_000, help="index rows")
    ap.add_argument("--clusters", default="2300000,52000000", help="cluster counts, commas")
    ap.add_argument("--tail", type=float, default=1.5, help="Pareto shape of cluster sizes")
    ap.add_argument("--ranks", type=int, default=8, help="ranks of the planning check (0: none)")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=10_000)
    ap.add_argument(
        "--block-rows", type=int, default=1 << 21, help="the sampler's block_rows (its default)"
    )
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the indexes in --work")
    for hidden in ("--rows-child", "--rank-child", "--items"):
        ap.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rows_child:
        res = one_rank(
            args.rows_child, args.batches, args.workers, args.max_tokens, args.block_rows
        )
        print(json.dumps(res))
        return 0
    if args.rank_child:
        print(json.dumps(rank_plan(args.rank_child, args.rank, args.world, args)))
        return 0
    from pyg_mpnn.data.prepare import prepare

    work = Path(args.work or tempfile.mkdtemp(prefix="data_scale_rows_")).resolve()
    template = work / "template"
    if not (template / "meta.json").exists():
        prepare([str(SHARED / "structures")], template, progress=False)
    tmeta = json.loads((template / "meta.json").read_text())
    info = {**machine(), "platform": sys.platform}
    result = {
        "command": command("benchmarks.data_scale_rows", argv),
        "template": {"records": tmeta["records"], "residues": tmeta["residues"]},
        "rows": args.rows,
        "max_tokens": args.max_tokens,
        "workers": args.workers,
        "block_rows": args.block_rows,
        "structures": [
            structure(args.rows, int(c), template, work, args) for c in args.clusters.split(",")
        ],
    }
    result["machine"] = finished(info)
    emit(result, args, json.dumps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
