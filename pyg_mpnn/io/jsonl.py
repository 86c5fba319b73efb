"""CATH-style backbone JSONL (plain or gzipped): one protein per line.

Line format read by :func:`iter_jsonl` (the layout of CATH 4.2's ``chain_set.jsonl``)::

    {"name": "1abc.A", "seq": "MKV...",
     "coords": {"N": [[x, y, z], ...], "CA": [...], "C": [...], "O": [...]},
     ...any other keys...}

* ``NaN`` marks a missing atom (Python's ``json`` reads and writes the bare ``NaN`` token);
  ``null`` in place of a number is read as NaN too (what JavaScript writes for NaN). A CA trace
  (for CA-only models) may give ``"CA"`` alone: N, C and O are then missing throughout.
* A line is one chain, named by its ``chain`` key (``"A"`` when absent; an empty id is
  written ``_``), unless it holds a multi-chain record as written by :func:`write_jsonl`:
  ``chain_ids`` (list of C ids) and ``chain_index`` (list of N ints in ``0..C-1``), with
  ``seq`` and ``coords`` the concatenation of the chains.
* Optional per-record keys understood: ``residue_ids`` (N strings), ``designed``
  (C booleans), ``plddt`` (N numbers).
* The original ProteinMPNN's own layout (what its ``parse_multiple_chains.py`` writes and
  ``protein_mpnn_run.py --jsonl_path`` reads) is read too: ``seq_chain_A`` and
  ``coords_chain_A: {"N_chain_A": [...], "CA_chain_A": ..., "C_chain_A": ...,
  "O_chain_A": ...}`` per chain, chains in the order of the keys; its gap letter ``-`` is
  read as ``X`` (with its NaN coordinates the residue is masked, as there).
* Every other key whose value is a scalar (str, int, float, bool, null) goes to ``meta``
  unchanged (e.g. ``chain``, ``num_chains``, ``split``, ``complex``, ``source``), so a line's own
  ``source`` key is kept as is. The reader adds ``meta["path"]`` (the JSONL file),
  ``meta["line"]`` (1-based line number) and ``meta["format"] = "jsonl"``; these three
  override keys of the same name in the line.

:func:`write_jsonl` writes the same format: one line per record (never one line per
chain), multi-chain records as described above, so ``iter_jsonl(write_jsonl(...))``
round-trips name, sequence, coordinates (float32 values exactly), chains, residue ids,
designed flags, pLDDT and scalar meta.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.io.record import BACKBONE_ATOMS, ProteinRecord, ReadError, ReadErrorKind

DEFAULT_CHAIN = "A"
BLANK_CHAIN = "_"
# Keys that describe the record itself (not copied to meta on read, not taken from meta on write).
RECORD_KEYS = frozenset(
    {"name", "seq", "coords", "chain_ids", "chain_index", "residue_ids", "designed", "plddt"}
)
# Keys the reader (or read_structure) sets about where a record came from; not written.
PROVENANCE_KEYS = frozenset({"path", "line", "format", "gzipped", "parser"})
_LETTERS = frozenset(ALPHABET)


def _open_text(path: Path):
    """Text handle on the file, gunzipping when it starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def iter_jsonl(path) -> Iterator[ProteinRecord | ReadError]:
    """Yield one :class:`ProteinRecord` per line, or a :class:`ReadError` for a bad line.

    A bad line (invalid JSON, missing keys, lengths that disagree, non-numeric or infinite
    coordinates, no finite coordinate at all) yields a ``ReadError`` whose ``source`` is the
    file, whose ``reason`` starts with ``line N:`` and which has a ``line`` attribute; the
    lines after it are still read. A file that cannot be opened, or gzip data that ends
    early or is corrupt, yields one final ``ReadError`` (``line`` = the last line reached).
    Blank lines are skipped.
    """
    path = Path(path)
    source = str(path)
    lineno = 0
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield parse_jsonl_line(line, source, lineno)
                except ReadError as err:
                    err.line = lineno
                    yield err
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        err = ReadError(
            source,
            f"line {lineno}: cannot read further ({type(exc).__name__}: "
            f"{exc}); truncated or corrupt file",
            "corrupt or truncated gzip",
        )
        err.line = lineno
        yield err


def read_jsonl(path) -> list[ProteinRecord]:
    """All records of a JSONL file; raises the first :class:`ReadError` met."""
    records = []
    for item in iter_jsonl(path):
        if isinstance(item, ReadError):
            raise item
        records.append(item)
    return records


