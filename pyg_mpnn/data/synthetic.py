"""Synthetic large indexes over a small real dataset, for scale tests and benchmarks.

:func:`tile_index` writes a format 2 folder with ``n`` index rows whose payload columns
(shard, offset, nbytes, crc, length) point, round robin, at the records of a real prepared
folder: every row decodes to a real protein with its true length, while clusters, splits and
names are synthetic. The shards are symlinked, not copied, so a 10M-row folder costs only its
index (about 50 bytes a row).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pyg_mpnn.data.store import PAYLOAD_COLUMNS, ROW_COLUMNS, open_index, write_index


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
