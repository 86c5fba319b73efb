"""Which structures and chains go in: the original's ``chain_id_jsonl`` and ``max_length``.

* ``--chains-jsonl``: ``{name: [["A", "C"], ["B"]]}``, per structure the designed chains and
  the fixed (visible) ones. As in the original, a chain listed in neither is left out of the
  structure: the model does not see it. A structure without an entry has every chain designed
  (or those of ``--chains``'s default, all).
* ``--max-length``: structures with more residues than this (all chains, as read) are skipped,
  as the original's datasets skip them.
"""

from __future__ import annotations

import sys

from pyg_mpnn.design.constraints import DesignError
from pyg_mpnn.io.record import ProteinRecord


def chain_lists(entry, record: ProteinRecord, where: str) -> tuple[list[str], list[str]]:
    """``(designed, fixed)`` chain ids of one structure's entry, checked."""
    ok = (
        isinstance(entry, list)
        and len(entry) == 2
        and all(isinstance(part, list) and all(isinstance(c, str) for c in part) for part in entry)
    )
    if not ok:
        raise DesignError(
            f'{where}: {record.name}: expected [["designed", ...], ["fixed", ...]], got {entry!r}'
        )
    designed, fixed = entry
    for c in designed + fixed:
        if c not in record.chain_ids:
            raise DesignError(
                f"{where}: {record.name} has no chain {c!r} (chains: {', '.join(record.chain_ids)})"
            )
    both = sorted(set(designed) & set(fixed))
    if both:
        raise DesignError(f"{where}: {record.name}: chain {both[0]} is both designed and fixed")
    return list(designed), list(fixed)


def keep_listed(record: ProteinRecord, designed: list[str], fixed: list[str]) -> ProteinRecord:
    """The record without the chains listed in neither ``designed`` nor ``fixed``."""
    listed = set(designed) | set(fixed)
    if listed == set(record.chain_ids):
        return record
    return record.select_chains([i for i, c in enumerate(record.chain_ids) if c in listed])


def within_max_length(records: list[ProteinRecord], max_length: int | None) -> list[ProteinRecord]:
    """The records of at most ``max_length`` residues; each skipped one is named on stderr.
    Skipping them all is an error (nothing would be designed)."""
    if max_length is None:
        return records
    if max_length < 1:
        raise DesignError(f"--max-length must be at least 1, got {max_length}")
    kept = [r for r in records if r.num_residues <= max_length]
    if not kept:
        shortest = min(records, key=lambda r: r.num_residues)
        raise DesignError(
            f"--max-length {max_length}: every input is longer (shortest: {shortest.name}, "
            f"{shortest.num_residues} residues)"
        )
    for r in records:
        if r.num_residues > max_length:
            print(
                f"skipped {r.name}: {r.num_residues} residues > --max-length {max_length}",
                file=sys.stderr,
            )
    return kept