def parse_jsonl_line(line: str, source: str = "<jsonl>", lineno: int = 0) -> ProteinRecord:
    """One JSONL line -> :class:`ProteinRecord`; raises :class:`ReadError` when it is bad."""

    def fail(reason: str, kind: ReadErrorKind = "bad JSONL line"):
        return ReadError(source, f"line {lineno}: {reason}", kind)

    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise fail(f"expected a JSON object, got {type(obj).__name__}")
    if "coords" not in obj and any(str(k).startswith("seq_chain_") for k in obj):
        obj = _from_original_layout(obj, fail)
    missing = [k for k in ("name", "seq", "coords") if k not in obj]
    if missing:
        raise fail(f"missing key(s) {missing}")
    name, seq, coords_obj = obj["name"], obj["seq"], obj["coords"]
    if not isinstance(seq, str):
        raise fail(f"'seq' is {type(seq).__name__}, not a string")
    label = f"record {name!r}"
    if not isinstance(coords_obj, dict):
        raise fail(f"{label}: 'coords' is {type(coords_obj).__name__}, not an object")
    n = len(seq)
    coords = _coords_of(coords_obj, n, fail, label)
    chain_ids, chain_index = _chains_of(obj, n, fail, label)
    residue_ids, designed, plddt = _optional_fields(obj, n, len(chain_ids), fail, label)
    meta = {k: v for k, v in obj.items() if k not in RECORD_KEYS and _is_scalar(v)}
    meta.update(path=source, line=lineno, format="jsonl")
    seq = "".join(a if a in _LETTERS else "X" for a in seq.upper())
    return ProteinRecord(
        name=str(name),
        seq=seq,
        coords=coords,
        chain_index=chain_index,
        chain_ids=chain_ids,
        designed=np.asarray(designed, bool),
        residue_ids=residue_ids,
        plddt=plddt,
        meta=meta,
    )


def _coords_of(coords_obj: dict, n: int, fail, label: str) -> np.ndarray:
    """``[n, 4, 3]`` float32 backbone coordinates from a line's ``coords`` object (NaN for an
    atom it lacks: N, C and O of a CA trace)."""
    missing = [a for a in BACKBONE_ATOMS if a not in coords_obj]
    if missing and missing != ["N", "C", "O"]:  # CA alone is a CA trace (for CA-only models)
        raise fail(f"{label}: 'coords' lacks atom(s) {missing}")
    coords = np.full((n, 4, 3), np.nan, np.float32)
    for k, atom in enumerate(BACKBONE_ATOMS):
        if atom in missing:
            continue
        try:
            values = np.asarray(coords_obj[atom], dtype=np.float64)
        except (TypeError, ValueError):
            raise fail(f"{label}: coords[{atom!r}] holds non-numeric values") from None
        if values.shape != (n, 3) and not (n == 0 and values.size == 0):
            raise fail(
                f"{label}: length mismatch: seq has {n} residues, coords[{atom!r}] "
                f"has shape {list(values.shape)} (expected [{n}, 3])"
            )
        if np.isinf(values).any():
            raise fail(f"{label}: coords[{atom!r}] holds infinite values", "non-finite coordinates")
        coords[:, k] = values.reshape(n, 3)
    if n == 0:
        raise fail(f"{label}: empty sequence")
    if not np.isfinite(coords).any():
        raise fail(f"{label}: every coordinate is NaN (no backbone atom)", "no complete backbone")
    return coords


def _optional_fields(obj: dict, n: int, num_chains: int, fail, label: str):
    """``(residue_ids, designed, plddt)``: the optional per-record keys, checked."""
    residue_ids = obj.get("residue_ids")
    if residue_ids is not None:
        if not isinstance(residue_ids, list) or len(residue_ids) != n:
            raise fail(f"{label}: 'residue_ids' must be a list of {n} strings")
        residue_ids = [str(r) for r in residue_ids]
    designed = obj.get("designed")
    if designed is None:
        designed = np.ones(num_chains, bool)
    elif not isinstance(designed, list) or len(designed) != num_chains:
        raise fail(f"{label}: 'designed' must be a list of {num_chains} booleans")
    plddt = obj.get("plddt")
    if plddt is not None:
        try:
            plddt = np.asarray(plddt, dtype=np.float32)
        except (TypeError, ValueError):
            raise fail(f"{label}: 'plddt' holds non-numeric values") from None
        if plddt.shape != (n,):
            raise fail(f"{label}: 'plddt' must hold {n} numbers")
    return residue_ids, designed, plddt


def _from_original_layout(obj: dict, fail) -> dict:
    """The original's per-chain keys (``seq_chain_X``, ``coords_chain_X``) -> our
    multi-chain layout (``seq``, ``coords``, ``chain_ids``, ``chain_index``)."""
    label = f"record {obj.get('name')!r}"
    chains = [str(k)[len("seq_chain_") :] for k in obj if str(k).startswith("seq_chain_")]
    seq, coords, index = "", {a: [] for a in BACKBONE_ATOMS}, []
    for i, c in enumerate(chains):
        chain_seq, chain_coords = obj[f"seq_chain_{c}"], obj.get(f"coords_chain_{c}")
        if not isinstance(chain_seq, str) or not isinstance(chain_coords, dict):
            raise fail(
                f"{label}: chain {c} needs a 'seq_chain_{c}' string and a 'coords_chain_{c}' object"
            )
        for atom in BACKBONE_ATOMS:
            values = chain_coords.get(f"{atom}_chain_{c}")
            if not isinstance(values, list) or len(values) != len(chain_seq):
                raise fail(
                    f"{label}: 'coords_chain_{c}' needs '{atom}_chain_{c}' with "
                    f"{len(chain_seq)} coordinates"
                )
            coords[atom].extend(values)
        seq += chain_seq.replace("-", "X")
        index += [i] * len(chain_seq)
    rest = {k: v for k, v in obj.items() if not str(k).startswith(("seq_chain_", "coords_chain_"))}
    return {**rest, "seq": seq, "coords": coords, "chain_ids": chains, "chain_index": index}


