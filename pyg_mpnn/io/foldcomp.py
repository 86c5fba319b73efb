"""Reader for Foldcomp-compressed structures (AlphaFold DB databases and ``.fcz`` files).

Inputs accepted by :func:`iter_foldcomp`:

* a Foldcomp database given by its path prefix ``P`` (the data file ``P`` with ``P.index``
  and ``P.lookup`` beside it, as the AFDB downloads ``afdb_swissprot_v4`` etc.); entries come
  in ``P.lookup`` order and are named by it (e.g. ``AF-P60713-F1-model_v4``);
* a single ``.fcz`` file (named by its file stem);
* a directory of ``.fcz`` files (sorted by file name).

Each entry is decoded with ``foldcomp.get_data`` on its raw FCZ bytes (databases are opened
with ``decompress=False``). ``get_data`` returns all heavy atoms in PDB order per residue
(N, CA, C, O, then the side chain; one OXT after the last residue), so the backbone of residue
``i`` is the first four atoms of its block; block sizes come from the residue letters.
pLDDT: Foldcomp's per-residue ``b_factors`` (AlphaFold writes pLDDT into the B-factor column).

Foldcomp is an optional dependency (``pip install pyg_mpnn[foldcomp]``); it is imported only
when a reader runs.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pyg_mpnn.io.record import ProteinRecord, ReadError

# heavy atoms per residue type in Foldcomp's output (backbone N, CA, C, O + side chain)
HEAVY_ATOMS = {
    "A": 5,
    "R": 11,
    "N": 8,
    "D": 8,
    "C": 6,
    "Q": 9,
    "E": 9,
    "G": 4,
    "H": 10,
    "I": 8,
    "L": 8,
    "K": 9,
    "M": 8,
    "F": 11,
    "P": 7,
    "S": 6,
    "T": 7,
    "W": 14,
    "Y": 12,
    "V": 7,
}

_CHUNK = 512  # names per foldcomp.open call when walking a database


class LowPLDDT(ReadError):
    """An entry skipped by the ``min_plddt`` filter (a :class:`ReadError` whose ``reason``
    reads ``"mean pLDDT X < threshold"``), so that callers can count it apart from failures."""

    def __init__(self, source: str, mean: float, threshold: float):
        super().__init__(source, f"mean pLDDT {mean:.2f} < {threshold:g}", "low pLDDT")
        self.mean_plddt = mean
        self.threshold = threshold


def _import_foldcomp():
    try:
        import foldcomp
    except ImportError as exc:
        raise ImportError(
            "reading Foldcomp files needs the foldcomp package: pip install pyg_mpnn[foldcomp]"
        ) from exc
    return foldcomp


def is_foldcomp_db(path) -> bool:
    """True if ``path`` is a Foldcomp database prefix (the file with ``.index`` and ``.lookup``
    beside it)."""
    p = Path(path)
    return p.is_file() and Path(f"{p}.index").is_file() and Path(f"{p}.lookup").is_file()


def read_lookup(path) -> list[tuple[int, str]]:
    """``(key, name)`` per line of ``<path>.lookup`` (``key<TAB>name<TAB>file``), in file order."""
    out = []
    lookup = Path(f"{path}.lookup")
    for line_no, line in enumerate(lookup.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            out.append((int(parts[0]), parts[1]))
        except (IndexError, ValueError) as exc:
            raise ReadError(str(lookup), f"line {line_no}: malformed ({exc})") from exc
    return out


def check_fcz_header(fcz: bytes) -> str | None:
    """Why ``fcz`` is not a complete FCZ record, or None if its header and size add up.

    Foldcomp's decoder trusts the header and can crash the interpreter on a truncated or
    garbled record, so this is checked first. Layout (``src/foldcomp.cpp``, ``Foldcomp::read``):
    ``"FCMP"``, a 72-byte header (nResidue u16, nAtom u16, idxResidue u16, idxAtom u16,
    nAnchor u8, chain, 2 pad, nSideChainTorsion u32, first/last residue, 2 pad, lenTitle u32,
    12 floats), then 4 bytes per anchor index, the title, 36 bytes per anchor, OXT flag +
    12 bytes, 8 bytes per residue, one byte per side-chain torsion, 8 + 1 per residue
    (pLDDT).
    """
    if len(fcz) < 76 or fcz[:4] != b"FCMP":
        return "not a Foldcomp record (no FCMP header)"
    n_res, n_atom, _, _, n_anchor, _, n_sc, _, _, len_title = struct.unpack_from(
        "<HHHHBcxxIccxxI", fcz, 4
    )
    if n_res < 1 or n_anchor < 2 or not 4 * n_res <= n_atom <= 15 * n_res:
        return f"implausible header ({n_res} residues, {n_atom} atoms, {n_anchor} anchors)"
    expected = 76 + 40 * n_anchor + len_title + 13 + 9 * n_res + n_sc + 8
    if len(fcz) < expected:
        return f"truncated record ({len(fcz)} bytes, header implies {expected})"
    return None


def fcz_plddt(fcz: bytes) -> np.ndarray:
    """Per-residue pLDDT of an FCZ record read from its last bytes, without decoding it.

    Foldcomp stores the B-factors last: a float minimum and a float step, then one byte per
    residue (``value = minimum + byte * step``), the same numbers ``foldcomp.get_data`` gives
    as ``b_factors``. ``fcz`` must pass :func:`check_fcz_header`.
    """
    n_res = struct.unpack_from("<H", fcz, 4)[0]
    low, step = struct.unpack_from("<ff", fcz, len(fcz) - n_res - 8)
    codes = np.frombuffer(fcz, np.uint8, count=n_res, offset=len(fcz) - n_res)
    return (low + codes * np.float32(step)).astype(np.float32)


def record_from_fcz(
    fcz: bytes, name: str, source: str | None = None, min_plddt: float | None = None
) -> ProteinRecord:
    """Decode one FCZ blob into a single-chain record (chain ``"A"``, designed).

    ``coords`` ``[L,4,3]`` N, CA, C, O; ``plddt`` float32 ``[L]``; ``meta``: ``source``,
    ``format`` (``"foldcomp"``), ``plddt_mean``. Raises :class:`ReadError` if the blob cannot
    be decoded or its atom count does not fit its residues, :class:`LowPLDDT` if the mean
    pLDDT is below ``min_plddt``.
    """
    foldcomp = _import_foldcomp()
    where = source or name
    problem = check_fcz_header(bytes(fcz))
    if problem:
        raise ReadError(where, problem)
    try:
        data = foldcomp.get_data(fcz)
    except Exception as exc:  # foldcomp raises plain exceptions on bad input
        raise ReadError(
            where, f"cannot decode Foldcomp data ({type(exc).__name__}: {exc})"
        ) from exc
    seq = str(data.get("residues", ""))
    xyz = np.asarray(data.get("coordinates", []), dtype=np.float32).reshape(-1, 3)
    plddt = np.asarray(data.get("b_factors", []), dtype=np.float32)
    unknown = sorted(set(seq) - set(HEAVY_ATOMS))
    if not seq or unknown:
        raise ReadError(where, f"no residues or unsupported residue letters {unknown}")
    sizes = np.array([HEAVY_ATOMS[a] for a in seq])
    n_atoms = int(sizes.sum())
    if len(xyz) not in (n_atoms, n_atoms + 1):  # + OXT
        raise ReadError(
            where,
            f"{len(xyz)} atoms do not fit {len(seq)} residues ({n_atoms} heavy atoms expected)",
        )
    if plddt.shape != (len(seq),):
        raise ReadError(where, f"{plddt.size} b-factors for {len(seq)} residues")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    coords = xyz[starts[:, None] + np.arange(4)]
    mean = float(plddt.mean())
    if min_plddt is not None and mean < min_plddt:
        raise LowPLDDT(where, mean, min_plddt)
    rec = ProteinRecord.from_chains(
        name,
        [("A", seq, coords, None)],
        designed=np.ones(1, bool),
        meta={"source": where, "format": "foldcomp", "plddt_mean": mean},
    )
    rec.plddt = plddt
    return rec


def _iter_db(path: Path, min_plddt) -> Iterator[ProteinRecord | ReadError]:
    foldcomp = _import_foldcomp()
    try:
        entries = read_lookup(path)
    except OSError as exc:
        yield ReadError(f"{path}.lookup", f"cannot read ({exc})")
        return
    except ReadError as err:
        yield err
        return
    for lo in range(0, len(entries), _CHUNK):
        chunk = entries[lo : lo + _CHUNK]
        names = [n for _, n in chunk]
        try:
            with foldcomp.open(str(path), ids=names, decompress=False) as db:
                blobs = list(db)
        except Exception as exc:
            for _, n in chunk:
                yield ReadError(
                    f"{path}:{n}", f"cannot open database ({type(exc).__name__}: {exc})"
                )
            continue
        if len(blobs) != len(names):
            for _, n in chunk:
                yield ReadError(
                    f"{path}:{n}", f"database returned {len(blobs)} entries for {len(names)} names"
                )
            continue
        for (key, name), fcz in zip(chunk, blobs):
            try:
                rec = record_from_fcz(fcz, name, source=f"{path}:{name}", min_plddt=min_plddt)
            except ReadError as err:
                yield err
                continue
            rec.meta.update(key=key, database=str(path))
            yield rec


class FczEntry(NamedTuple):
    """Where one record of a Foldcomp database lies and what its header says (no decoding)."""

    key: int
    name: str
    offset: int  # byte offset of the FCZ record in the data file
    nbytes: int  # its size, without the NUL byte that follows it
    crc: int  # CRC32 of those bytes
    length: int  # residues
    plddt_mean: float


def read_db_index(path) -> dict[int, tuple[int, int]]:
    """``key -> (offset, size incl. the trailing NUL)`` from ``<path>.index``."""
    index = Path(f"{path}.index")
    out = {}
    for line_no, line in enumerate(index.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            key, offset, size = (int(x) for x in line.split("\t")[:3])
        except ValueError as exc:
            raise ReadError(str(index), f"line {line_no}: malformed ({exc})") from exc
        out[key] = (offset, size)
    return out


def _entry(fd: int, path: Path, key: int, name: str, offset: int, size: int):
    """The :class:`FczEntry` of one record read at ``offset``, or the ReadError why not."""
    where = f"{path}:{name}"
    span = f"bytes {offset}..{offset + size}"
    blob = os.pread(fd, size, offset)
    if len(blob) != size:
        return ReadError(where, f"{span}: truncated database, read {len(blob)} of {size} bytes")
    fcz = blob[:-1]  # each record is followed by a NUL byte
    problem = check_fcz_header(fcz)
    if problem:
        return ReadError(where, f"{span}: {problem}")
    n_res = struct.unpack_from("<H", fcz, 4)[0]
    mean = float(fcz_plddt(fcz).mean())
    return FczEntry(key, name, offset, len(fcz), zlib.crc32(fcz), n_res, mean)


def iter_entries(path, min_plddt: float | None = None) -> Iterator[FczEntry | ReadError]:
    """The records of the Foldcomp database ``path`` as :class:`FczEntry` (in data-file order,
    so the file is read once, front to back), or a :class:`ReadError` per record that is
    missing from the index, truncated or has an implausible header, :class:`LowPLDDT` below
    ``min_plddt``. Records are checked and summed up, not decoded: what an in-place index
    needs."""
    path = Path(path)
    try:
        entries, index = read_lookup(path), read_db_index(path)
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        yield ReadError(str(path), f"cannot read ({exc})")
        return
    except ReadError as err:
        yield err
        return
    try:
        found = sorted((index[k], k, n) for k, n in entries if k in index)
        for k, n in entries:
            if k not in index:
                yield ReadError(f"{path}:{n}", f"key {k} is not in {path}.index")
        for (offset, size), key, name in found:
            entry = _entry(fd, path, key, name, offset, size)
            low = min_plddt is not None and isinstance(entry, FczEntry)
            if low and entry.plddt_mean < min_plddt:
                entry = LowPLDDT(f"{path}:{name}", entry.plddt_mean, min_plddt)
            yield entry
    finally:
        os.close(fd)


def write_database(path, entries: Iterable[tuple[str, bytes]]) -> int:
    """Write a Foldcomp database at prefix ``path`` from ``(name, FCZ bytes)`` pairs (e.g.
    ``foldcomp.compress(name, pdb_text)``), in the layout of Foldcomp's own writer: records
    back to back, each followed by a NUL byte; ``.index`` (key, offset, size incl. the NUL),
    ``.lookup`` (key, name, 0) and ``.dbtype`` (int32 12). Keys number the entries in the
    order given. Returns the number of entries."""
    path = Path(path)
    index, lookup, offset = [], [], 0
    with open(path, "wb") as data:
        for key, (name, fcz) in enumerate(entries):
            data.write(bytes(fcz) + b"\0")
            index.append(f"{key}\t{offset}\t{len(fcz) + 1}\n")
            lookup.append(f"{key}\t{name}\t0\n")
            offset += len(fcz) + 1
    Path(f"{path}.index").write_text("".join(index))
    Path(f"{path}.lookup").write_text("".join(lookup))
    Path(f"{path}.dbtype").write_bytes(struct.pack("<i", 12))
    return len(index)


def _fcz_name(path: Path) -> str:
    return path.name[:-4] if path.name.endswith(".fcz") else path.stem


def _iter_files(files, min_plddt) -> Iterator[ProteinRecord | ReadError]:
    for f in files:
        try:
            fcz = f.read_bytes()
        except OSError as exc:
            yield ReadError(str(f), f"cannot read ({exc})")
            continue
        try:
            yield record_from_fcz(fcz, _fcz_name(f), source=str(f), min_plddt=min_plddt)
        except ReadError as err:
            yield err


def iter_foldcomp(path, min_plddt: float | None = None) -> Iterator[ProteinRecord | ReadError]:
    """Records of a Foldcomp database prefix, a ``.fcz`` file or a directory of ``.fcz`` files.

    Yields :class:`~pyg_mpnn.io.record.ProteinRecord` (one chain ``"A"``, designed; ``name`` =
    AFDB name from the lookup or the file stem; ``plddt`` per residue; ``meta``: ``source``
    (``"<db>:<name>"`` or the file path), ``format``, ``plddt_mean``, and for databases
    ``key`` and ``database``) or a :class:`ReadError` for an entry that cannot be decoded.
    ``min_plddt``: entries whose mean pLDDT is below it come back as :class:`LowPLDDT`
    (a ``ReadError`` subclass, reason ``"mean pLDDT X < threshold"``) so they are reported.
    Raises ``FileNotFoundError`` if ``path`` is none of the three, ``ImportError`` without
    foldcomp.
    """
    p = Path(path)
    _import_foldcomp()
    if is_foldcomp_db(p):
        yield from _iter_db(p, min_plddt)
    elif p.is_dir():
        yield from _iter_files(sorted(p.glob("*.fcz")), min_plddt)
    elif p.is_file():
        yield from _iter_files([p], min_plddt)
    else:
        raise FileNotFoundError(f"{p}: not a Foldcomp database, .fcz file or directory")


__all__ = [
    "iter_foldcomp",
    "is_foldcomp_db",
    "record_from_fcz",
    "check_fcz_header",
    "read_lookup",
    "read_db_index",
    "fcz_plddt",
    "iter_entries",
    "write_database",
    "FczEntry",
    "LowPLDDT",
    "HEAVY_ATOMS",
]
