"""``python -m pyg_mpnn.data.prepare SRC [SRC ...] --out DIR``: any mix of inputs -> a dataset folder.

Stages: **parse** (``pyg_mpnn.io.sources.iter_source``: structure files, JSONL,
pdb_2021aug02, foldcomp) -> **filter** (mask each residue with a non-finite or out-of-range
coordinate, reported per residue; drop chains without a single complete backbone residue --
with ``--keep-ca-only``, without a single CA atom --, length limits) -> **write** (``ShardWriter``: format 2 shards of compact
record blobs + a memory-mappable columnar index; see :mod:`pyg_mpnn.data.store`).
Nothing bad is lost silently: every skipped file, record or chain is listed with its
reason and kind in ``DIR/skipped.jsonl`` and counted by kind in the JSON summary printed at
the end (also ``DIR/summary.json``). The kind comes from where the problem was found: the
reader's ``ReadError.kind``, or the filter stage's :class:`Skip`. ``--strict`` makes any skip
an error (status 2, nothing written).

``--foldcomp-in-place``: Foldcomp databases are indexed where they are, not converted: the
folder holds the index (lengths, clusters, mean pLDDT, each record's place in its database)
and training decodes the records (:mod:`pyg_mpnn.data.inplace`).

Nothing is overwritten or left half-written: the folder is written beside ``DIR``
(``.DIR.partial-PID``) and renamed to ``DIR`` when complete; an existing dataset is replaced
only with ``--overwrite``. Input that yields no protein is an error (status 2) naming the files
read and why each item was skipped; ``--allow-empty`` writes the empty dataset instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pyg_mpnn.atomic import error_text
from pyg_mpnn.cli import command, make_parser
from pyg_mpnn.data.codec import MAX_ABS_COORD
from pyg_mpnn.data.inplace import ClusterMap, InPlaceWriter, check_databases
from pyg_mpnn.data.outdir import check_out, partial_dir, replace_dir
from pyg_mpnn.data.store import SPLIT_ALIASES, ShardWriter, atomic_write_bytes
from pyg_mpnn.errors import CommandError, UserError
from pyg_mpnn.io.foldcomp import iter_entries
from pyg_mpnn.io.record import BACKBONE_ATOMS, ProteinRecord, ReadError, ReadErrorKind
from pyg_mpnn.io.sources import Tally, iter_source

# Kinds of what the filter stage drops, beside the readers' ``ReadError.kind``: the summary
# counts skips by kind; the full reason is in skipped.jsonl.
MASKED = "bad coordinates (residue masked)"
NO_BACKBONE: ReadErrorKind = "no complete backbone"  # as a reader's, counted together
NO_DESIGNED_CHAIN: ReadErrorKind = "no designed chain"
TOO_SHORT = "too short"
TOO_LONG = "too long"


class Skip(NamedTuple):
    """One thing the filter stage dropped (or masked): its kind and the reason for people."""

    kind: str
    reason: str


def mask_bad_residues(record: ProteinRecord) -> list[str]:
    """Mask (in place: all four backbone atoms NaN) each residue with a backbone coordinate
    that is not finite or lies at or beyond ±``MAX_ABS_COORD`` (9999 A, the PDB format's
    ceiling); one reason per residue, naming chain, residue and atoms. The rest of the chain
    is kept as it is. A NaN in a structure file is told from a missing atom by the parser
    (``meta["nonfinite_atoms"]``, removed here)."""
    coords = record.coords
    far = ~(np.abs(coords) < MAX_ABS_COORD) & ~np.isnan(coords)  # inf, 1e30, 9999.999
    nan = record.meta.pop("nonfinite_atoms", None) or {}
    ids = record.residue_ids or [str(i + 1) for i in range(record.num_residues)]
    where = {(record.chain_ids[c], r): i for i, (c, r) in enumerate(zip(record.chain_index, ids))}
    reasons = []
    if (far.any() or nan) and not coords.flags.writeable:
        coords = record.coords = coords.copy()
    for i in sorted(
        set(np.flatnonzero(far.any(axis=(1, 2)))) | {where[k] for k in nan if k in where}
    ):
        chain, rid = record.chain_ids[record.chain_index[i]], ids[i]
        problems = [
            f"{BACKBONE_ATOMS[k]} ({', '.join(f'{v:.7g}' for v in coords[i, k])})"
            for k in range(4)
            if far[i, k].any()
        ] + [f"{a} NaN" for a in nan.get((chain, rid), [])]
        reasons.append(
            f"chain {chain} residue {rid} ({record.seq[i]}): coordinate not finite "
            f"or beyond +-{MAX_ABS_COORD:g} A ({'; '.join(problems)}); residue masked"
        )
        coords[i] = np.nan
    return reasons


def filter_record(
    record: ProteinRecord,
    min_length: int = 1,
    max_length: int | None = None,
    keep_incomplete_chains: bool = False,
    keep_ca_only: bool = False,
) -> tuple[ProteinRecord | None, list[Skip]]:
    """Filter stage. Returns the kept record (or None) and a :class:`Skip` for each residue
    masked and each chain or record dropped.

    A residue with a non-finite or out-of-range coordinate is masked and reported
    (:func:`mask_bad_residues`). A chain without a single residue that has all of N, CA, C and
    O (e.g. a CA trace) gives the full-backbone model nothing to learn from and is dropped
    and reported, unless ``keep_incomplete_chains`` (its residues then stay, masked). With
    ``keep_ca_only`` (data for CA-only models) a chain is kept when a residue has a CA atom.
    """
    skips = [Skip(MASKED, reason) for reason in mask_bad_residues(record)]
    mask = record.present("ca" if keep_ca_only else "full")
    needed = "a CA atom" if keep_ca_only else "a complete backbone (N, CA, C, O)"
    keep = []
    for c, cid in enumerate(record.chain_ids):
        in_chain = record.chain_index == c
        if not mask[in_chain].any() and not keep_incomplete_chains:
            skips.append(Skip(NO_BACKBONE, f"chain {cid}: no residue with {needed}"))
        else:
            keep.append(c)
    if not keep:
        return None, skips or [Skip(NO_BACKBONE, f"no residue with {needed}")]
    if len(keep) < len(record.chain_ids):
        record = record.select_chains(keep)
        if not record.designed.any():
            return None, [*skips, Skip(NO_DESIGNED_CHAIN, "no designed chain left")]
    n = record.num_residues
    if n < min_length:
        return None, [*skips, Skip(TOO_SHORT, f"{n} residues: shorter than {min_length}")]
    if max_length is not None and n > max_length:
        return None, [*skips, Skip(TOO_LONG, f"{n} residues: longer than {max_length}")]
    return record, skips


def _split_of(record: ProteinRecord) -> int | None:
    split = record.meta.get("split")
    return SPLIT_ALIASES.get(str(split).lower()) if split is not None else None


def _cluster_of(record: ProteinRecord) -> int | None:
    cluster = record.meta.get("cluster")
    try:
        return None if cluster is None else int(cluster)
    except (TypeError, ValueError):
        return None


def prepare(
    sources,
    out,
    *,
    min_length: int = 1,
    max_length: int | None = None,
    keep_incomplete_chains: bool = False,
    keep_ca_only: bool = False,
    shard_size: int = 256,
    min_plddt=None,
    pdb2021_options: dict | None = None,
    progress: bool = True,
    workers: int = 1,
    allow_empty: bool = False,
    overwrite: bool = False,
    strict: bool = False,
    foldcomp_in_place: bool = False,
    clusters: str | Path | None = None,
) -> dict:
    """Run parse -> filter -> write into ``out``; return the summary (also written there).

    Written beside ``out`` and renamed into place when complete (:mod:`pyg_mpnn.data.outdir`);
    input without a protein is a :class:`~pyg_mpnn.errors.UserError` unless ``allow_empty``,
    and so is any skip with ``strict``. ``foldcomp_in_place``: ``sources`` are Foldcomp
    databases indexed in place (:mod:`pyg_mpnn.data.inplace`); ``clusters``, a
    ``member<TAB>representative`` TSV for them."""
    out = Path(out)
    databases = check_databases(sources) if foldcomp_in_place else None
    if clusters is not None and not foldcomp_in_place:
        raise UserError("--clusters is read with --foldcomp-in-place only")
    cluster_map = ClusterMap(clusters) if clusters is not None else None
    check_out(out, overwrite)
    tmp = partial_dir(out)
    read = dict(pdb2021_options=pdb2021_options, min_plddt=min_plddt, workers=workers)
    try:
        if databases is not None:
            writer = InPlaceWriter(tmp, databases, cluster_map)
            summary, tally = _index_in_place(
                databases, writer, tmp, out, (min_length, max_length), min_plddt, progress
            )
        else:
            filters = dict(
                min_length=min_length,
                max_length=max_length,
                keep_incomplete_chains=keep_incomplete_chains,
                keep_ca_only=keep_ca_only,
            )
            summary, tally = _write(sources, tmp, out, filters, read, shard_size, progress)
        if not summary["records"] and not allow_empty:
            raise tally.no_protein()
        if strict:
            refuse_skips(summary, out)
        replace_dir(tmp, out)
    except OSError as e:  # a failed write names the temporary folder: name ``out`` instead
        raise OSError(e.errno, error_text(e).replace(str(tmp), str(out)), str(out)) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def refuse_skips(summary: dict, out: Path) -> None:
    """``--strict``: any skipped item is an error, and nothing is written to ``out``."""
    if summary["skipped_total"]:
        kinds = ", ".join(f"{k}: {n}" for k, n in summary["skipped"].items())
        raise UserError(
            f"--strict: {summary['skipped_total']} item(s) skipped ({kinds}), so nothing "
            f"was written to {out}; run without --strict to see them in skipped.jsonl"
        )


def _write(sources, tmp: Path, out: Path, filters: dict, read: dict, shard_size, progress):
    """The parse, filter and write stages into ``tmp``: ``(summary, tally)``."""
    writer = ShardWriter(tmp, shard_size=shard_size)
    counts, skipped_by_kind = Counter(), Counter()
    tally = Tally([str(s) for s in sources])
    t0 = time.perf_counter()
    from tqdm import tqdm  # here: --help needs no tqdm

    bar = tqdm(desc="prepare", unit=" items", disable=not progress, file=sys.stderr)
    with open(tmp / "skipped.jsonl", "w") as skipped:

        def skip(source, item, reason, kind):
            skipped_by_kind[kind] += 1
            skipped.write(
                json.dumps({"source": source, "item": item, "reason": reason, "kind": kind}) + "\n"
            )

        for source_id, src in enumerate(sources):
            files_seen = set()
            for file, item, result in iter_source(src, **read):
                bar.update(1)
                files_seen.add(file)
                tally.add(file, result)
                if isinstance(result, ReadError):
                    skip(result.source, item, result.reason, result.kind)
                    continue
                record, skips = filter_record(result, **filters)
                for kind, reason in skips:
                    skip(file, result.name, reason, kind)
                if record is None:
                    tally.skipped.append(f"{result.name}: {skips[-1].reason}")
                    continue
                writer.add(
                    record, cluster=_cluster_of(record), split=_split_of(record), source=source_id
                )
                counts["records"] += 1
                counts["chains"] += len(record.chain_ids)
                counts["residues"] += record.num_residues
            counts["files"] += len(files_seen)
    bar.close()
    return _finish(sources, tmp, out, writer, counts, skipped_by_kind, t0, read["min_plddt"]), tally


def _finish(sources, tmp, out, writer, counts, skipped_by_kind, t0, min_plddt) -> dict:
    """Close ``writer`` (index and meta) and write ``summary.json``; return the summary."""
    summary = {
        "out": str(out),
        "sources": [str(s) for s in sources],
        "files": counts["files"],
        "records": counts["records"],
        "chains": counts["chains"],
        "residues": counts["residues"],
        "skipped": dict(sorted(skipped_by_kind.items())),
        "skipped_total": sum(skipped_by_kind.values()),
        "skip_report": str(out / "skipped.jsonl"),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    meta = {"sources": summary["sources"], "chains": counts["chains"], "min_plddt": min_plddt}
    writer.close(meta=meta)
    atomic_write_bytes(tmp / "summary.json", json.dumps(summary, indent=2).encode())
    return summary


def _index_in_place(databases, writer, tmp, out, lengths, min_plddt, progress):
    """Index Foldcomp databases where they are (no shards): ``(summary, tally)``."""
    counts, skipped_by_kind = Counter(), Counter()
    tally = Tally([str(s) for s in databases])
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(desc="index", unit=" entries", disable=not progress, file=sys.stderr)
    with open(tmp / "skipped.jsonl", "w") as skipped:
        for number, db in enumerate(databases):
            for entry in iter_entries(db, min_plddt=min_plddt):
                bar.update(1)
                tally.files.add(str(db))
                if isinstance(entry, ReadError):
                    kind, reason, item = entry.kind, entry.reason, entry.source
                else:
                    kind, reason = _length_skip(entry.length, *lengths)
                    item = entry.name
                if kind is not None:
                    tally.skipped.append(f"{item}: {reason}")
                    skipped_by_kind[kind] += 1
                    row = {"source": str(db), "item": item, "reason": reason, "kind": kind}
                    skipped.write(json.dumps(row) + "\n")
                    continue
                tally.proteins += 1
                writer.add(entry, number)
                counts.update(records=1, chains=1, residues=entry.length)
            counts["files"] += 1
    bar.close()
    summary = _finish(databases, tmp, out, writer, counts, skipped_by_kind, t0, min_plddt)
    return summary, tally


def _length_skip(n: int, min_length: int, max_length: int | None) -> tuple:
    """``(kind, reason)`` of the length filter for ``n`` residues, ``(None, None)`` if kept."""
    if n < min_length:
        return TOO_SHORT, f"{n} residues: shorter than {min_length}"
    if max_length is not None and n > max_length:
        return TOO_LONG, f"{n} residues: longer than {max_length}"
    return None, None


DESCRIPTION = (
    "Turn structure files (PDB, mmCIF, PQR, PDBQT, plain or gzipped), folders of them, "
    "CATH-style JSONL, the pdb_2021aug02 layout or foldcomp databases into a dataset folder "
    "for training and evaluation. Residues with bad coordinates are masked; chains without a "
    "complete backbone and records outside the length limits are dropped; every skipped item "
    "is listed with its reason in OUT/skipped.jsonl and counted in the summary printed at the "
    "end. The folder is written beside --out and renamed into place once complete; an existing "
    "dataset is replaced only with --overwrite. Input that yields no protein is an error. "
    "With --foldcomp-in-place, foldcomp databases are indexed where they are and decoded "
    "while training, instead of converted."
)
EXAMPLES = [
    "python -m pyg_mpnn.data.prepare tests/fixtures/biotite__5zng.pdb "
    "tests/fixtures/proteinmpnn__6MRR.pdb --out runs/data/two",
    "python -m pyg_mpnn.data.prepare tests/fixtures/afdb/afdb_sample --foldcomp-in-place "
    "--out runs/data/afdb",
    "python -m pyg_mpnn.data.prepare data/default.jsonl.gz --out runs/data/default --overwrite",
]


def parser() -> argparse.ArgumentParser:
    ap = make_parser("python -m pyg_mpnn.data.prepare", DESCRIPTION, EXAMPLES)
    ap.add_argument("sources", nargs="+", help="files or folders (any mix of formats)")
    ap.add_argument("--out", required=True, help="dataset folder to write")
    ap.add_argument("--overwrite", action="store_true", help="replace the dataset already in --out")
    ap.add_argument(
        "--allow-empty",
        action="store_true",
        help="write a dataset with 0 records when nothing is usable, instead of an error",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="anything skipped is an error (status 2, nothing written)",
    )
    ap.add_argument("--min-length", type=int, default=1, help="fewer residues: dropped")
    ap.add_argument("--max-length", type=int, default=None, help="more residues: dropped")
    ap.add_argument(
        "--keep-incomplete-chains",
        action="store_true",
        help="keep chains with no complete N/CA/C/O residue (e.g. CA-only), masked",
    )
    ap.add_argument(
        "--keep-ca-only",
        action="store_true",
        help="data for CA-only models (model.backbone: ca): keep chains with CA atoms but no "
        "complete N/CA/C/O residue (CA traces)",
    )
    ap.add_argument(
        "--foldcomp-in-place",
        action="store_true",
        help="SRC are Foldcomp databases: index them where they are (lengths, clusters, "
        "pLDDT) and decode records while training, instead of converting them to shards",
    )
    ap.add_argument(
        "--clusters",
        default=None,
        metavar="TSV",
        help="with --foldcomp-in-place: member<TAB>representative lines (AFDB cluster files); "
        "entries not listed are their own cluster",
    )
    ap.add_argument("--shard-size", type=int, default=256, help="records per shard")
    ap.add_argument("--min-plddt", type=float, default=None, help="foldcomp: minimum mean pLDDT")
    ap.add_argument("--rescut", type=float, default=3.5, help="pdb_2021aug02: max resolution")
    ap.add_argument("--datcut", default="2030-01-01", help="pdb_2021aug02: latest deposition date")
    ap.add_argument("--workers", type=int, default=1, help="processes parsing structure files")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def check_args(args: argparse.Namespace) -> None:
    for name in ("min_length", "shard_size", "workers"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_length is not None and args.max_length < args.min_length:
        raise UserError(f"--max-length {args.max_length} is below --min-length {args.min_length}")
    if args.min_plddt is not None and not 0 <= args.min_plddt <= 100:
        raise UserError(f"--min-plddt {args.min_plddt:g} is not in [0, 100]")


@command
def main(argv=None) -> int:
    args = parser().parse_args(argv)
    check_args(args)
    try:
        summary = prepare(
            args.sources,
            args.out,
            min_length=args.min_length,
            max_length=args.max_length,
            keep_incomplete_chains=args.keep_incomplete_chains,
            keep_ca_only=args.keep_ca_only,
            shard_size=args.shard_size,
            min_plddt=args.min_plddt,
            pdb2021_options={"rescut": args.rescut, "datcut": args.datcut},
            progress=not args.no_progress,
            workers=args.workers,
            allow_empty=args.allow_empty,
            overwrite=args.overwrite,
            strict=args.strict,
            foldcomp_in_place=args.foldcomp_in_place,
            clusters=args.clusters,
        )
    except OSError as e:  # e.g. the disk filled up: the message names the file
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        hint = ": free space and run prepare again" if full else ""
        raise CommandError(f"{error_text(e)}; nothing was written to {args.out}{hint}") from e
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
