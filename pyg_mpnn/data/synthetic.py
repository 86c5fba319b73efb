"""Synthetic large indexes over a small real dataset, for scale tests and benchmarks.

:func:`tile_index` writes a format 2 folder with ``n`` index rows whose payload columns
(shard, offset, nbytes, crc, length) point, round robin, at the records of a real prepared
folder: every row decodes to a real protein with its true length, while clusters, splits and
names are synthetic. The shards are symlinked, not copied, so a 10M-row folder costs only its
index (about 50 bytes a row).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from pyg_mpnn.atomic import atomic_write
from pyg_mpnn.data.store import FORMAT, PAYLOAD_COLUMNS, ROW_COLUMNS, open_index, write_index
from pyg_mpnn.io.record import SPLITS


def tile_index(
    template: str | Path,
    out: str | Path,
    n: int,
    mean_cluster_size: float = 3.0,
    valid_frac: float = 0.05,
    test_frac: float = 0.05,
    seed: int = 0,
    chunk: int = 2_000_000,
) -> dict:
    """Write an ``n``-row format 2 index at ``out`` over the shards of ``template``.

    Cluster ids are ``0..n/mean_cluster_size`` (random sizes), whole clusters go to a split
    by hash; names are ``syn{row}``. Memory: a few arrays of ``n`` (about 60 bytes a row).
    """
    template, out = Path(template), Path(out)
    meta_t, cols_t = open_index(template)  # a folder of the current FORMAT, or an error
    out.mkdir(parents=True, exist_ok=True)
    link = out / "shards"
    if not link.exists():
        os.symlink((template / "shards").resolve(), link)
    rng = np.random.default_rng(seed)
    m = len(cols_t["length"])
    src = np.arange(n, dtype=np.int64) % m
    n_clusters = max(1, int(n / mean_cluster_size))
    cluster = rng.integers(0, n_clusters, n)
    u = (cluster * 2654435761 % 10_000) / 10_000
    split = np.where(u < test_frac, 2, np.where(u < test_frac + valid_frac, 1, 0))
    cols = {k: np.asarray(cols_t[k])[src] for k in PAYLOAD_COLUMNS}
    cols.update(cluster=cluster, split=split, source=np.zeros(n, np.int16))
    # names "syn<row>" without a Python string per row
    digits = np.maximum(1, np.floor(np.log10(np.maximum(np.arange(n), 1))).astype(np.int64) + 1)
    lens = 3 + digits
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    name_bytes = np.empty(offsets[-1], np.uint8)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        text = "".join(f"syn{i}" for i in range(lo, hi)).encode()
        name_bytes[offsets[lo] : offsets[hi]] = np.frombuffer(text, np.uint8)
    cols.update(name_bytes=name_bytes, name_offsets=offsets)
    del src, u
    assert all(k in cols for k in ROW_COLUMNS)
    return write_index(
        out,
        cols,
        {
            "shards": meta_t.get("shards"),
            "sources": [f"synthetic tiling of {template}"],
            "synthetic": {
                "template": str(template),
                "seed": seed,
                "mean_cluster_size": mean_cluster_size,
            },
        },
    )


# -- AlphaFold-DB size, streamed ------------------------------------------------------------
def cluster_sizes(n: int, clusters: int, tail: float = 1.5, seed: int = 0) -> np.ndarray:
    """``clusters`` heavy-tailed sizes summing to ``n``: 1 + a Lomax (Pareto II, shape
    ``tail``) share of the ``n - clusters`` rows left, rounded by largest remainder (many
    singletons, a few clusters of hundreds of thousands at 214M rows and 2.3M clusters)."""
    if not 1 <= clusters <= n:
        raise ValueError(f"need 1 <= clusters <= rows, got {clusters} clusters for {n} rows")
    x = np.random.default_rng(seed).pareto(tail, clusters)
    share = x * ((n - clusters) / x.sum())
    del x
    sizes = np.floor(share).astype(np.int64)
    short = n - clusters - int(sizes.sum())
    if short:
        share -= sizes
        sizes[np.argpartition(share, -short)[-short:]] += 1
    return sizes + 1


def _name_total(k: int) -> int:
    """Bytes of the names ``syn0 .. syn{k-1}``."""
    total, d = 3 * k + min(k, 10), 2  # rows 0..9: one digit
    while 10 ** (d - 1) < k:
        total += d * (min(k, 10**d) - 10 ** (d - 1))
        d += 1
    return total


def _names(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of ``syn{lo} .. syn{hi-1}`` and their lengths, without a string per row."""
    parts, lens = [], []
    d = len(str(lo))
    while lo < hi:
        end = min(hi, 10**d)
        r = np.arange(lo, end, dtype=np.int64)
        a = np.empty((len(r), 3 + d), np.uint8)
        a[:, :3] = np.frombuffer(b"syn", np.uint8)
        for k in range(d):
            a[:, 3 + k] = 48 + (r // 10 ** (d - 1 - k)) % 10
        parts.append(a.ravel())
        lens.append(np.full(len(r), 3 + d, np.int64))
        lo, d = end, d + 1
    return np.concatenate(parts), np.concatenate(lens)


def _member(zf: zipfile.ZipFile, name: str, dtype, n: int, chunks) -> None:
    """Stream a ``.npy`` member of ``n`` values of ``dtype`` from the arrays ``chunks``."""
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (n,)})
        written = 0
        for c in chunks:
            c = np.ascontiguousarray(c, dtype=dtype)
            f.write(c.data)
            written += len(c)
        assert written == n, (name, written, n)


