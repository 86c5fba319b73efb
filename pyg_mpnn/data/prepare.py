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
an error exit (status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from pyg_mpnn.atomic import error_text
from pyg_mpnn.data.codec import MAX_ABS_COORD
from pyg_mpnn.data.store import SPLIT_ALIASES, ShardWriter, atomic_write_bytes
from pyg_mpnn.io.record import BACKBONE_ATOMS, ProteinRecord, ReadError, ReadErrorKind
from pyg_mpnn.io.sources import iter_source

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
) -> dict:
    """Run parse -> filter -> write; return the summary dict (also written to ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, shard_size=shard_size)
    skipped_path = out / "skipped.jsonl"
    counts, skipped_by_kind = Counter(), Counter()
    t0 = time.perf_counter()
    bar = tqdm(desc="prepare", unit=" items", disable=not progress, file=sys.stderr)
    with open(skipped_path, "w") as skipped:

        def skip(source, item, reason, kind):
            skipped_by_kind[kind] += 1
            skipped.write(
                json.dumps({"source": source, "item": item, "reason": reason, "kind": kind}) + "\n"
            )

        for source_id, src in enumerate(sources):
            files_seen = set()
            for file, item, result in iter_source(
                src, pdb2021_options=pdb2021_options, min_plddt=min_plddt, workers=workers
            ):
                bar.update(1)
                files_seen.add(file)
                if isinstance(result, ReadError):
                    skip(result.source, item, result.reason, result.kind)
                    continue
                record, skips = filter_record(
                    result, min_length, max_length, keep_incomplete_chains, keep_ca_only
                )
                for kind, reason in skips:
                    skip(file, result.name, reason, kind)
                if record is None:
                    continue
                writer.add(
                    record, cluster=_cluster_of(record), split=_split_of(record), source=source_id
                )
                counts["records"] += 1
                counts["chains"] += len(record.chain_ids)
                counts["residues"] += record.num_residues
            counts["files"] += len(files_seen)
    bar.close()
    elapsed = time.perf_counter() - t0
    summary = {
        "out": str(out),
        "sources": [str(s) for s in sources],
        "files": counts["files"],
        "records": counts["records"],
        "chains": counts["chains"],
        "residues": counts["residues"],
        "skipped": dict(sorted(skipped_by_kind.items())),
        "skipped_total": sum(skipped_by_kind.values()),
        "skip_report": str(skipped_path),
        "seconds": round(elapsed, 2),
    }
    writer.close(
        meta={"sources": summary["sources"], "chains": counts["chains"], "min_plddt": min_plddt}
    )
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pyg_mpnn.data.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("sources", nargs="+", help="files or folders (any mix of formats)")
    ap.add_argument("--out", required=True, help="dataset folder to write")
    ap.add_argument(
        "--strict", action="store_true", help="exit with status 2 if anything was skipped"
    )
    ap.add_argument("--min-length", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=None)
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
    ap.add_argument("--shard-size", type=int, default=256, help="records per shard")
    ap.add_argument("--min-plddt", type=float, default=None, help="foldcomp: minimum mean pLDDT")
    ap.add_argument("--rescut", type=float, default=3.5, help="pdb_2021aug02: max resolution")
    ap.add_argument("--datcut", default="2030-01-01", help="pdb_2021aug02: latest deposition date")
    ap.add_argument("--workers", type=int, default=1, help="processes parsing structure files")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
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
        )
    except OSError as e:  # e.g. the disk filled up: the message names the file
        print(
            f"error: {error_text(e)}; {args.out} is incomplete (no "
            "meta.json): free space and run prepare again",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(summary, indent=2))
    if args.strict and summary["skipped_total"]:
        print(
            f"--strict: {summary['skipped_total']} item(s) skipped; see {summary['skip_report']}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
