"""Tied positions: residues decoded together and given one letter.

Groups come from the original's ``tied_positions_jsonl`` (``{name: [{"A": [1], "B": [1]},
{"A": [2], "B": [2]}, ...]}``, or with weights ``{"A": [[1], [0.5]], ...}``; as in the
original's ``tied_featurize``, one item is one group: ``{"A": [1, 2], "B": [1, 2]}`` ties all
four residues) or from ``--homo-oligomer``,
which ties position ``i`` of every designed chain with the same sequence (the original's
``make_tied_positions_dict.py --homooligomer 1`` ties all chains of the structure). At a tied
step the members' tempered logits are averaged with their weights and drawn once.

Residues missing backbone atoms are never sampled; they leave their groups. A group must be
all designed or all fixed: fix the same positions in every tied chain.
"""

from __future__ import annotations

import numpy as np

from pyg_mpnn.design.constraints import DesignError, ResidueIndex
from pyg_mpnn.io.record import ProteinRecord


def homo_oligomer_groups(
    record: ProteinRecord, designed_chains: list[str]
) -> list[list[tuple[int, float]]]:
    """Groups ``[(residue, weight)]`` tying position ``i`` of designed chains with identical
    sequences (weight 1). Chains with a unique sequence stay untied."""
    by_seq: dict[str, list[str]] = {}
    for c in designed_chains:
        by_seq.setdefault(record.chain_seq(c), []).append(c)
    groups = []
    for chains in by_seq.values():
        if len(chains) < 2:
            continue
        idx = [np.nonzero(record.chain_index == record.chain_ids.index(c))[0] for c in chains]
        groups.extend([[(int(ix[i]), 1.0) for ix in idx] for i in range(len(idx[0]))])
    return groups


def jsonl_groups(entry, index: ResidueIndex, where: str) -> list[list[tuple[int, float]]]:
    """Groups from one structure's entry of a ``tied_positions_jsonl``: one per item, of every
    position the item lists (the original's ``tied_featurize``)."""
    if not isinstance(entry, list):
        raise DesignError(
            f"{where}: {index.record.name}: expected a list of {{chain: positions}} objects"
        )
    groups = []
    for n, item in enumerate(entry, 1):
        if not isinstance(item, dict) or not item:
            raise DesignError(
                f"{where}: {index.record.name} item {n}: expected {{chain: positions}}"
            )
        group = []
        for c, v in item.items():
            positions, weights = _positions_and_weights(
                v, f"{where}: {index.record.name} item {n} chain {c}"
            )
            group += [(index.position(c, p, where), w) for p, w in zip(positions, weights)]
        groups.append(group)
    return groups


def _positions_and_weights(value, where: str) -> tuple[list, list]:
    if isinstance(value, list) and value and isinstance(value[0], list):
        if len(value) != 2 or len(value[0]) != len(value[1]):
            raise DesignError(f"{where}: expected [[positions], [weights]] of equal length")
        return value[0], [float(w) for w in value[1]]
    if not isinstance(value, list):
        raise DesignError(f"{where}: expected a list of positions, got {value!r}")
    return value, [1.0] * len(value)


def tie_arrays(
    groups: list[list[tuple[int, float]]],
    record: ProteinRecord,
    designed: np.ndarray,
    index: ResidueIndex,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(tie_group [N], tie_weight [N])`` from groups, after dropping residues that miss
    backbone atoms; checks that no residue is in two groups and no group mixes designed and
    fixed residues."""
    n = record.num_residues
    group = np.full(n, -1, np.int64)
    weight = np.ones(n, np.float32)
    valid = record.mask
    for g, members in enumerate(groups):
        members = [(i, w) for i, w in members if valid[i]]
        if len(members) < 2:
            continue
        states = {bool(designed[i]) for i, _ in members}
        if len(states) > 1:
            fixed = [index.label(i) for i, _ in members if not designed[i]]
            free = [index.label(i) for i, _ in members if designed[i]]
            raise DesignError(
                f"{where}: tied group {', '.join(index.label(i) for i, _ in members)}"
                f" mixes fixed ({', '.join(fixed)}) and designed "
                f"({', '.join(free)}) residues: fix them all or none"
            )
        for i, w in members:
            if group[i] >= 0:
                raise DesignError(f"{where}: residue {index.label(i)} is in two tied groups")
            group[i], weight[i] = g, w
    return group, weight
