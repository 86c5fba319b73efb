"""Reader for ProteinMPNN's ``pdb_2021aug02`` training-set layout (``list.csv`` and its filters:
:mod:`pyg_mpnn.io.pdb2021_list`).

Layout (``root`` is the folder holding ``list.csv``)::

    list.csv                  CHAINID,DEPOSITION,RESOLUTION,HASH,CLUSTER,SEQUENCE
    valid_clusters.txt        cluster ids of the validation split, one per line
    test_clusters.txt         cluster ids of the test split (every other cluster is train)
    pdb/<id[1:3]>/<id>.pt     entry metadata: chains, asmb_ids, asmb_chains, asmb_xform<i>, tm, ...
    pdb/<id[1:3]>/<id>_<ch>.pt  one chain: seq str, xyz float [L,14,3] (N,CA,C,O first), ...

Behaviour follows the original training loader (``build_training_clusters``,
``loader_pdb`` and ``get_pdbs`` of ProteinMPNN's ``training/utils.py``), re-implemented:

* list filters: ``RESOLUTION <= rescut`` (a ``nan`` resolution fails any cutoff) and
  ``DEPOSITION <= datcut``; the split of a row is that of its cluster.
* one example per list row ("query chain"): one biological assembly containing the chain is
  built by applying every operator of every ``pdbx_struct_assembly_gen`` row of that assembly
  id to the protein chains the row lists. A chain found in no assembly comes back alone.
* designed chains: every copy of every chain whose sequence identity to the query chain
  (``tm[query, j, 1]``) is strictly greater than ``homo_cutoff`` (the original's ``>``), and
  every copy of the query chain itself (the original gets it from the ``tm`` diagonal, 1.0;
  here it is always included, even if the diagonal is 0 for a chain TM-align skipped); all
  other copies are visible context.
* ``get_pdbs``: examples with >= 352 chain copies are dropped (here: :class:`ReadError`);
  His-tags are cut by the original's ten window rules; a copy left with < 4 residues is dropped.

Copy ids (``ProteinRecord.chain_ids``): the first copy of chain ``A`` (in build order) is
``"A"``, the following ones ``"A-2"``, ``"A-3"``, ... Build order: gen rows in file order,
then chains in the order of the entry's ``chains`` list, then operators in order.
``meta["copies"]`` gives ``(chain, gen_row, operator)`` per copy.

Deviations from the original (deliberate): the assembly is picked by ``assembly_choice``
(default: the first candidate in file order, so reading is deterministic; pass a
``random.Random``/``numpy.random.Generator`` for the original's uniform pick); the chain
order inside a gen row is the entry's ``chains`` order instead of Python set order;
``asmb_chains`` is split on commas (the original iterates characters, so multi-character chain
ids could not load); the ``max_length`` filter of ``get_pdbs`` is left to the caller; an
example left with no designed chain (all designed copies shorter than 4 residues after His-tag
cuts; the original would keep it with an empty loss mask) is a :class:`ReadError`; a
missing or corrupt file is a :class:`ReadError` naming it (the original returns a dummy
example that ``get_pdbs`` silently skips, or crashes).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pyg_mpnn.io.pdb2021_list import (
    DEFAULT_DATCUT,
    ListRow,
    clusters_by_split,
    load_list,
    parse_date,
)
from pyg_mpnn.io.record import SPLITS, ProteinRecord, ReadError

MAX_COPIES = 352  # get_pdbs keeps an example only if it has fewer chain copies than this
MIN_CHAIN_LENGTH = 4  # get_pdbs drops a chain copy with fewer residues (after His-tag cuts)

# get_pdbs' His-tag rules, applied in this order, each to the residues left by the previous
# ones, while every test looks at the *uncut* sequence: (test start, test end, side, cut).
# A window end of None means "to the end of the sequence".
_HIS_RULES = (
    (-6, None, "end", 6),
    (0, 6, "start", 6),
    (-7, -1, "end", 7),
    (-8, -2, "end", 8),
    (-9, -3, "end", 9),
    (-10, -4, "end", 10),
    (1, 7, "start", 7),
    (2, 8, "start", 8),
    (3, 9, "start", 9),
    (4, 10, "start", 10),
)


def his_tag_slice(seq: str) -> tuple[int, int]:
    """``(start, stop)`` of the residues ``get_pdbs`` keeps after its His-tag rules.

    Rules are cumulative (a long tag can trigger several end rules) and tested on the
    uncut sequence, exactly as the original. ``stop <= start`` means nothing is left.
    """
    start, stop = 0, len(seq)
    for a, b, side, cut in _HIS_RULES:
        if seq[a:b] == "HHHHHH":
            n = stop - start
            if side == "end":
                stop = start + max(n - cut, 0)
            else:
                start = start + min(cut, n)
    return start, stop


def _entry_prefix(root: Path, pdb_id: str) -> Path:
    return root / "pdb" / pdb_id[1:3] / pdb_id


class _Files:
    """Loads ``.pt`` files with ``weights_only=True``; corrupt/missing -> ReadError naming the file.

    Keeps the files of one entry in memory (rows of one entry follow each other in list.csv).
    """

    def __init__(self):
        self._entry = None
        self._cache: dict[str, object] = {}

    def load(self, path: Path, entry: str):
        if entry != self._entry:
            self._entry, self._cache = entry, {}
        key = str(path)
        if key in self._cache:
            hit = self._cache[key]
            if isinstance(hit, ReadError):
                raise hit
            return hit
        try:
            if not path.is_file():
                raise ReadError(key, "file not found", "missing input")
            try:
                import torch  # here: reading structure files (and --help) needs no torch

                obj = torch.load(path, weights_only=True, map_location="cpu")
            except Exception as exc:  # torch raises many kinds on a corrupt file
                raise ReadError(
                    key, f"cannot load ({type(exc).__name__}: {exc})", "unreadable .pt"
                ) from exc
            if not isinstance(obj, dict):
                raise ReadError(key, f"expected a dict, got {type(obj).__name__}", "unreadable .pt")
        except ReadError as err:
            self._cache[key] = err
            raise
        self._cache[key] = obj
        return obj


def _as_array(value, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ReadError(str(path), f"field {name!r} is not numeric ({exc})") from exc


def _load_chain(files: _Files, prefix: Path, chain: str, entry: str) -> tuple[str, np.ndarray]:
    """``(seq, backbone [L,4,3])`` of one chain file; NaN where an atom is missing."""
    path = Path(f"{prefix}_{chain}.pt")
    obj = files.load(path, entry)
    if "seq" not in obj or "xyz" not in obj:
        raise ReadError(str(path), "missing 'seq' or 'xyz'")
    seq = str(obj["seq"])
    xyz = _as_array(obj["xyz"], path, "xyz")
    if xyz.ndim != 3 or xyz.shape[0] != len(seq) or xyz.shape[1] < 4 or xyz.shape[2] != 3:
        raise ReadError(str(path), f"xyz shape {xyz.shape} does not fit seq length {len(seq)}")
    return seq, np.ascontiguousarray(xyz[:, :4])


def _choose(candidates: list[str], choice, source: str) -> str:
    if isinstance(choice, str):
        if choice == "first":
            return candidates[0]
        if choice in candidates:
            return choice
        raise ReadError(source, f"assembly {choice!r} not among {candidates}")
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        if -len(candidates) <= choice < len(candidates):
            return candidates[choice]
        raise ReadError(source, f"assembly index {choice} out of range ({len(candidates)})")
    if isinstance(choice, random.Random):
        return candidates[choice.randrange(len(candidates))]
    if isinstance(choice, np.random.Generator):
        return candidates[int(choice.integers(len(candidates)))]
    if isinstance(choice, np.random.RandomState):
        return candidates[int(choice.randint(len(candidates)))]
    raise TypeError(
        f"assembly_choice must be 'first', an assembly id, an index or an RNG, "
        f"not {type(choice).__name__}"
    )


def _build(
    files: _Files,
    root: Path,
    chain_id: str,
    assembly_choice,
    homo_cutoff: float,
    trim_his_tags: bool,
    max_copies: int | None,
) -> ProteinRecord:
    pdb_id, _, query = chain_id.partition("_")
    if not pdb_id or not query:
        raise ReadError(chain_id, "chain id must look like '1abc_A'")
    prefix = _entry_prefix(Path(root), pdb_id)
    meta_path = Path(f"{prefix}.pt")
    source = str(meta_path)
    meta = files.load(meta_path, pdb_id)
    missing = [k for k in ("chains", "asmb_ids", "asmb_chains", "tm") if k not in meta]
    if missing:
        raise ReadError(source, f"missing fields {missing}")
    info = {
        "source": source,
        "pdb_id": pdb_id,
        "query_chain": query,
        "method": meta.get("method"),
        "entry_resolution": meta.get("resolution"),
        "entry_date": meta.get("date"),
    }
    plan, designed_chains = _plan(meta, meta_path, query, assembly_choice, homo_cutoff, info)
    info["assembly_copies"] = len(plan)
    if max_copies is not None and len(plan) >= max_copies:
        raise ReadError(
            source,
            f"assembly {info['assembly_id']} of {chain_id} has {len(plan)} "
            f"chain copies >= {max_copies} (dropped, as get_pdbs does)",
            "too many chain copies",
        )
    loaded = {c: _load_chain(files, prefix, c, pdb_id) for c in dict.fromkeys(p[0] for p in plan)}
    parts, copies, designed = _place(plan, loaded, designed_chains, trim_his_tags)
    if not any(designed):
        raise ReadError(
            source,
            f"no designed chain of {chain_id}'s assembly has >= "
            f"{MIN_CHAIN_LENGTH} residues after His-tag trimming",
            "no designed chain",
        )
    info["copies"] = copies
    return ProteinRecord.from_chains(chain_id, parts, designed=np.array(designed, bool), meta=info)


def _plan(
    meta: dict, meta_path: Path, query: str, assembly_choice, homo_cutoff: float, info: dict
) -> tuple[list[tuple], set[str]]:
    """The chain copies to place, ``(chain, xform index, copy, rotation, shift)``, and the
    designed chains (the query and its homologues above ``homo_cutoff`` sequence identity):
    the chosen assembly of the query chain, or the chain alone when it is in none. Writes
    ``assembly_candidates`` and ``assembly_id`` into ``info``."""
    source = str(meta_path)
    chains = [str(c) for c in meta["chains"]]
    asmb_ids = [str(a) for a in (meta["asmb_ids"] or [])]
    asmb_members = [set(str(s).split(",")) for s in (meta["asmb_chains"] or [])]
    if len(asmb_ids) != len(asmb_members):
        raise ReadError(source, "asmb_ids and asmb_chains differ in length")
    if query not in chains:
        raise ReadError(source, f"chain {query!r} not in the entry's chains {chains}")
    candidates = list(dict.fromkeys(a for a, m in zip(asmb_ids, asmb_members) if query in m))
    info["assembly_candidates"] = candidates
    if not candidates:  # loader_pdb: the chain alone, designed
        info["assembly_id"] = None
        return [(query, None, 0, np.eye(3, dtype=np.float32), np.zeros(3, np.float32))], {query}
    chosen = _choose(candidates, assembly_choice, source)
    info["assembly_id"] = chosen
    plan = []
    for k, (a, members) in enumerate(zip(asmb_ids, asmb_members)):
        if a != chosen:
            continue
        key = f"asmb_xform{k}"
        if key not in meta:
            raise ReadError(source, f"missing {key}")
        xf = _as_array(meta[key], meta_path, key)
        if xf.ndim != 3 or xf.shape[1:] != (4, 4):
            raise ReadError(source, f"{key} has shape {xf.shape}, expected [n,4,4]")
        for c in chains:
            if c in members:
                plan.extend((c, k, i, xf[i, :3, :3], xf[i, :3, 3]) for i in range(len(xf)))
    tm = _as_array(meta["tm"], meta_path, "tm")
    if tm.shape[:2] != (len(chains), len(chains)) or tm.ndim != 3 or tm.shape[2] < 2:
        raise ReadError(source, f"tm has shape {tm.shape} for {len(chains)} chains")
    seqid = tm[chains.index(query), :, 1]
    return plan, {c for c, s in zip(chains, seqid) if s > homo_cutoff} | {query}


def _place(
    plan: list[tuple], loaded: dict, designed_chains: set[str], trim_his_tags: bool
) -> tuple[list[tuple], list[tuple], list[bool]]:
    """The placed chain copies of ``plan`` (``loaded``: each chain's sequence and backbone):
    ``(id, seq, coords, None)`` parts (a second copy of chain ``A`` is ``A-2``), their
    ``(chain, xform, copy)`` and whether each is designed; copies shorter than
    :data:`MIN_CHAIN_LENGTH` after His-tag trimming are left out."""
    parts, copies, designed, n_seen = [], [], [], {}
    for c, k, i, rot, shift in plan:
        seq, bb = loaded[c]
        start, stop = his_tag_slice(seq) if trim_his_tags else (0, len(seq))
        if stop - start < MIN_CHAIN_LENGTH:
            continue
        n_seen[c] = n_seen.get(c, 0) + 1
        cid = c if n_seen[c] == 1 else f"{c}-{n_seen[c]}"
        xyz = bb[start:stop] @ rot.T + shift
        parts.append((cid, seq[start:stop], xyz.astype(np.float32), None))
        copies.append((c, k, i))
        designed.append(c in designed_chains)
    return parts, copies, designed


def load_assembly(
    root,
    chain_id: str,
    assembly_choice="first",
    homo_cutoff: float = 0.70,
    trim_his_tags: bool = True,
    max_copies: int | None = MAX_COPIES,
) -> ProteinRecord:
    """The biological assembly around one ``list.csv`` chain, as ``loader_pdb`` + ``get_pdbs``.

    ``chain_id``: ``"<pdbid>_<chain>"`` as in ``list.csv``. ``assembly_choice``: ``"first"``
    (first candidate assembly in file order), an assembly id (``"2"``, ``"HAU"``), an index
    into the candidates, or a ``random.Random`` / ``numpy`` generator (uniform, as the
    original). ``homo_cutoff``: copies of chains with sequence identity ``> homo_cutoff`` to
    the query chain are designed. ``trim_his_tags``: apply get_pdbs' His-tag rules.
    ``max_copies``: raise :class:`ReadError` when the assembly has this many copies or more
    (``None`` disables it).

    Returns a record named ``chain_id`` with ``coords`` ``[N,4,3]`` (N, CA, C, O, NaN where
    missing), copy ids as in the module docstring, and ``meta``: ``source`` (entry .pt path),
    ``pdb_id``, ``query_chain``, ``assembly_id`` (None when the chain is in no assembly),
    ``assembly_candidates``, ``assembly_copies`` (before dropping short copies), ``copies``
    (``(chain, gen_row, operator)`` per kept copy; gen_row None for a lone chain),
    ``method``, ``entry_resolution``, ``entry_date``.
    Raises :class:`ReadError` (naming the file) for a missing or corrupt file or a dropped
    example.
    """
    return _build(
        _Files(), Path(root), chain_id, assembly_choice, homo_cutoff, trim_his_tags, max_copies
    )


def iter_pdb2021(
    root,
    rescut: float | None = 3.5,
    datcut=DEFAULT_DATCUT,
    homo_cutoff: float = 0.70,
    splits=None,
    keep_nan_resolution: bool = False,
    assembly_choice="first",
    trim_his_tags: bool = True,
    max_copies: int | None = MAX_COPIES,
) -> Iterator[ProteinRecord | ReadError]:
    """One item per ``list.csv`` row passing the filters (see :func:`load_list`), in file order.

    ``rescut``, ``datcut``, ``keep_nan_resolution``: the list filters of :func:`load_list`;
    ``homo_cutoff``, ``assembly_choice``, ``trim_his_tags``, ``max_copies``: as in
    :func:`load_assembly`. ``splits``: optional subset of :data:`~pyg_mpnn.io.record.SPLITS`
    (one name or several). Each item is the record of
    :func:`load_assembly` for that row, with ``meta`` also holding the list's ``cluster``,
    ``split``, ``resolution`` (float, NaN if none), ``date`` (ISO str), ``hash``, ``length``
    (list sequence length) and ``dataset`` (``"pdb_2021aug02"``); ``meta["source"]`` is the
    entry's ``.pt`` path. A row that cannot be read yields its :class:`ReadError` (its
    ``source`` names the file) and iteration goes on.
    """
    rows = load_list(root, rescut=rescut, datcut=datcut, keep_nan_resolution=keep_nan_resolution)
    if splits is not None:
        splits = {splits} if isinstance(splits, str) else set(splits)
        unknown = splits - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; use {SPLITS}")
        rows = [r for r in rows if r.split in splits]
    files = _Files()
    for row in rows:
        try:
            rec = _build(
                files,
                Path(root),
                row.chain_id,
                assembly_choice,
                homo_cutoff,
                trim_his_tags,
                max_copies,
            )
        except ReadError as err:
            yield err
            continue
        rec.meta.update(
            cluster=row.cluster,
            split=row.split,
            resolution=row.resolution,
            date=row.date.isoformat(),
            hash=row.hash,
            length=row.length,
            dataset="pdb_2021aug02",
        )
        yield rec


def is_pdb2021_root(path) -> bool:
    """True if ``path`` is a folder with ``list.csv`` and a ``pdb/`` subfolder."""
    p = Path(path)
    return p.is_dir() and (p / "list.csv").is_file() and (p / "pdb").is_dir()


__all__ = [
    "ListRow",
    "load_list",
    "clusters_by_split",
    "load_assembly",
    "iter_pdb2021",
    "his_tag_slice",
    "parse_date",
    "is_pdb2021_root",
    "MAX_COPIES",
]