def _layout(n: int, clusters: int, tail: float, seed: int, valid_frac: float, test_frac: float):
    """Cluster ids in (split, cluster) order, their sizes in that order, rows per split."""
    sizes = cluster_sizes(n, clusters, tail, seed)
    u = (np.arange(clusters, dtype=np.int64) * 2654435761 % 10_000) / 10_000
    split = np.where(u < test_frac, 2, np.where(u < test_frac + valid_frac, 1, 0)).astype(np.int8)
    del u
    order = np.argsort(split, kind="stable")
    per_split = np.bincount(split, weights=sizes, minlength=len(SPLITS)).astype(np.int64)
    return order, sizes[order], per_split


def _columns(tcols: dict, n: int, order, sizes, per_split, window: int):
    """``(name, dtype, values, chunks)`` of every index member, generated ``window`` rows at a
    time (rows cycle over the template's ``tcols``)."""
    m, cum = len(tcols["length"]), np.cumsum(sizes)
    windows = [(lo, min(n, lo + window)) for lo in range(0, n, window)]

    def cluster():
        k0 = 0
        while k0 < len(order):
            base = int(cum[k0 - 1]) if k0 else 0
            k1 = max(k0 + 1, int(np.searchsorted(cum, base + window, side="right")))
            yield np.repeat(order[k0:k1], sizes[k0:k1])
            k0 = k1

    def name_offsets():
        yield np.zeros(1, np.int64)
        for lo, hi in windows:
            yield _name_total(lo) + np.cumsum(_names(lo, hi)[1])

    split = (
        np.full(min(window, int(c) - lo), s, np.int8)
        for s, c in enumerate(per_split)
        for lo in range(0, int(c), window)
    )

    def tiled(col):
        return (col[np.arange(lo, hi) % m] for lo, hi in windows)

    payload = [(k, ROW_COLUMNS[k], n, tiled(tcols[k])) for k in PAYLOAD_COLUMNS]
    return payload + [
        ("cluster", ROW_COLUMNS["cluster"], n, cluster()),
        ("split", ROW_COLUMNS["split"], n, split),
        ("source", ROW_COLUMNS["source"], n, (np.zeros(hi - lo) for lo, hi in windows)),
        ("name_bytes", np.uint8, _name_total(n), (_names(lo, hi)[0] for lo, hi in windows)),
        ("name_offsets", np.int64, n + 1, name_offsets()),
    ]


def tile_index_large(
    template: str | Path,
    out: str | Path,
    n: int,
    clusters: int,
    tail: float = 1.5,
    valid_frac: float = 0.05,
    test_frac: float = 0.05,
    seed: int = 0,
    window: int = 1 << 22,
) -> dict:
    """:func:`tile_index` for hundreds of millions of rows: ``clusters`` clusters of
    :func:`cluster_sizes`, every column streamed into ``index.npz`` ``window`` rows at a time
    (memory: a few arrays of ``clusters``, not of ``n``). Rows come out sorted by (split,
    cluster) as :func:`~pyg_mpnn.data.store.write_index` writes them; names ``syn{row}``."""
    template, out = Path(template), Path(out)
    meta_t, cols_t = open_index(template)
    tcols = {k: np.asarray(cols_t[k]) for k in PAYLOAD_COLUMNS}
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "shards").exists():
        os.symlink((template / "shards").resolve(), out / "shards")
    order, sizes, per_split = _layout(n, clusters, tail, seed, valid_frac, test_frac)

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for column in _columns(tcols, n, order, sizes, per_split, window):
                _member(zf, *column)

    atomic_write(out / "index.npz", write)
    bounds = np.r_[0, np.cumsum(per_split)]
    meta = {
        "format": FORMAT,
        "records": n,
        "residues": _tiled_residues(tcols["length"], n),
        "split_ranges": {s: [int(bounds[i]), int(bounds[i + 1])] for i, s in enumerate(SPLITS)},
        "shards": meta_t.get("shards"),
        "sources": [f"synthetic tiling of {template}"],
        "synthetic": {"template": str(template), "seed": seed, "clusters": clusters, "tail": tail},
    }
    atomic_write(out / "meta.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return meta


def _tiled_residues(lengths: np.ndarray, n: int) -> int:
    """Residues of ``n`` rows that cycle over ``lengths``."""
    m = len(lengths)
    full, rest = divmod(n, m)
    return int(full * lengths.sum(dtype=np.int64) + lengths[:rest].sum(dtype=np.int64))
