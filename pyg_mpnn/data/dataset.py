"""Map-style dataset over a folder written by ``pyg_mpnn.data.prepare``: format 2 shards, or
Foldcomp databases read in place (``--foldcomp-in-place``, :mod:`pyg_mpnn.data.inplace`)."""

from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from pyg_mpnn.data.codec import decode_record
from pyg_mpnn.data.inplace import BACKEND as FOLDCOMP
from pyg_mpnn.data.store import SPLIT_ALIASES, Names, NoDataset, ShardError, open_index
from pyg_mpnn.errors import BadValue
from pyg_mpnn.io.foldcomp import record_from_fcz
from pyg_mpnn.io.record import SPLITS, ProteinRecord, to_data

ROW_FIELDS = ("shard", "offset", "nbytes", "crc")  # what reading a record needs from the index


class _RowReader:
    """Index values of one row read with ``os.pread`` (a few bytes), not through the memory
    maps: a page fault maps a whole folio of a column around the row (64 kB to 2 MB), so over
    an epoch of random rows a worker would map every page of every column it reads --
    gigabytes at 214M rows, all counted as its own memory. Columns that are not memory maps
    are indexed directly."""

    def __init__(self, path: Path, cols: dict, lo: int):
        self.path, self.fd = path, None
        self.cols = {k: cols[k] for k in (*ROW_FIELDS, "name_offsets", "name_bytes")}
        self.lo = lo  # the split's first row

    def _pread(self, col, i: int, count: int = 1):
        if not isinstance(col, np.memmap):
            return col[i : i + count]
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        size = col.dtype.itemsize
        return np.frombuffer(os.pread(self.fd, size * count, col.offset + size * i), col.dtype)

    def values(self, i: int) -> tuple[int, int, int, int]:
        """``(shard, offset, nbytes, crc)`` of split item ``i``."""
        return tuple(int(self._pread(self.cols[k], self.lo + i)[0]) for k in ROW_FIELDS)

    def name(self, i: int) -> str:
        a, b = (int(x) for x in self._pread(self.cols["name_offsets"], self.lo + i, 2))
        return bytes(self._pread(self.cols["name_bytes"], a, b - a)).decode()


class ProteinDataset(Dataset):
    """Proteins of a prepared folder as PyG ``Data`` graphs (fields: see ``to_data``).

    Args:
        root: dataset folder (``index.npz``, ``meta.json``, and ``shards/`` unless it indexes
            Foldcomp databases in place).
        split: ``"train"``, ``"valid"``, ``"test"`` or ``None`` for all.
        transform: optional callable applied to each ``Data`` (e.g. ``KNNEdges``).
        cache_shards: open shard (or database) files kept.
        backbone: ``"full"`` or ``"ca"``: which residues are present (``mask``) in the graphs,
            as :func:`~pyg_mpnn.io.record.to_data` (``"ca"`` for a CA-only model).

    Opening is O(1) in the dataset size: the index columns are memory maps and a
    split is a contiguous row range, so ``lengths``, ``clusters``, ``plddt`` (mean pLDDT, NaN
    if none), ``sources`` and ``names`` are views that read pages only when touched. A payload
    that cannot be read raises :class:`~pyg_mpnn.data.store.ShardError` naming the shard file
    and the record; other items stay readable.

    A folder that indexes Foldcomp databases in place (``meta["backend"] == "foldcomp"``) reads
    the same way: one ``os.pread`` of the record's bytes from its database (opened lazily in
    each worker), the CRC32 checked, then decoded with Foldcomp
    (:func:`~pyg_mpnn.io.foldcomp.record_from_fcz`); a damaged record raises ``ShardError``
    naming the database, the record and its byte range.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        transform=None,
        cache_shards: int = 4,
        backbone: str = "full",
    ):
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.backbone = backbone
        self._cache_size = cache_shards
        if split is not None and split not in SPLIT_ALIASES:
            raise BadValue(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        self._open()

    def _open(self) -> None:
        self.meta, cols = open_index(self.root)
        self.backend = self.meta.get("backend", "shards")
        self._databases = [Path(p) for p in self.meta.get("databases", [])]
        missing = [str(p) for p in self._databases if not p.is_file()]
        if missing:
            raise NoDataset(
                f"{self.root}: its Foldcomp database {missing[0]} is missing; put it back or "
                f"index the databases again (`python -m pyg_mpnn.data.prepare DB ... "
                f"--foldcomp-in-place --out {self.root} --overwrite`)"
            )
        self._cache: OrderedDict[int, int] = OrderedDict()  # shard -> open file descriptor
        if self.split is None:
            lo, hi = 0, len(cols["length"])
        else:
            lo, hi = self.meta["split_ranges"][SPLITS[SPLIT_ALIASES[self.split]]]
        self.names = Names(cols["name_bytes"], cols["name_offsets"], lo, hi)
        self.lengths = cols["length"][lo:hi]
        self.clusters = cols["cluster"][lo:hi]
        self.plddt = cols["plddt"][lo:hi]
        self.sources = cols["source"][lo:hi]
        self._shard, self._offset = cols["shard"][lo:hi], cols["offset"][lo:hi]
        self._nbytes, self._crc = cols["nbytes"][lo:hi], cols["crc"][lo:hi]
        self._rows = _RowReader(self.root / "index.npz", cols, lo)

    # Memory maps and file descriptors are reopened in a new process, never pickled.
    def __getstate__(self):
        return {
            "root": self.root,
            "split": self.split,
            "transform": self.transform,
            "_cache_size": self._cache_size,
            "backbone": self.backbone,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return len(self.lengths)

    def shard_path(self, i: int) -> Path:
        """The shard file (or Foldcomp database) that holds item ``i``."""
        return self._shard_path(int(self._shard[i]))

    def _shard_path(self, shard: int) -> Path:
        if self.backend == FOLDCOMP:
            return self._databases[shard]
        return self.root / "shards" / f"{shard:05d}.bin"

    def _cached(self, shard: int, load):
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        value = self._cache[shard] = load()
        if len(self._cache) > self._cache_size:
            os.close(self._cache.popitem(last=False)[1])
        return value

    def record(self, i: int) -> ProteinRecord:
        """The :class:`ProteinRecord` of item ``i`` (decoded from its shard)."""
        i = int(i) + (len(self) if i < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} outside a dataset of {len(self)}")
        shard, offset, nbytes, crc = self._rows.values(i)
        path, name = self._shard_path(shard), self._rows.name(i)
        where = f"record {name!r} (bytes {offset}..{offset + nbytes})"
        kind = "database" if self.backend == FOLDCOMP else "shard"

        def load():
            try:
                return os.open(path, os.O_RDONLY)
            except OSError as e:
                raise ShardError(path, f"missing or unreadable {kind} ({e.strerror})") from e

        # pread never moves a file position, so descriptors inherited by forked workers are safe.
        fd = self._cached(shard, load)
        blob = os.pread(fd, nbytes, offset)
        if len(blob) != nbytes:
            raise ShardError(path, f"{where}: truncated {kind}, read {len(blob)} of {nbytes} bytes")
        if zlib.crc32(blob) != crc:
            raise ShardError(path, f"{where}: checksum mismatch, the {kind} is corrupted")
        try:
            if self.backend == FOLDCOMP:
                return record_from_fcz(blob, name, source=f"{path}:{name}")
            return decode_record(blob)
        except Exception as e:
            raise ShardError(path, f"{where}: undecodable ({type(e).__name__}: {e})") from e

    def __getitem__(self, i: int):
        data = to_data(self.record(i), self.backbone)
        return self.transform(data) if self.transform is not None else data
