"""The dataset folder that ``prepare`` writes and training reads.

Layout (``FORMAT = "pyg_mpnn.shards/1"``)::

    DIR/meta.json       format, counts, sources, options
    DIR/index.npz       one row per record: name, length, num_chains, cluster, split, shard, offset
    DIR/shards/NNNNN.pt torch-saved lists of compact records (``weights_only`` loadable)
    DIR/summary.json    what prepare read, kept and skipped (by reason)
    DIR/skipped.jsonl   one line per skipped item: source, item, reason, kind

The columnar index lives apart from the payloads, so samplers read lengths and clusters
without opening a shard. Index and meta are written last and atomically: a folder with an
``index.npz`` is complete.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from pyg_mpnn.alphabet import ALPHABET, encode
from pyg_mpnn.io.record import ProteinRecord

FORMAT = "pyg_mpnn.shards/1"
SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"train": 0, "training": 0, "valid": 1, "val": 1, "validation": 1, "test": 2}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sequence_cluster(record: ProteinRecord) -> int:
    """Fallback cluster id: records with identical (designed) sequences share a cluster."""
    seq = "".join(record.chain_seq(c) for c in np.nonzero(record.designed)[0]) or record.seq
    return zlib.crc32(seq.encode()) & 0x7FFFFFFF


def default_split(cluster: int, valid_frac: float = 0.1, test_frac: float = 0.1) -> int:
    """Deterministic split of a cluster from a hash of its id (whole clusters per split)."""
    u = (zlib.crc32(str(cluster).encode()) % 10_000) / 10_000
    return 2 if u < test_frac else 1 if u < test_frac + valid_frac else 0


def _jsonable(value):
    """Meta for JSON: tuple keys become ``"a|b"`` strings, containers recurse."""
    if isinstance(value, dict):
        return {("|".join(map(str, k)) if isinstance(k, tuple) else str(k)): _jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def record_to_payload(record: ProteinRecord) -> dict:
    return {
        "name": record.name,
        "seq": torch.tensor(encode(record.seq), dtype=torch.uint8),
        "coords": torch.from_numpy(record.coords),
        "chain_index": torch.from_numpy(record.chain_index.astype(np.int16)),
        "chain_ids": list(record.chain_ids),
        "designed": torch.from_numpy(record.designed),
        "plddt": None if record.plddt is None else torch.from_numpy(
            np.asarray(record.plddt, np.float32)),
        "residue_ids": list(record.residue_ids) if record.residue_ids else None,
        "meta": json.dumps(_jsonable(record.meta), default=str),
    }


def payload_to_record(p: dict) -> ProteinRecord:
    return ProteinRecord(
        name=p["name"],
        seq="".join(ALPHABET[i] for i in p["seq"].tolist()),
        coords=p["coords"].numpy(),
        chain_index=p["chain_index"].numpy().astype(np.int64),
        chain_ids=list(p["chain_ids"]),
        designed=p["designed"].numpy(),
        plddt=None if p.get("plddt") is None else p["plddt"].numpy(),
        residue_ids=p.get("residue_ids"),
        meta=json.loads(p["meta"]),
    )


class ShardWriter:
    """Append records; shards of ``shard_size`` records; ``close()`` writes the index."""

    def __init__(self, out: str | Path, shard_size: int = 256):
        self.out = Path(out)
        (self.out / "shards").mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self._buf: list[dict] = []
        self._rows: dict[str, list] = {k: [] for k in
                                       ("name", "length", "num_chains", "cluster", "split",
                                        "shard", "offset")}
        self._shard = 0

    def add(self, record: ProteinRecord, cluster: int | None = None,
            split: int | None = None) -> None:
        cluster = sequence_cluster(record) if cluster is None else int(cluster)
        split = default_split(cluster) if split is None else int(split)
        r = self._rows
        r["name"].append(record.name)
        r["length"].append(record.num_residues)
        r["num_chains"].append(len(record.chain_ids))
        r["cluster"].append(cluster)
        r["split"].append(split)
        r["shard"].append(self._shard)
        r["offset"].append(len(self._buf))
        self._buf.append(record_to_payload(record))
        if len(self._buf) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        path = self.out / "shards" / f"{self._shard:05d}.pt"
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(self._buf, tmp)
        os.replace(tmp, path)
        self._buf = []
        self._shard += 1

    def close(self, meta: dict | None = None) -> dict:
        self._flush()
        r = self._rows
        tmp = self.out / ".index.tmp.npz"
        np.savez(tmp, name=np.array(r["name"], dtype=str),
                 length=np.array(r["length"], np.int32),
                 num_chains=np.array(r["num_chains"], np.int32),
                 cluster=np.array(r["cluster"], np.int64),
                 split=np.array(r["split"], np.int8),
                 shard=np.array(r["shard"], np.int32),
                 offset=np.array(r["offset"], np.int32))
        os.replace(tmp, self.out / "index.npz")
        meta = {"format": FORMAT, "records": len(r["name"]),
                "residues": int(np.sum(r["length"], dtype=np.int64)),
                "shards": self._shard, **(meta or {})}
        atomic_write_bytes(self.out / "meta.json", json.dumps(meta, indent=2).encode())
        return meta


def read_index(root: str | Path) -> dict[str, np.ndarray]:
    path = Path(root) / "index.npz"
    if not path.exists():
        raise FileNotFoundError(f"{root}: not a pyg_mpnn dataset folder (no index.npz); "
                                "make one with `python -m pyg_mpnn.data.prepare SRC --out DIR`")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