def _chains_of(obj: dict, n: int, fail, label: str) -> tuple[list[str], np.ndarray]:
    """Chain ids and per-residue chain index: multi-chain keys, else one chain."""
    if "chain_ids" in obj or "chain_index" in obj:
        chain_ids, chain_index = obj.get("chain_ids"), obj.get("chain_index")
        if not isinstance(chain_ids, list) or not isinstance(chain_index, list):
            raise fail(f"{label}: 'chain_ids' and 'chain_index' must both be lists")
        if len(chain_index) != n:
            raise fail(
                f"{label}: length mismatch: seq has {n} residues, 'chain_index' "
                f"has {len(chain_index)}"
            )
        try:
            index = np.asarray(chain_index, dtype=np.int64)
        except (TypeError, ValueError):
            raise fail(f"{label}: 'chain_index' holds non-integers") from None
        if n and (index.min() < 0 or index.max() >= len(chain_ids)):
            raise fail(f"{label}: 'chain_index' outside 0..{len(chain_ids) - 1}")
        return [str(c) or BLANK_CHAIN for c in chain_ids], index
    chain = obj.get("chain")
    chain = DEFAULT_CHAIN if chain is None else (str(chain).strip() or BLANK_CHAIN)
    return [chain], np.zeros(n, np.int64)


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _shortest_floats(values) -> list:
    """float32 values as Python floats with few decimals that read back as the same float32.

    Each value gets the fewest decimals (0-9) that round-trip through float32, so PDB-style
    coordinates are written as ``12.345``, not ``12.345000267028809``; anything else is
    written with the exact float32 value. NaN stays NaN.
    """
    exact = np.asarray(values, np.float32)
    shape = exact.shape
    exact = exact.reshape(-1)
    wide = exact.astype(np.float64)
    out = wide.copy()
    pending = np.isfinite(exact)
    for decimals in range(10):
        if not pending.any():
            break
        rounded = np.round(wide[pending], decimals)
        matches = rounded.astype(np.float32) == exact[pending]
        index = np.flatnonzero(pending)[matches]
        out[index] = rounded[matches]
        pending[index] = False
    return out.reshape(shape).tolist()


def record_to_json(record: ProteinRecord) -> dict:
    """The JSON object :func:`write_jsonl` writes for one record (see the module docstring)."""
    obj = {
        "name": record.name,
        "seq": record.seq,
        "coords": {
            atom: _shortest_floats(record.coords[:, k]) for k, atom in enumerate(BACKBONE_ATOMS)
        },
    }
    if len(record.chain_ids) == 1:
        obj["chain"] = record.chain_ids[0]
    else:
        obj["chain_ids"] = list(record.chain_ids)
        obj["chain_index"] = record.chain_index.tolist()
    obj["num_chains"] = len(record.chain_ids)
    if record.residue_ids is not None:
        obj["residue_ids"] = list(record.residue_ids)
    if not record.designed.all():
        obj["designed"] = record.designed.tolist()
    if record.plddt is not None:
        obj["plddt"] = _shortest_floats(record.plddt)
    for key, value in record.meta.items():
        if (
            key not in obj
            and key not in RECORD_KEYS
            and key not in PROVENANCE_KEYS
            and key not in ("chain", "num_chains")
            and _is_scalar(value)
            and not (isinstance(value, float) and math.isinf(value))
        ):
            obj[key] = value
    return obj


def write_jsonl(records: Iterable[ProteinRecord], path) -> int:
    """Write records as CATH-style JSONL, one line per record (gzip if ``path`` ends in .gz).

    Single-chain records get a ``chain`` key; multi-chain records keep ``seq``/``coords`` as
    the concatenation and add ``chain_ids`` and ``chain_index`` (never one line per chain).
    Missing atoms are written ``NaN``. Returns the number of lines written.
    """
    path = Path(path)
    if path.name.endswith(".gz"):
        handle = gzip.open(path, "wt", encoding="utf-8", compresslevel=6)
    else:
        handle = open(path, "w", encoding="utf-8")
    count = 0
    with handle:
        for record in records:
            handle.write(json.dumps(record_to_json(record)) + "\n")
            count += 1
    return count
