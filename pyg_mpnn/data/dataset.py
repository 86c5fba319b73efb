"""Map-style dataset over a folder written by ``pyg_mpnn.data.prepare``."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pyg_mpnn.data.store import SPLIT_ALIASES, payload_to_record, read_index
from pyg_mpnn.io.record import ProteinRecord, to_data


class ProteinDataset(Dataset):
    """Proteins of a prepared folder as PyG ``Data`` graphs (fields: see ``to_data``).

    Args:
        root: dataset folder (``index.npz``, ``shards/``).
        split: ``"train"``, ``"valid"``, ``"test"`` or ``None`` for all.
        transform: optional callable applied to each ``Data`` (e.g. ``KNNEdges``).
        cache_shards: number of decoded shards kept in memory.

    Attributes read from the index only (no payload is opened): ``lengths``,
    ``clusters``, ``names``.
    """

    def __init__(self, root: str | Path, split: str | None = None, transform=None,
                 cache_shards: int = 4):
        self.root = Path(root)
        index = read_index(self.root)
        if split is None:
            rows = np.arange(len(index["length"]))
        else:
            if split not in SPLIT_ALIASES:
                raise ValueError(f"unknown split {split!r}; use train, valid or test")
            rows = np.nonzero(index["split"] == SPLIT_ALIASES[split])[0]
        self.split = split
        self.names = index["name"][rows]
        self.lengths = index["length"][rows].astype(np.int64)
        self.clusters = index["cluster"][rows]
        self._shard = index["shard"][rows]
        self._offset = index["offset"][rows]
        self.transform = transform
        self._cache: OrderedDict[int, list] = OrderedDict()
        self._cache_size = cache_shards

    def __len__(self) -> int:
        return len(self.lengths)

    def _load_shard(self, shard: int) -> list:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        path = self.root / "shards" / f"{shard:05d}.pt"
        try:
            payloads = torch.load(path, weights_only=True)
        except Exception as e:  # a clear message naming the shard
            raise RuntimeError(f"{path}: unreadable shard ({type(e).__name__}: {e})") from e
        self._cache[shard] = payloads
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return payloads

    def record(self, i: int) -> ProteinRecord:
        return payload_to_record(self._load_shard(int(self._shard[i]))[int(self._offset[i])])

    def __getitem__(self, i: int):
        data = to_data(self.record(i))
        return self.transform(data) if self.transform is not None else data
