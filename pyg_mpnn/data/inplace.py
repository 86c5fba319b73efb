"""Foldcomp databases read in place: a dataset folder whose index points into the databases.

``python -m pyg_mpnn.data.prepare DB [DB ...] --out DIR --foldcomp-in-place [--clusters TSV]``
writes the same ``index.npz`` and ``meta.json`` as a shard folder (:mod:`pyg_mpnn.data.store`)
but no shards: ``meta["backend"]`` is ``"foldcomp"``, ``meta["databases"]`` the databases'
absolute paths, and a row's ``shard`` column is the number of its database, ``offset`` and
``nbytes`` the FCZ record's place in the data file, ``crc`` its CRC32. Lengths and mean pLDDT
come from each record's header and last bytes (:func:`~pyg_mpnn.io.foldcomp.iter_entries`),
so indexing reads every database once, front to back, and decodes nothing; the
:class:`~pyg_mpnn.data.dataset.ProteinDataset` decodes a record with Foldcomp when a loader
worker asks for it.

Clusters: from a TSV of ``member<TAB>representative`` lines (further columns ignored), as
AFDB's cluster files give them; AFDB names ``AF-<accession>-F<n>-model_v<k>`` and bare
accessions match each other. An entry the TSV does not list, or every entry without a TSV, is
its own cluster. A cluster id is a 63-bit hash of the representative's accession, so the same
TSV gives the same ids whatever the databases.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from pathlib import Path

import numpy as np

from pyg_mpnn.data.store import ROW_COLUMNS, _typecode, default_split, write_index
from pyg_mpnn.errors import UserError
from pyg_mpnn.io.foldcomp import FczEntry, is_foldcomp_db

BACKEND = "foldcomp"
_AFDB_NAME = re.compile(r"^AF-(.+)-F\d+-model_v\d+$")


def accession(name: str) -> str:
    """The UniProt accession of an AFDB name (``AF-P60713-F1-model_v4`` -> ``P60713``), or
    ``name`` itself."""
    m = _AFDB_NAME.match(name)
    return m.group(1) if m else name


def name_hash(name: str) -> int:
    """A non-negative 63-bit id of ``accession(name)``."""
    digest = hashlib.blake2b(accession(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class ClusterMap:
    """Entry name -> cluster id, from a ``member<TAB>representative`` TSV.

    Held as two sorted ``int64`` arrays of hashes (16 bytes a member), not as a dict of
    strings, so AFDB's 214M members fit in about 3.4 GB.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        members, reps = array("q"), array("q")
        try:
            with open(self.path) as f:
                for line_no, line in enumerate(f, start=1):
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) < 2 or not parts[0] or not parts[1]:
                        if line.strip():
                            raise UserError(
                                f"--clusters {self.path}: line {line_no} is not "
                                "member<TAB>representative"
                            )
                        continue
                    members.append(name_hash(parts[0]))
                    reps.append(name_hash(parts[1]))
        except OSError as e:
            raise UserError(f"--clusters {self.path}: cannot read ({e.strerror})") from e
        m = np.frombuffer(members, np.int64) if members else np.zeros(0, np.int64)
        order = np.argsort(m, kind="stable")
        self._members = m[order]
        self._reps = (np.frombuffer(reps, np.int64) if reps else np.zeros(0, np.int64))[order]
        self.hits = 0  # entries found in the TSV (the others are their own clusters)

    def __len__(self) -> int:
        return len(self._members)

    def __call__(self, name: str) -> int:
        h = name_hash(name)
        i = int(np.searchsorted(self._members, h))
        if i < len(self._members) and self._members[i] == h:
            self.hits += 1
            return int(self._reps[i])
        return h


def check_databases(sources) -> list[Path]:
    """The sources as database paths; a :class:`UserError` for one that is not a database."""
    for s in sources:
        if not is_foldcomp_db(s):
            raise UserError(
                f"--foldcomp-in-place reads Foldcomp databases: {s} is not one (a data file "
                "with .index and .lookup beside it)"
            )
    return [Path(s).resolve() for s in sources]


class InPlaceWriter:
    """Collect one index row per kept :class:`FczEntry`; ``close()`` writes the index and
    meta (the in-place counterpart of :class:`~pyg_mpnn.data.store.ShardWriter`)."""

    def __init__(self, out: str | Path, databases: list[Path], clusters: ClusterMap | None):
        self.out, self.databases, self.clusters = Path(out), databases, clusters
        self._cols = {k: array(_typecode(t)) for k, t in ROW_COLUMNS.items()}
        self._names = bytearray()
        self._name_off = array("q", [0])

    def add(self, entry: FczEntry, database: int) -> None:
        cluster = self.clusters(entry.name) if self.clusters else name_hash(entry.name)
        for key, value in (
            ("length", entry.length),
            ("num_chains", 1),
            ("cluster", cluster),
            ("split", default_split(cluster)),
            ("source", database),
            ("plddt", entry.plddt_mean),
            ("shard", database),
            ("offset", entry.offset),
            ("nbytes", entry.nbytes),
            ("crc", entry.crc),
        ):
            self._cols[key].append(value)
        self._names += entry.name.encode()
        self._name_off.append(len(self._names))

    def close(self, meta: dict | None = None) -> dict:
        cols = {
            k: np.frombuffer(v, dtype=v.typecode) if len(v) else np.zeros(0)
            for k, v in self._cols.items()
        }
        cols["name_bytes"] = np.frombuffer(bytes(self._names), np.uint8)
        cols["name_offsets"] = np.frombuffer(self._name_off, np.int64)
        extra = {
            "backend": BACKEND,
            "databases": [str(d) for d in self.databases],
            "clusters": None if self.clusters is None else str(self.clusters.path),
            "clustered_entries": None if self.clusters is None else self.clusters.hits,
        }
        return write_index(self.out, cols, {**extra, **(meta or {})})


__all__ = ["BACKEND", "ClusterMap", "InPlaceWriter", "accession", "check_databases", "name_hash"]
