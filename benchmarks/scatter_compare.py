"""Message sums over edges sorted by target: scatter, the dense layout and CSR segment reductions,
alone and inside a full training step.

    python -m benchmarks.scatter_compare --json --residues 5000 \
        --out benchmarks/results/scatter_compare_<cpu>.json
    python -m benchmarks.scatter_compare --tiny --json    # seconds: the CI check (no timing)

The batch is train_step's seeded pick of whole chains (``--data``, default the shared db5.5
train set, else the embedded data's DB5.5 parts) with the loader's kNN plan; k = 48.

* ``aggregation``: ``sum_j m_ij`` of random ``[E, 128]`` messages into their targets, forward
  and forward + backward, each way: ``scatter`` (PyG's scatter-add, what a MessagePassing layer
  does by default), ``dense`` (``train.aggregation: dense``: ``[N, K, H]`` in edge order, summed
  over K), ``csr`` (torch-scatter's ``segment_csr``, when installed) and ``segment_reduce``
  (torch's own, the fallback without torch-scatter);
* ``train_step``: ours at the base size (width 128, 3 + 3 layers, noise 0.2, dropout 0.1,
  fused Adam) with ``aggregation`` dense and csr: interleaved rounds after a warm-up step,
  each seeded alike; median seconds, residues/s and the losses (equal up to rounding).

Run it on an idle machine: the numbers are only as good as the machine is quiet.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from benchmarks.common import shown_path
from benchmarks.train_step import TRAIN, machine, pick_graphs
from pyg_mpnn.nn import aggregate
from pyg_mpnn.nn.aggregate import layout_of_plan, sum_by_target
from pyg_mpnn.nn.graph import graph_plan, planned_knn_edges
from pyg_mpnn.nn.model import ProteinMPNN

REPO = Path(__file__).resolve().parents[1]
K, HIDDEN = 48, 128


def planned_batch(a: argparse.Namespace) -> Batch:
    graphs = pick_graphs(a.residues, a.seed, a.data, a.max_length)
    b = Batch.from_data_list(graphs)
    b.knn_plan = graph_plan(b.mask, b.batch, b.num_graphs)
    return b


def _sum_fns(edges: torch.Tensor, b: Batch) -> dict:
    """Each aggregation, as a function of the messages."""
    n, dst = b.num_nodes, edges[1]
    dense = layout_of_plan(b.knn_plan, K, n, "dense")
    csr = layout_of_plan(b.knn_plan, K, n, "csr")
    fns = {
        "scatter": lambda x: scatter(x, dst, 0, dim_size=n, reduce="sum"),
        "dense": lambda x: sum_by_target(x, dst, dense),
        "segment_reduce": lambda x: torch.segment_reduce(x, "sum", offsets=csr.ptr, initial=0),
    }
    if aggregate.torch_scatter is not None:
        fns["csr"] = lambda x: aggregate.torch_scatter.segment_csr(x, csr.ptr, reduce="sum")
    return fns


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * statistics.median(times), 3)


def time_aggregation(b: Batch, repeats: int) -> dict:
    """Forward and forward + backward milliseconds of each aggregation on ``[E, 128]``."""
    edges = planned_knn_edges(b.coords[:, 1], K, b.knn_plan)
    x = torch.randn(edges.size(1), HIDDEN, generator=torch.Generator().manual_seed(0))
    x.requires_grad_()
    out, ref = {}, None
    for name, fn in _sum_fns(edges, b).items():
        with torch.no_grad():
            y = fn(x)
        ref = y if ref is None else ref
        fwd_bwd = lambda fn=fn: fn(x).sum().backward()
        out[name] = {
            "forward_ms": _median_ms(lambda fn=fn: fn(x.detach()), repeats),
            "forward_backward_ms": _median_ms(fwd_bwd, repeats),
            "max_abs_diff_to_scatter": float((y - ref).abs().max()),
        }
    return {"edges": edges.size(1), "hidden": HIDDEN, "modes": out}


def time_train_steps(b: Batch, repeats: int, seed: int) -> dict:
    """Ours (base size) with dense and csr aggregation: interleaved seeded steps."""
    torch.manual_seed(seed)
    model = ProteinMPNN(hidden_dim=HIDDEN, k_neighbors=K, augment_eps=0.2, dropout=0.1).train()
    modes = ["dense", "csr"]
    opt = {m: torch.optim.Adam(model.parameters(), lr=0.0, fused=True) for m in modes}
    rows = {m: {"times_s": [], "losses": []} for m in modes}
    for r in range(repeats + 1):  # round 0: warm-up
        for mode in modes[r % 2 :] + modes[: r % 2]:
            model.set_modes(aggregation=mode)
            torch.manual_seed(seed + r)
            t0 = time.perf_counter()
            opt[mode].zero_grad(set_to_none=True)
            lp = model(b)
            loss = -lp.gather(1, b.seq[:, None])[b.mask].mean()
            loss.backward()
            opt[mode].step()  # lr 0: the same weights for every round
            if r:
                rows[mode]["times_s"].append(round(time.perf_counter() - t0, 4))
                rows[mode]["losses"].append(round(float(loss), 6))
    for row in rows.values():
        row["median_s"] = statistics.median(row["times_s"])
        row["residues_per_s"] = round(b.num_nodes / row["median_s"], 1)
    rows["csr/dense"] = round(rows["dense"]["median_s"] / rows["csr"]["median_s"], 3)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residues", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds of each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", type=Path, default=None, help="JSONL(.gz) of protein records")
    ap.add_argument("--max-length", type=int, default=None, help="leave out longer records")
    ap.add_argument("--tiny", action="store_true", help="a few hundred residues, one round (CI)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.tiny:
        a.residues, a.repeats, a.max_length = min(a.residues, 300), 1, a.max_length or 100
    if a.data is None:
        a.data = TRAIN if TRAIN.exists() and not a.tiny else REPO / "data" / "default.jsonl.gz"
    return a


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    b = planned_batch(a)
    print(f"{b.num_graphs} chains, {b.num_nodes} residues", file=sys.stderr)
    res = {
        "command": "python -m benchmarks.scatter_compare "
        + " ".join(sys.argv[1:] if argv is None else list(argv)),
        "data": shown_path(a.data),
        "residues": b.num_nodes,
        "chains": b.num_graphs,
        "k": K,
        "torch_scatter": getattr(aggregate.torch_scatter, "__version__", None),
        "machine": machine(),
        "aggregation": time_aggregation(b, a.repeats),
        "train_step": time_train_steps(b, a.repeats, a.seed),
    }
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.write_text(text + "\n")
    print(text if a.json else f"train step csr/dense speed: {res['train_step']['csr/dense']}")
    return res


if __name__ == "__main__":
    main()
