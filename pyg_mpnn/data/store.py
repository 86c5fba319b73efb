"""The dataset folder that ``prepare`` writes and training reads.

Format 2 (``FORMAT = "pyg_mpnn.shards/2"``, written by :class:`ShardWriter`)::

    DIR/meta.json          format, counts, sources, split_ranges, options
    DIR/index.npz          columnar index, one row per record, rows sorted by (split, cluster):
                           the columns of ROW_COLUMNS (below) and the names, concatenated
                           UTF-8 in name_bytes uint8 + name_offsets int64
    DIR/shards/NNNNN.bin   record blobs back to back (:mod:`pyg_mpnn.data.codec`)
    DIR/summary.json       what prepare read, kept and skipped (by kind)
    DIR/skipped.jsonl      one line per skipped item: source, item, reason, kind

``index.npz`` is an *uncompressed* zip of ``.npy`` members, so :func:`open_index` memory-maps
every column in place (``np.memmap`` at the member's offset): opening a dataset reads a few
kilobytes whatever its size, and a sampler reads lengths and clusters without ever opening a
payload. Because rows are sorted by split, a split is a contiguous row range
(``meta["split_ranges"]``), i.e. a zero-copy slice. Shards, then index, then meta are written
atomically (temporary file + rename): a folder whose ``meta.json`` exists is complete.

Format 1 (``pyg_mpnn.shards/1``, torch-saved shards) is no longer read: prepare the sources
again.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from array import array
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from pyg_mpnn.atomic import atomic_write, write_error
from pyg_mpnn.data.codec import encode_record
from pyg_mpnn.errors import BadValue, UserError
from pyg_mpnn.io.record import SPLITS, ProteinRecord

FORMAT = "pyg_mpnn.shards/2"
# Split names a record's meta or a caller may use -> the split code stored (index in SPLITS).
SPLIT_ALIASES = {
    **{name: code for code, name in enumerate(SPLITS)},
    "training": SPLITS.index("train"),
    "val": SPLITS.index("valid"),
    "validation": SPLITS.index("valid"),
}
# The index's columns, one value per record, and their dtypes (the names are kept apart).
ROW_COLUMNS = {
    "length": np.int32,  # residues
    "num_chains": np.int16,
    "cluster": np.int64,
    "split": np.int8,  # index into SPLITS
    "source": np.int16,  # index into meta["sources"]
    "plddt": np.float32,  # mean pLDDT, NaN if none
    "shard": np.int32,  # shards/NNNNN.bin
    "offset": np.int64,  # byte offset of the record's blob in its shard
    "nbytes": np.int32,  # size of the blob
    "crc": np.uint32,  # CRC32 of the blob
}
# The columns of the payload a row points at (what a synthetic index copies from its template).
PAYLOAD_COLUMNS = ("length", "num_chains", "plddt", "shard", "offset", "nbytes", "crc")


class ShardError(RuntimeError):
    """A payload could not be read; ``str()`` names the shard file, the record and why."""

    def __init__(self, path, message: str | None = None):
        # One-argument form: DataLoader workers re-raise an exception as ``type(msg)``.
        super().__init__(str(path) if message is None else f"{path}: {message}")
        self.path = str(path) if message is not None else None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`pyg_mpnn.atomic.atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def sequence_cluster(record: ProteinRecord) -> int:
    """Fallback cluster id: records with identical (designed) sequences share a cluster."""
    seq = "".join(record.chain_seq(c) for c in np.nonzero(record.designed)[0]) or record.seq
    return zlib.crc32(seq.encode()) & 0x7FFFFFFF


def default_split(cluster: int, valid_frac: float = 0.1, test_frac: float = 0.1) -> int:
    """Deterministic split of a cluster from a hash of its id (whole clusters per split)."""
    u = (zlib.crc32(str(cluster).encode()) % 10_000) / 10_000
    return 2 if u < test_frac else 1 if u < test_frac + valid_frac else 0


# -- the index ------------------------------------------------------------------------
def _gather_names(name_bytes: np.ndarray, offsets: np.ndarray, order: np.ndarray):
    """Reorder variable-length names (concatenated bytes + offsets) by ``order``."""
    starts, lens = offsets[:-1][order], np.diff(offsets)[order]
    new_off = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    idx = np.repeat(starts - new_off[:-1], lens) + np.arange(new_off[-1], dtype=np.int64)
    return name_bytes[idx], new_off


def write_index(out: str | Path, columns: dict, meta: dict | None = None) -> dict:
    """Sort rows by (split, cluster), write ``index.npz`` then ``meta.json`` atomically.

    ``columns`` holds every name of :data:`ROW_COLUMNS` (one value per row) plus
    ``name_bytes``/``name_offsets``. Returns the meta written (with ``split_ranges``).
    """
    out = Path(out)
    cols = {k: np.asarray(columns[k], dtype=t) for k, t in ROW_COLUMNS.items()}
    n = len(cols["length"])
    order = np.lexsort((cols["cluster"], cols["split"]))
    if not np.array_equal(order, np.arange(n)):
        cols = {k: v[order] for k, v in cols.items()}
        cols["name_bytes"], cols["name_offsets"] = _gather_names(
            np.asarray(columns["name_bytes"], np.uint8),
            np.asarray(columns["name_offsets"], np.int64),
            order,
        )
    else:
        cols["name_bytes"] = np.asarray(columns["name_bytes"], np.uint8)
        cols["name_offsets"] = np.asarray(columns["name_offsets"], np.int64)
    bounds = np.searchsorted(cols["split"], np.arange(len(SPLITS) + 1))
    # savez stores members uncompressed: memory-mappable
    atomic_write(out / "index.npz", lambda f: np.savez(f, **cols))
    meta = {
        "format": FORMAT,
        "records": n,
        "residues": int(cols["length"].sum(dtype=np.int64)),
        "split_ranges": {s: [int(bounds[i]), int(bounds[i + 1])] for i, s in enumerate(SPLITS)},
        **(meta or {}),
    }
    atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=2).encode())
    return meta


def _mmap_npz(path: Path) -> dict[str, np.ndarray]:
    """Every member of an uncompressed ``.npz`` as a read-only memory map (no data read)."""
    cols = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:  # a compressed member must be read
                    cols[key] = np.lib.format.read_array(member)
                continue
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            if int(np.prod(shape)) == 0:
                cols[key] = np.empty(shape, dtype)
            else:
                cols[key] = np.memmap(
                    path,
                    dtype=dtype,
                    mode="r",
                    offset=f.tell(),
                    shape=shape,
                    order="F" if fortran else "C",
                )
    return cols


class Names:
    """Record names decoded on access from the index's concatenated bytes (no Python list
    of 10M strings is ever built). ``names[i]`` is a ``str``; ``names[array]`` a list.

    The names of rows ``lo:hi`` (a split) are addressed by arithmetic, not by an array of row
    numbers: at 214M rows such an array would be 1.7 GB in every process that opens the
    dataset."""

    def __init__(self, name_bytes, offsets, lo: int = 0, hi: int | None = None):
        self._bytes, self._off = name_bytes, offsets
        self._lo = lo
        self._len = (len(offsets) - 1 if hi is None else hi) - lo

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            i = int(i) + (self._len if i < 0 else 0)
            if not 0 <= i < self._len:
                raise IndexError(f"name {i} of {self._len}")
            r = self._lo + i
            return bytes(self._bytes[self._off[r] : self._off[r + 1]]).decode()
        if isinstance(i, slice):
            return [self[j] for j in range(self._len)[i]]
        return [self[int(j)] for j in np.arange(self._len)[i]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class NoDataset(UserError, FileNotFoundError):
    """A folder that is not a (complete) dataset folder."""


def open_index(root: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, columns)`` of a dataset folder; the columns are memory maps."""
    root = Path(root)
    path = root / "index.npz"
    if not path.exists():
        raise NoDataset(
            f"{root}: not a pyg_mpnn dataset folder (no index.npz); "
            "make one with `python -m pyg_mpnn.data.prepare SRC --out DIR`"
        )
    meta_path = root / "meta.json"
    if not meta_path.exists():
        raise NoDataset(
            f"{root}: incomplete or old dataset folder (no meta.json); prepare it again with "
            f"`python -m pyg_mpnn.data.prepare SRC --out {root}`"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise BadValue(
            f"{root}: dataset format {meta.get('format')!r}, this version reads {FORMAT}; "
            f"prepare it again with `python -m pyg_mpnn.data.prepare SRC --out {root}`"
        )
    return meta, _mmap_npz(path)


def read_index(root: str | Path) -> dict:
    """The index columns (memory maps), and ``name`` a :class:`Names`."""
    meta, cols = open_index(root)
    cols["name"] = Names(cols["name_bytes"], cols["name_offsets"])
    return cols


def _typecode(dtype) -> str:
    """The :mod:`array` typecode with the kind and size of numpy ``dtype``."""
    dtype = np.dtype(dtype)
    for code in "bBhHiIlLqQfd":
        if np.dtype(code) == dtype and array(code).itemsize == dtype.itemsize:
            return code
    raise TypeError(f"no array typecode for {dtype}")


class ShardWriter:
    """Append records to ``shards/NNNNN.bin``; ``close()`` writes the index and meta.

    A shard is closed after ``shard_size`` records or ``shard_bytes`` bytes. A write that fails
    (e.g. ``ENOSPC``, the disk is full) raises an ``OSError`` naming the shard file and the free
    space, after removing the shard's temporary file; the folder has no ``meta.json`` then, so
    it is never read as a complete dataset.
    """

    def __init__(self, out: str | Path, shard_size: int = 256, shard_bytes: int = 64 << 20):
        self.out = Path(out)
        (self.out / "shards").mkdir(parents=True, exist_ok=True)
        self.shard_size, self.shard_bytes = shard_size, shard_bytes
        self._cols = {k: array(_typecode(t)) for k, t in ROW_COLUMNS.items()}
        self._names = bytearray()
        self._name_off = array("q", [0])
        self._shard, self._in_shard, self._pos, self._file = 0, 0, 0, None

    def _path(self, shard: int, tmp: bool = False) -> Path:
        name = f"{shard:05d}.bin"
        return self.out / "shards" / (f".{name}.tmp" if tmp else name)

    def add(
        self,
        record: ProteinRecord,
        cluster: int | None = None,
        split: int | None = None,
        source: int = 0,
    ) -> None:
        """Append one record; ``cluster``/``split`` default to the sequence hash rules."""
        cluster = sequence_cluster(record) if cluster is None else int(cluster)
        split = default_split(cluster) if split is None else int(split)
        blob = encode_record(record)
        if self._file is None:
            with self._writing():
                self._file = open(self._path(self._shard, tmp=True), "wb")
        c = self._cols
        plddt = (
            np.nan
            if record.plddt is None or not len(record.plddt)
            else float(np.mean(record.plddt))
        )
        for key, value in (
            ("length", record.num_residues),
            ("num_chains", len(record.chain_ids)),
            ("cluster", cluster),
            ("split", split),
            ("source", source),
            ("plddt", plddt),
            ("shard", self._shard),
            ("offset", self._pos),
            ("nbytes", len(blob)),
            ("crc", zlib.crc32(blob)),
        ):
            c[key].append(value)
        self._names += record.name.encode()
        self._name_off.append(len(self._names))
        with self._writing():
            self._file.write(blob)
        self._pos += len(blob)
        self._in_shard += 1
        if self._in_shard >= self.shard_size or self._pos >= self.shard_bytes:
            self._flush()

    @contextmanager
    def _writing(self):
        """Re-raise a failed write naming the shard; remove its temporary file."""
        try:
            yield
        except OSError as e:
            tmp = self._path(self._shard, tmp=True)
            if self._file is not None:
                with suppress(OSError):
                    self._file.close()
                self._file = None
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            raise write_error(self._path(self._shard), e) from e

    def _flush(self) -> None:
        if self._file is None:
            return
        with self._writing():
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._path(self._shard, tmp=True), self._path(self._shard))
        self._file, self._in_shard, self._pos = None, 0, 0
        self._shard += 1

    def close(self, meta: dict | None = None) -> dict:
        """Close the last shard, write ``index.npz`` and ``meta.json``; return the meta."""
        self._flush()
        cols = {
            k: np.frombuffer(v, dtype=v.typecode) if len(v) else np.zeros(0)
            for k, v in self._cols.items()
        }
        cols["name_bytes"] = np.frombuffer(bytes(self._names), np.uint8)
        cols["name_offsets"] = np.frombuffer(self._name_off, np.int64)
        return write_index(self.out, cols, {"shards": self._shard, **(meta or {})})
